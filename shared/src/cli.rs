//! What the stages' command lines share: flag groups, one per idea, that a
//! stage composes with `#[command(flatten)]`; one-line errors; exit codes
//! (see [`crate::error`] for the table).
//!
//! | group               | stage | flags                                        |
//! |---------------------|-------|----------------------------------------------|
//! | [`RunOptions`]      | 01    | `-i`, `-t`, `--hostname`, `--trace`          |
//! | [`ResourceOptions`] | 05    | `-m`, `--cpus`, `--pids-limit`, …            |
//! | [`ImageArgs`]       | 06    | `IMAGE [COMMAND]`, `--rootfs`, `-v`          |
//! | [`ContainerOptions`]| 07    | `-d`, `--name`, `-e`, `--env-file`, `--rm`   |
//! | [`UserOption`]      | 07–08 | `-u UID[:GID]`                               |
//! | [`NetworkOptions`]  | 08    | `--network`, `-p`                            |
//! | [`SecurityOptions`] | 09    | `--privileged`, `--cap-add`, `-u`, …         |

use crate::cgroups::{self, limits, Limits};
use crate::container::{inside, state};
use crate::error::{Error, EXIT_MINIBOX_FAILED};
use crate::process::{Exit, Stdin};
use crate::trace::{self, TraceMode};
use crate::volumes::{self, Volume};
use crate::{image, namespaces, rootfs, sync};
use clap::Parser;
use std::convert::Infallible;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// `-i` and `-t`, for `run` and `exec`.
#[derive(clap::Args, Debug, Clone)]
pub struct StdioOptions {
    /// Keep stdin open (without -i the container reads /dev/null)
    #[arg(short, long)]
    pub interactive: bool,

    /// A terminal for the container (stage 07 on: a pseudo-terminal of its
    /// own; before: the caller's). With -i it needs a terminal on stdin
    #[arg(short, long)]
    pub tty: bool,
}

impl StdioOptions {
    /// What the container's stdin is: the caller's with `-i`, else
    /// `/dev/null` (docker's rule, `-t` alone included). `-it` without a
    /// terminal on stdin is refused up front, as docker refuses it.
    pub fn stdin(&self) -> Result<Stdin, Error> {
        if self.tty && self.interactive && !std::io::stdin().is_terminal() {
            return Err(Error::Usage(
                "-it: the input device is not a TTY (drop -t when piping)".into(),
            ));
        }
        Ok(if self.interactive {
            Stdin::Inherit
        } else {
            Stdin::Null
        })
    }
}

/// The flags of `run` that every stage has.
#[derive(clap::Args, Debug, Clone)]
pub struct RunOptions {
    #[command(flatten)]
    pub stdio: StdioOptions,

    /// Host name inside the container [default: a generated container id]
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// How to show the run/init trace on stderr
    #[arg(
        long,
        value_enum,
        default_value_t,
        env = "MINIBOX_TRACE",
        value_name = "MODE"
    )]
    pub trace: TraceMode,
}

impl RunOptions {
    /// The host name to use: `--hostname`, checked, or the container id.
    pub fn hostname_or(&self, container_id: &str) -> Result<String, Error> {
        match &self.hostname {
            Some(name) => namespaces::validate_hostname(name).map(|()| name.clone()),
            None => Ok(container_id.to_string()),
        }
    }

    pub fn stdin(&self) -> Result<Stdin, Error> {
        self.stdio.stdin()
    }

    pub fn terminal(&self) -> bool {
        self.stdio.tty
    }
}

/// The resource flags of stage 05 on (docker's spelling). Each value is
/// checked by its parser, so `-m 100x` fails before anything is created.
#[derive(clap::Args, Debug, Clone)]
pub struct ResourceOptions {
    /// Memory limit, e.g. 64m (b, k, m, g)
    #[arg(short, long, value_name = "BYTES", value_parser = limits::parse_memory)]
    pub memory: Option<u64>,

    /// Memory plus swap, e.g. 128m; -1 for unlimited swap [default: no swap]
    #[arg(long, value_name = "BYTES", value_parser = limits::parse_memory_swap, allow_hyphen_values = true)]
    pub memory_swap: Option<cgroups::Limit>,

    /// CPU time, in CPUs (0.5 = half of one CPU)
    #[arg(long, value_name = "CPUS", value_parser = limits::parse_cpus, allow_hyphen_values = true)]
    pub cpus: Option<u64>,

    /// Relative CPU weight against other cgroups (v1 cpu.shares; v2 cpu.weight)
    #[arg(long, value_name = "SHARES", value_parser = limits::parse_cpu_shares)]
    pub cpu_shares: Option<u64>,

    /// CPUs the container may run on, e.g. 0-1 or 0,2
    #[arg(long, value_name = "LIST", value_parser = limits::parse_cpuset_cpus)]
    pub cpuset_cpus: Option<String>,

    /// Memory nodes the container may use, e.g. 0
    #[arg(long, value_name = "LIST", value_parser = limits::parse_cpuset_mems)]
    pub cpuset_mems: Option<String>,

    /// Most processes the container may have; -1 for no limit
    #[arg(long, value_name = "N", value_parser = limits::parse_pids_limit, allow_hyphen_values = true)]
    pub pids_limit: Option<cgroups::Limit>,

    /// Parent cgroup for the container, relative to each hierarchy's root
    #[arg(long, value_name = "PATH", default_value = cgroups::DEFAULT_PARENT, value_parser = cgroups::parse_parent, env = "MINIBOX_CGROUP_PARENT")]
    pub cgroup_parent: String,
}

impl ResourceOptions {
    /// The limits, checked against each other.
    pub fn limits(&self) -> Result<Limits, Error> {
        let limits = Limits {
            memory: self.memory,
            memory_swap: self.memory_swap,
            cpu_quota_us: self.cpus,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_max: self.pids_limit,
        };
        limits.check()?;
        Ok(limits)
    }

    /// `Error::OutOfMemory` if the kernel OOM-killed anything (exit 137).
    pub fn oom_error(&self, kills: u64) -> Option<Error> {
        (kills > 0).then(|| Error::OutOfMemory {
            limit: self.memory.map_or("none".into(), limits::human_bytes),
            kills,
        })
    }
}

/// Stage 06 on: docker's `IMAGE [COMMAND [ARGS...]]`, or `--rootfs DIR`
/// and the command, and volumes.
#[derive(clap::Args, Debug, Clone)]
pub struct ImageArgs {
    /// Use this directory as the image instead of IMAGE (all arguments are then the command)
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Bind-mount a host directory: HOST:CONTAINER[:ro] (repeatable)
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]", value_parser = volumes::parse)]
    pub volumes: Vec<Volume>,
    /// The image, then the command to run in it [default command: sh]
    #[arg(
        trailing_var_arg = true,
        required_unless_present = "rootfs",
        value_name = "IMAGE [COMMAND [ARGS...]]"
    )]
    pub args: Vec<OsString>,
}

impl ImageArgs {
    /// The image's root filesystem and the command: the image's
    /// entrypoint (an image loaded with `image load` may have one) followed
    /// by the arguments, or by the image's default command when there are
    /// none; `sh` for an image without defaults.
    pub fn image_and_command(&self) -> Result<(PathBuf, Vec<OsString>), Error> {
        self.image_and_command_with(true)
    }

    /// The same, with the image's entrypoint or without it (`--entrypoint
    /// ""`, docker's way to drop it).
    pub fn image_and_command_with(
        &self,
        entrypoint: bool,
    ) -> Result<(PathBuf, Vec<OsString>), Error> {
        let (lower, command) = self.image_and_arguments()?;
        let defaults = image::defaults_of(&lower).unwrap_or_default();
        let os = |v: Vec<String>| v.into_iter().map(OsString::from).collect::<Vec<_>>();
        let mut full = match entrypoint {
            true => os(defaults.entrypoint.unwrap_or_default()),
            false => Vec::new(),
        };
        if command.is_empty() {
            full.extend(os(defaults.cmd.unwrap_or_default()));
        } else {
            full.extend(command);
        }
        if full.is_empty() {
            full.push("sh".into());
        }
        Ok((lower, full))
    }

    /// The image's root filesystem and what follows it (maybe nothing).
    pub fn image_and_arguments(&self) -> Result<(PathBuf, Vec<OsString>), Error> {
        match &self.rootfs {
            Some(dir) => Ok((rootfs::resolve(Some(dir))?, self.args.clone())),
            None => {
                let Some((name, command)) = self.args.split_first() else {
                    return Err(Error::Usage("an IMAGE is needed (or --rootfs DIR)".into()));
                };
                Ok((image::resolve(&name.to_string_lossy())?, command.to_vec()))
            }
        }
    }

    /// What `ps` shows as the image: its name, or the --rootfs directory.
    pub fn image_name(&self) -> String {
        match &self.rootfs {
            Some(dir) => dir.display().to_string(),
            None => self
                .args
                .first()
                .map_or(String::new(), |a| a.to_string_lossy().into_owned()),
        }
    }

    /// Create missing host directories of the volumes (as docker does).
    pub fn prepare_volumes(&self) -> Result<(), Error> {
        self.volumes.iter().try_for_each(Volume::prepare_host)
    }
}

/// Stage 07 on: the container as something that lasts.
#[derive(clap::Args, Debug, Clone)]
pub struct ContainerOptions {
    /// Run in the background: print the container id and return
    #[arg(short, long)]
    pub detach: bool,
    /// `-t`, copied from the run options by [`ContainerOptions::check`].
    #[arg(skip)]
    pub terminal: bool,
    /// A name for the container [default: its id]
    #[arg(long, value_parser = state::parse_name)]
    pub name: Option<String>,
    /// Set an environment variable: KEY=VALUE (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = state::parse_env, allow_hyphen_values = true)]
    pub env: Vec<String>,
    /// Read environment variables from a file, one KEY=VALUE a line
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Working directory inside the container (made if missing)
    #[arg(short = 'w', long = "workdir", value_name = "DIR", value_parser = inside::parse_workdir)]
    pub workdir: Option<PathBuf>,
    /// Run PROGRAM with the command's arguments (the image has no entrypoint of its own)
    #[arg(long, value_name = "PROGRAM")]
    pub entrypoint: Option<String>,
    /// The signal `stop` sends first [default: SIGTERM]
    #[arg(long = "stop-signal", value_name = "SIGNAL", value_parser = crate::container::stop::parse_stop_signal)]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL [default: 10]
    #[arg(long = "stop-timeout", value_name = "SECONDS")]
    pub stop_timeout: Option<u64>,
    /// Set a label: KEY=VALUE or KEY (repeatable; `ps --filter label=KEY`)
    #[arg(short = 'l', long = "label", value_name = "KEY[=VALUE]", value_parser = state::parse_label)]
    pub labels: Vec<(String, String)>,
    /// Mount a tmpfs: PATH[:OPTIONS] (default rw,noexec,nosuid,nodev; size=, mode=, …)
    #[arg(long = "tmpfs", value_name = "PATH[:OPTIONS]", value_parser = inside::Tmpfs::parse)]
    pub tmpfs: Vec<inside::Tmpfs>,
    /// `start`: run the stopped container ID again, on its own layer
    #[arg(long = "restart-of", value_name = "ID", hide = true, value_parser = parse_id)]
    pub restart_of: Option<String>,
    /// Set a resource limit: NAME=SOFT[:HARD] (nofile, nproc, core, …; -1: none)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]", value_parser = inside::Ulimit::parse)]
    pub ulimits: Vec<inside::Ulimit>,
    /// Keep minibox's init as PID 1, to reap orphans and pass signals on (tini's role)
    #[arg(long)]
    pub init: bool,
    /// `-u` of stages 07 and 08 ([`UserOption`]), set by the stage: stage
    /// 09 has a `-u` of its own, with names.
    #[arg(skip)]
    pub user: Option<(u32, u32)>,
}

/// Stages 07 and 08: `-u UID[:GID]`, numbers (stage 09's
/// [`SecurityOptions`] takes names too, and replaces it).
#[derive(clap::Args, Debug, Clone)]
pub struct UserOption {
    /// Run as UID[:GID] (numbers; without GID, group 0, as docker)
    #[arg(short, long, value_name = "UID[:GID]", value_parser = inside::parse_user)]
    pub user: Option<(u32, u32)>,
}

impl ContainerOptions {
    /// `-e` and `--env-file` over the container's defaults.
    pub fn environment(&self, defaults: Vec<String>) -> Result<Vec<String>, Error> {
        let user = state::user_environment(&self.env, &self.env_file)?;
        Ok(crate::command::merge_env(defaults, &user))
    }

    /// The values of `-e` may be secrets: take them out of this process's
    /// argv, which any user can read in `ps` (see
    /// [`crate::process::hide_in_argv`]). The container gets them through
    /// its config, and its record is private.
    pub fn hide_values(&self) -> Result<(), Error> {
        for kv in &self.env {
            if let Some((_, value)) = kv.split_once('=') {
                crate::process::hide_in_argv(value.as_bytes())?;
            }
        }
        Ok(())
    }

    /// The image's root and the command: with `--entrypoint`, that program
    /// with the arguments after IMAGE; else those (or `sh`).
    pub fn image_and_command(&self, image: &ImageArgs) -> Result<(PathBuf, Vec<OsString>), Error> {
        match self.entrypoint.as_deref() {
            None => image.image_and_command(),
            // docker: an empty --entrypoint resets it.
            Some("") => image.image_and_command_with(false),
            Some(program) => {
                let (lower, arguments) = image.image_and_arguments()?;
                let mut command = vec![OsString::from(program)];
                command.extend(arguments);
                Ok((lower, command))
            }
        }
    }

    /// The container's id: a new one, or, for `start`, its own.
    pub fn id(&self) -> Result<String, Error> {
        match &self.restart_of {
            Some(id) => Ok(id.clone()),
            None => crate::id::generate(),
        }
    }

    /// What init does with these flags inside the new root (see
    /// [`crate::container::inside`]).
    pub fn configure(&self, config: &mut crate::config::InitConfig) {
        config.workdir = self
            .workdir
            .clone()
            .filter(|d| d != std::path::Path::new("/"));
        config.tmpfs = self.tmpfs.clone();
        config.ulimits = self.ulimits.clone();
        config.init = self.init;
        config.user = self.user;
        config.terminal = self.terminal;
    }

    /// `-d` runs in the background: nobody is there to type (`-i`); with
    /// `-t` its terminal's output goes to the log.
    pub fn check(&mut self, run: &RunOptions) -> Result<(), Error> {
        if self.detach && run.stdio.interactive {
            return Err(Error::Usage(
                "-d runs in the background: it does not mix with -i".into(),
            ));
        }
        if self.detach && run.trace == TraceMode::Step {
            return Err(Error::Usage(
                "-d runs in the background: --trace step needs run in the foreground".into(),
            ));
        }
        self.terminal = run.stdio.tty;
        Ok(())
    }
}

fn parse_id(text: &str) -> std::result::Result<String, String> {
    if crate::id::is_valid(text) {
        Ok(text.to_string())
    } else {
        Err("expected a container id (12 hex digits)".into())
    }
}

/// Stage 09 on: least privilege, and the ways to ask for more.
#[derive(clap::Args, Debug, Clone)]
pub struct SecurityOptions {
    /// Every capability and device, no seccomp filter, no masked paths
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability to the 14 docker keeps (NET_ADMIN, …, or ALL; repeatable)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL; repeatable)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// no-new-privileges[=true|false], seccomp=unconfined, seccomp=PROFILE.json
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Run as USER[:GROUP] (names from the image's /etc/passwd and /etc/group)
    #[arg(short, long, value_name = "USER[:GROUP]", value_parser = crate::security::users::parse)]
    pub user: Option<crate::security::users::UserSpec>,
    /// The container's oom_score_adj (-1000 to 1000)
    #[arg(long = "oom-score-adj", value_name = "N", allow_hyphen_values = true, value_parser = crate::security::parse_oom_score_adj)]
    pub oom_score_adj: Option<i32>,
    /// Set a namespaced sysctl: KEY=VALUE (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)
    #[arg(long = "sysctl", value_name = "KEY=VALUE", value_parser = crate::security::parse_sysctl)]
    pub sysctls: Vec<(String, String)>,
    /// Give the container a host device: HOST[:CONTAINER[:rwm]] (repeatable)
    #[arg(long = "device", value_name = "HOST[:CONTAINER[:rwm]]", value_parser = cgroups::devices::HostDevice::parse)]
    pub devices: Vec<cgroups::devices::HostDevice>,
}

impl SecurityOptions {
    /// The devices cgroup's rules: docker's list and every `--device`, or
    /// everything with `--privileged`.
    pub fn device_rules(&self) -> Vec<cgroups::devices::DeviceRule> {
        if self.privileged {
            return cgroups::devices::privileged_rules();
        }
        let mut rules = cgroups::devices::default_rules();
        rules.extend(self.devices.iter().map(|d| d.rule()));
        rules
    }

    /// What init is to apply, decided on the host before anything exists.
    pub fn hardening(
        &self,
        hierarchy: &cgroups::Hierarchy,
    ) -> Result<crate::security::Hardening, Error> {
        use crate::security::caps::Caps;
        use crate::security::seccomp::{self, SeccompChoice, SecurityOpt};
        let mut no_new_privileges = false;
        let mut choice = SeccompChoice::Default;
        for opt in &self.security_opt {
            match seccomp::parse_security_opt(opt)? {
                SecurityOpt::Seccomp(c) => choice = c,
                SecurityOpt::NoNewPrivileges(on) => no_new_privileges = on,
            }
        }
        let base = if self.privileged {
            Caps::all()
        } else {
            Caps::docker_default()
        };
        let capabilities = base
            .adjust(&self.cap_add, &self.cap_drop)
            .map_err(|e| Error::Usage(format!("--cap-add/--cap-drop: {e}")))?;
        // Compiled here, on the host, so a bad profile fails before anything
        // exists; init only loads it. Filtered for the capabilities the
        // container keeps, as docker does.
        let filter = match self.privileged {
            true => None,
            false => choice
                .into_profile()
                .map(|profile| profile.compile_cached(capabilities))
                .transpose()?,
        };
        Ok(crate::security::Hardening {
            privileged: self.privileged,
            capabilities,
            no_new_privileges,
            read_only_root: self.read_only,
            user: self.user.clone(),
            oom_score_adj: self.oom_score_adj,
            sysctls: self.sysctls.clone(),
            // docker's default: a private cgroup namespace on v2, the
            // host's on v1 (see the stage 09 chapter).
            cgroup_namespace: !self.privileged
                && matches!(hierarchy, cgroups::Hierarchy::Unified { .. }),
            seccomp: filter,
            devices: self.devices.iter().map(Into::into).collect(),
        })
    }
}

/// The command line as typed, kept before anything hides a value in it
/// (see [`crate::process::hide_in_argv`]): `start` runs a container again
/// with the flags its `run` was given.
static TYPED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// The arguments this process was started with (after the program name).
pub fn typed_args() -> &'static [String] {
    TYPED.get().map_or(&[], Vec::as_slice)
}

/// Parse the command line; a mistake is one line on stderr and exit 125.
pub fn parse<C: Parser>() -> C {
    let _ = TYPED.set(
        std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
    );
    match C::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind::*;
            if matches!(
                err.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                std::process::exit(if err.kind() == DisplayHelpOnMissingArgumentOrSubcommand {
                    EXIT_MINIBOX_FAILED as i32
                } else {
                    0
                });
            }
            // clap's message is a paragraph plus usage; keep the paragraph, on one line.
            let rendered = err.render().to_string();
            let paragraph: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = paragraph.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("{}: {message} (see --help)", crate::process::program_name());
            std::process::exit(EXIT_MINIBOX_FAILED as i32);
        }
    }
}

/// End `run` (or any verb): the container's exit code, or a one-line error
/// and its code. When a syscall failed, the trace up to the failed step
/// (with its errno) is drawn first; bad input gets the one line alone.
pub fn finish_run(result: anyhow::Result<Exit>) -> ExitCode {
    // `--trace step`: no more pauses, and the fifo goes.
    trace::finish();
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            // Asked to stop before the container started, run SIGKILLed
            // init; whatever failed after that failed because of it.
            let err = match crate::process::checkpoint() {
                Err(interrupted) if !is_interrupted(&err) => anyhow::Error::from(interrupted),
                _ => err,
            };
            let failed_step = err.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<Error>().map(Error::cause),
                    Some(Error::Sys { .. })
                )
            });
            if failed_step {
                trace::flush();
            }
            eprintln!("{}: {err:#}", crate::process::program_name());
            ExitCode::from(exit_code_of(&err))
        }
    }
}

/// End `init` after a failure (success never returns: it is an exec). init
/// prints nothing itself — its stderr is the container's — and tells run.
pub fn finish_init(result: anyhow::Result<Infallible>) -> ExitCode {
    let Err(err) = result;
    let code = exit_code_of(&err);
    let message = format!("{err:#}");
    if !sync::report_failure(message.clone(), code) {
        eprintln!("{}: {message}", crate::process::program_name());
    }
    ExitCode::from(code)
}

fn is_interrupted(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|cause| matches!(cause.downcast_ref::<Error>(), Some(Error::Interrupted(_))))
}

fn exit_code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Error>())
        .map_or(EXIT_MINIBOX_FAILED, Error::exit_code)
}

/// Stage 08 on: the container's network.
#[derive(clap::Args, Debug, Clone)]
pub struct NetworkOptions {
    /// bridge (default), none, host, container:NAME, or a network made with `network create`
    #[arg(long, value_name = "MODE", default_value = "bridge", value_parser = crate::network::parse_mode)]
    pub network: crate::network::Mode,
    /// Publish a port: [HOSTIP:]HOSTPORT:CONTAINERPORT[/tcp|udp] (repeatable)
    #[arg(short, long = "publish", value_name = "SPEC", value_parser = crate::network::ports::parse_publish)]
    pub publish: Vec<crate::network::ports::PortMapping>,
    /// Leave IPv6 on inside the container (off by default: the addresses
    /// minibox hands out are IPv4, and a lone link-local address makes
    /// programs try IPv6 first)
    #[arg(long)]
    pub ipv6: bool,
}

impl NetworkOptions {
    /// `-p` needs a network of the container's own to publish from.
    pub fn check(&self) -> Result<(), Error> {
        if !self.publish.is_empty() && !matches!(self.network, crate::network::Mode::Network(_)) {
            return Err(Error::Usage(
                "-p publishes ports of a bridge network: it does not mix with --network none, host or container:".into(),
            ));
        }
        Ok(())
    }

    /// The namespaces init is born in, for this network mode.
    pub fn namespaces(&self, all: nix::sched::CloneFlags) -> nix::sched::CloneFlags {
        self.network.namespaces(all)
    }

    /// Before init exists: an address and the published ports on a bridge
    /// network (`None` for the other modes).
    pub fn plan(
        &self,
        id: &str,
        name: &str,
        hostname: &str,
    ) -> Result<Option<crate::network::Plan>, Error> {
        match &self.network {
            crate::network::Mode::Network(net) => {
                let mut plan = crate::network::plan(net, id, name, hostname, &self.publish)?;
                plan.ipv6 = self.ipv6;
                Ok(Some(plan))
            }
            _ => Ok(None),
        }
    }

    /// `container:NAME`: that container's network namespace, to pass to init.
    pub fn shared_namespace(&self) -> Result<Option<std::os::fd::OwnedFd>, Error> {
        let crate::network::Mode::Container(name) = &self.network else {
            return Ok(None);
        };
        let other = state::find(name)?;
        let init = other
            .init
            .filter(|i| i.is_alive())
            .ok_or_else(|| Error::NotRunning(other.name.clone()))?;
        namespaces::open_network_of(init.pid).map(Some)
    }
}
