//! # Stage 07 — a small docker: detached containers and their lifecycle
//!
//! Stage 06 plus one idea: a container outlives the command that started
//! it. Each container gets a record on disk (`state.json`, written
//! atomically), a name, an environment, and — with `-d` — a *monitor*: run
//! forks, the parent prints the container id and returns, and the child
//! stays behind as the container's parent, captures its output into a log,
//! and records how it ended. Around that record: `ps`, `logs`, `exec` (join
//! a running container's namespaces with setns), `stop` (SIGTERM, then
//! SIGKILL), `rm` and `commit`.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cgroups::{self, Cgroup, Hierarchy};
use minibox::cli::{self, ResourceOptions, RunOptions};
use minibox::command::{self, CommandPipe, COMMAND_FD};
use minibox::image::{self, ImageCommand};
use minibox::layer::{self, Layer};
use minibox::lifecycle;
use minibox::mounts;
use minibox::namespaces::{self, Exit, InitSpec};
use minibox::paths::ContainerLock;
use minibox::rootfs;
use minibox::state::{self, ContainerState, Status};
use minibox::sync::RunLink;
use minibox::trace;
use minibox::volumes::{self, Volume};
use minibox::Error;
use nix::sched::CloneFlags;
use std::convert::Infallible;
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::process::ExitCode;

/// The namespaces init is born in (the user namespace comes much later).
const NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWUTS
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET);

#[derive(Parser)]
#[command(
    name = "07-full",
    version,
    about = "minibox stage 07: detached containers, ps, logs, exec, stop, rm, commit"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces, in a cgroup of its own
    Run(Box<RunArgs>),
    /// List containers
    Ps {
        /// All containers, not only running ones
        #[arg(short, long)]
        all: bool,
        /// Only their ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show what a detached container printed
    Logs {
        /// Keep following until the container exits
        #[arg(short, long)]
        follow: bool,
        container: String,
    },
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Stop containers: SIGTERM, then SIGKILL after a grace period
    Stop {
        /// Seconds to wait for the container to exit before SIGKILL
        #[arg(
            short = 't',
            long = "time",
            default_value_t = 10,
            value_name = "SECONDS"
        )]
        seconds: u64,
        #[arg(
            long,
            value_enum,
            default_value_t,
            env = "MINIBOX_TRACE",
            value_name = "MODE"
        )]
        trace: trace::TraceMode,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove stopped containers (with -f, running ones too)
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Save a container's filesystem as a new image
    Commit { container: String, image: String },
    /// List images
    Images,
    /// Import, list and remove images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove cgroups and layers left behind by runs that were killed
    Cleanup {
        #[arg(long, value_name = "PATH", default_value = cgroups::DEFAULT_PARENT, value_parser = cgroups::parse_parent, env = "MINIBOX_CGROUP_PARENT")]
        cgroup_parent: String,
    },
    /// The container's first process (started by `run`, not by hand)
    #[command(hide = true)]
    Init(InitArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    options: RunOptions,
    #[command(flatten)]
    resources: ResourceOptions,
    /// Use this directory as the image instead of IMAGE (all arguments are then the command)
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Run in the background: print the container id and return
    #[arg(short, long)]
    detach: bool,
    /// A name for the container [default: its id]
    #[arg(long, value_parser = state::parse_name)]
    name: Option<String>,
    /// Set an environment variable: KEY=VALUE (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = state::parse_env)]
    env: Vec<String>,
    /// Read environment variables from a file, one KEY=VALUE a line
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Bind-mount a host directory: HOST:CONTAINER[:ro] (repeatable)
    #[arg(short, long = "volume", value_name = "HOST:CONTAINER[:ro]", value_parser = volumes::parse)]
    volumes: Vec<Volume>,
    /// The image, then the command to run in it [default command: sh]
    #[arg(
        trailing_var_arg = true,
        required_unless_present = "rootfs",
        value_name = "IMAGE [COMMAND [ARGS...]]"
    )]
    args: Vec<OsString>,
}

impl RunArgs {
    /// What `ps` shows as the image: its name, or the --rootfs directory.
    fn image_name(&self) -> String {
        match &self.rootfs {
            Some(dir) => dir.display().to_string(),
            None => self
                .args
                .first()
                .map_or(String::new(), |a| a.to_string_lossy().into_owned()),
        }
    }

    /// docker's `IMAGE [COMMAND]`, or with `--rootfs` just `[COMMAND]`.
    fn image_and_command(&self) -> Result<(PathBuf, Vec<OsString>)> {
        let (lower, command) = match &self.rootfs {
            Some(dir) => (rootfs::resolve(Some(dir))?, self.args.clone()),
            None => {
                let Some((name, command)) = self.args.split_first() else {
                    return Err(Error::Usage("an IMAGE is needed (or --rootfs DIR)".into()).into());
                };
                (image::resolve(&name.to_string_lossy())?, command.to_vec())
            }
        };
        let command = if command.is_empty() {
            vec!["sh".into()]
        } else {
            command
        };
        Ok((lower, command))
    }
}

#[derive(Args)]
struct ExecArgs {
    /// Keep stdin open
    #[arg(short, long)]
    interactive: bool,
    /// Use this terminal (needs one on stdin)
    #[arg(short, long)]
    tty: bool,
    #[arg(
        long,
        value_enum,
        default_value_t,
        env = "MINIBOX_TRACE",
        value_name = "MODE"
    )]
    trace: trace::TraceMode,
    container: String,
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

#[derive(Args)]
struct InitArgs {
    #[arg(long)]
    sync_fd: RawFd,
    #[arg(long)]
    hostname: String,
    #[arg(long)]
    image: PathBuf,
    #[arg(long)]
    layer: PathBuf,
    #[arg(long = "volume", value_parser = volumes::parse)]
    volumes: Vec<Volume>,
    #[arg(long = "env")]
    env: Vec<String>,
}

fn main() -> ExitCode {
    match cli::parse::<Cli>() {
        Cli::Run(args) => cli::finish_run(run(*args)),
        Cli::Init(args) => cli::finish_init(init(args)),
        Cli::Exec(args) => cli::finish_run(exec(args)),
        Cli::Stop {
            seconds,
            trace,
            containers,
        } => cli::finish_run(stop(&containers, seconds, trace)),
        Cli::Ps { all, quiet } => cli::finish_run(ps(all, quiet)),
        Cli::Logs { follow, container } => cli::finish_run(logs(&container, follow)),
        Cli::Rm { force, containers } => cli::finish_run(rm(&containers, force)),
        Cli::Commit { container, image } => cli::finish_run(commit(&container, &image)),
        Cli::Images => cli::finish_run(image_command(ImageCommand::Ls)),
        Cli::Image(command) => cli::finish_run(image_command(command)),
        Cli::Cleanup { cgroup_parent } => cli::finish_run(cleanup(&cgroup_parent)),
    }
}

/// The parent, on the host: start init in new namespaces, wait for it.
fn run(args: RunArgs) -> Result<Exit> {
    trace::start(args.options.trace);
    let limits = args.resources.limits()?;
    let id = namespaces::generate_id()?;
    let hostname = args.options.hostname_or(&id)?;
    let stdin = args.options.stdin()?;
    let (image, command) = args.image_and_command()?;
    let env = state::environment(&args.env, &args.env_file)?;
    if args.detach && (args.options.tty || args.options.interactive) {
        return Err(Error::Usage(
            "-d runs in the background: it does not mix with -i or -t".into(),
        )
        .into());
    }
    for volume in &args.volumes {
        volume.prepare_host()?;
    }

    // The container's record: from here on `ps -a` lists it. The lock is
    // held for the container's whole life (by the monitor, with -d).
    let _lock = ContainerLock::acquire(&id)?;
    let mut record = ContainerState {
        id: id.clone(),
        name: args.name.clone().unwrap_or_else(|| id.clone()),
        image: args.image_name(),
        command: command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        env: env.clone(),
        hostname: hostname.clone(),
        lower: image.clone(),
        created: state::now(),
        status: Status::Created,
        pid: None,
        pid_start: None,
        exit_code: None,
        finished: None,
        oom_killed: false,
        cgroup_dirs: Vec::new(),
        cgroup_parent: args.resources.cgroup_parent.clone(),
        auto_remove: args.rm,
    };
    let mut reservation = record.create()?;

    // -d: here the process splits. The parent returns the id once the
    // container is up; this process goes on as the container's monitor.
    let started = if args.detach {
        Some(lifecycle::detach(&id)?)
    } else {
        None
    };

    // The cgroup exists, limits and all, before init exists.
    let hierarchy = Hierarchy::detect()?;
    cgroups::remove_stale(&hierarchy, &args.resources.cgroup_parent)?;
    layer::remove_stale();
    let mut cgroup = Cgroup::create(hierarchy, &args.resources.cgroup_parent, &id, &limits)?;
    let mut layer = Layer::create(&id, &image)?;
    let log = match started {
        Some(_) => Some(state::open_log(&id)?),
        None => None,
    };

    let command_pipe = CommandPipe::new()?;
    let mut init = namespaces::spawn_init(InitSpec {
        namespaces: NAMESPACES,
        args: init_args(&hostname, &layer, &args.volumes, &env),
        pass_fds: output_fds(command_pipe.read_end(), log.as_ref()),
        stdin,
        terminal: args.options.tty,
    })
    .context("cannot start the container")?;
    command_pipe.send(&command)?;
    cgroup.add_process(init.pid)?;
    init.release()?;

    init.wait_for_exec()?;
    record.status = Status::Running;
    record.pid = Some(init.pid.as_raw());
    record.pid_start = state::process_start_time(init.pid.as_raw());
    record.cgroup_dirs = cgroup.dirs().into_iter().map(|(_, dir)| dir).collect();
    record.save()?;
    reservation.keep();
    if let Some(started) = started {
        started.started();
        lifecycle::release_terminal()?;
    }

    let exit = init.wait()?;
    let oom_kills = cgroup.oom_kills();
    cgroup.remove()?;
    record.status = Status::Exited;
    record.exit_code = Some(exit.code().into());
    record.finished = Some(state::now());
    record.oom_killed = oom_kills > 0;
    if args.rm {
        layer.remove()?;
    } else {
        // Kept for `logs`, `commit` and `ps -a` until `rm`.
        layer.keep();
        record.save()?;
    }
    trace::flush();
    if oom_kills > 0 {
        let limit = limits.memory.map_or("none".into(), cgroups::human_bytes);
        return Err(Error::OutOfMemory {
            limit,
            kills: oom_kills,
        }
        .into());
    }
    Ok(exit)
}

/// init's fds: the command pipe, and with -d the log as stdout and stderr.
fn output_fds<'a>(
    command: std::os::fd::BorrowedFd<'a>,
    log: Option<&'a std::fs::File>,
) -> Vec<(std::os::fd::BorrowedFd<'a>, RawFd)> {
    let mut fds = vec![(command, COMMAND_FD)];
    if let Some(log) = log {
        use std::os::fd::AsFd;
        fds.extend([(log.as_fd(), 1), (log.as_fd(), 2)]);
    }
    fds
}

/// init's arguments: where its image, layer and volumes are, and its
/// environment (briefly visible in the host's `ps`, until init execs).
fn init_args(hostname: &str, layer: &Layer, volumes: &[Volume], env: &[String]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--hostname".into(),
        hostname.into(),
        "--image".into(),
        layer.lower.clone().into(),
        "--layer".into(),
        layer.dir.clone().into(),
    ];
    for volume in volumes {
        args.extend(["--volume".into(), volume.to_string().into()]);
    }
    for kv in env {
        args.extend(["--env".into(), kv.into()]);
    }
    args
}

/// `exec`: join a running container's namespaces and cgroup, then fork,
/// so the command is really inside its PID namespace (setns into a PID
/// namespace moves only our future children), and run it there.
fn exec(args: ExecArgs) -> Result<Exit> {
    trace::start_as("exec", args.trace);
    let container = state::find(&args.container)?;
    if !container.is_running() {
        return Err(Error::Usage(format!("container {} is not running", container.name)).into());
    }
    let options = RunOptions {
        interactive: args.interactive,
        tty: args.tty,
        hostname: None,
        trace: args.trace,
    };
    let stdin = options.stdin()?;
    lifecycle::enter(&container)?;
    let program = command::lookup(&args.command[0], &state::path_of(&container.env))?;
    trace::flush();
    let child = namespaces::fork_exec(&program, &args.command, &container.env, stdin)?;
    let exit = child.wait()?;
    trace::flush();
    Ok(exit)
}

/// `stop`: SIGTERM to the container's PID 1, SIGKILL after the grace period.
fn stop(containers: &[String], seconds: u64, mode: trace::TraceMode) -> Result<Exit> {
    trace::start_as("stop", mode);
    for name in containers {
        let container = state::find(name)?;
        lifecycle::stop(&container, std::time::Duration::from_secs(seconds))?;
        trace::flush();
        println!("{name}");
    }
    Ok(Exit::Code(0))
}

fn ps(all: bool, quiet: bool) -> Result<Exit> {
    print!("{}", lifecycle::ps(all, quiet));
    Ok(Exit::Code(0))
}

fn logs(name: &str, follow: bool) -> Result<Exit> {
    let container = state::find(name)?;
    lifecycle::logs(&container, follow, &mut std::io::stdout())?;
    Ok(Exit::Code(0))
}

/// `rm`: a stopped container's layer, state and log (with -f, stop it first).
fn rm(containers: &[String], force: bool) -> Result<Exit> {
    for name in containers {
        let (id, parent) = match state::find(name) {
            Ok(container) => {
                if container.is_running() {
                    if !force {
                        return Err(Error::Usage(format!(
                            "container {name} is running: stop it first, or use rm -f"
                        ))
                        .into());
                    }
                    lifecycle::stop(&container, std::time::Duration::ZERO)?;
                }
                (container.id, Some(container.cgroup_parent))
            }
            // A crash can leave a directory without a readable state.
            Err(_) if state::is_broken(name) => (name.clone(), None),
            Err(err) => return Err(err.into()),
        };
        lifecycle::remove(&id, parent.as_deref())?;
        println!("{name}");
    }
    Ok(Exit::Code(0))
}

fn commit(name: &str, image: &str) -> Result<Exit> {
    let container = state::find(name)?;
    lifecycle::commit(&container, &container.lower, image)?;
    println!("{image}");
    Ok(Exit::Code(0))
}

fn image_command(command: ImageCommand) -> Result<Exit> {
    image::run_command(command)?;
    Ok(Exit::Code(0))
}

/// Remove what runs killed with SIGKILL left behind.
fn cleanup(cgroup_parent: &str) -> Result<Exit> {
    let (cgroups, layers) = lifecycle::remove_leftovers(cgroup_parent)?;
    println!("removed {cgroups} stale cgroup(s) under {cgroup_parent} and {layers} layer(s)");
    Ok(Exit::Code(0))
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init(args: InitArgs) -> Result<Infallible> {
    let run = RunLink::connect(args.sync_fd)?;
    run.wait_for_go("placed in its cgroup")?;
    let command = command::receive(COMMAND_FD)?;
    namespaces::set_hostname(&args.hostname)?;
    mounts::make_mount_tree_private()?;
    let layer = Layer::open(&args.layer, &args.image);
    layer.mount()?;
    for volume in &args.volumes {
        volume.mount(&layer.merged())?;
    }
    rootfs::pivot_into(&layer.merged())?;
    mounts::mount_proc()?;
    mounts::mount_dev()?;
    mounts::mount_sys_readonly()?;
    let env = state::with_defaults(command::container_env(&args.hostname), &args.env);
    Ok(command::exec(&run, &command, &env)?)
}
