//! Stage 07's idea: a container outlives the command that started it.
//!
//! Each container gets a record ([`state`]), a name, and — with `-d` — a
//! monitor ([`detach`]). Around that record, the verbs a docker user
//! expects: `ps`, `logs`, `exec` ([`exec`]), `stop` ([`stop`]), `rm`,
//! `commit` ([`commit`]), `images`, `cleanup`. A stage offers them all by
//! flattening [`Verb`] into its command line; each is one call here.

pub mod commit;
pub mod control;
pub mod copy;
pub mod detach;
pub mod exec;
pub mod inside;
pub mod inspect;
pub mod logging;
pub mod ps;
pub mod reaper;
pub mod start;
pub mod state;
pub mod stop;

pub use detach::{detach, release_terminal, Detached};
pub use state::{ContainerState, Status};

use crate::cgroups::{self, Hierarchy};
use crate::error::{Error, Result};
use crate::image::{self, ImageCommand};
use crate::layer;
use crate::lock::ContainerLock;
use crate::process::{Exit, ProcessStamp};
use crate::trace::{self, TraceMode};
use state::{Condition, Entry, Found};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `run` knows about a new container, for its record.
pub struct NewContainer<'a> {
    pub id: &'a str,
    pub name: Option<String>,
    pub image: String,
    pub command: &'a [std::ffi::OsString],
    pub env: Vec<String>,
    pub hostname: &'a str,
    pub lower: &'a Path,
    pub cgroup_parent: &'a str,
    pub auto_remove: bool,
    /// The cgroup limits (`inspect` shows them).
    pub limits: &'a crate::cgroups::Limits,
    /// `-v` (`inspect` shows them as Mounts) and IMAGE COMMAND as typed
    /// (`start` runs them again).
    pub image_args: &'a crate::cli::ImageArgs,
    /// Stage 07's other flags: labels, `-w`, `--stop-signal`, `--tmpfs`, …
    pub options: &'a crate::cli::ContainerOptions,
}

impl ContainerState {
    /// The record of a container being created (or, for `start`, run
    /// again: it keeps its name and creation time).
    pub fn new(new: NewContainer<'_>) -> ContainerState {
        let before = new
            .options
            .restart_of
            .as_ref()
            .and_then(|id| state::load(id).ok());
        let typed = crate::cli::typed_args();
        let image_typed = new.image_args.args.len();
        // `run FLAGS… IMAGE COMMAND…`: the flags are what lies between.
        let flags = typed
            .get(1..typed.len().saturating_sub(image_typed))
            .unwrap_or_default();
        ContainerState {
            id: new.id.to_string(),
            name: before.as_ref().map_or_else(
                || new.name.unwrap_or_else(|| new.id.to_string()),
                |b| b.name.clone(),
            ),
            image: new.image,
            command: new
                .command
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            env: new.env,
            hostname: new.hostname.to_string(),
            lower: new.lower.to_path_buf(),
            created: before.as_ref().map_or_else(state::now, |b| b.created),
            status: Status::Created,
            init: None,
            exit_code: None,
            finished: None,
            oom_killed: false,
            cgroup_parent: new.cgroup_parent.to_string(),
            auto_remove: new.auto_remove,
            started_at: None,
            labels: new.options.labels.iter().cloned().collect(),
            paused: false,
            stop_signal: new.options.stop_signal.clone(),
            stop_timeout: new.options.stop_timeout,
            working_dir: new
                .options
                .workdir
                .as_ref()
                .map(|d| d.display().to_string()),
            entrypoint: new.options.entrypoint.clone().filter(|e| !e.is_empty()),
            limits: state::RecordedLimits::of(new.limits),
            mounts: new
                .image_args
                .volumes
                .iter()
                .map(|v| state::RecordedMount {
                    kind: "bind".into(),
                    source: v.host.display().to_string(),
                    destination: v.container.display().to_string(),
                    read_write: !v.read_only,
                })
                .chain(new.options.tmpfs.iter().map(|t| state::RecordedMount {
                    kind: "tmpfs".into(),
                    source: t.options(),
                    destination: t.path.display().to_string(),
                    read_write: !t.read_only,
                }))
                .collect(),
            ulimits: new.options.ulimits.clone(),
            run_flags: start::flags_to_keep(flags),
            run_dir: match &before {
                Some(before) => before.run_dir.clone(),
                None => std::env::current_dir().ok(),
            },
            run_image: typed
                .get(typed.len().saturating_sub(image_typed)..)
                .unwrap_or_default()
                .to_vec(),
            user: new.options.user,
            init_process: new.options.init,
        }
    }

    /// What others may have changed in the record on disk meanwhile
    /// (`rename`): keep it, so saving this copy does not undo it.
    fn adopt_changes(&mut self) {
        if let Ok(disk) = state::load(&self.id) {
            self.name = disk.name;
        }
    }

    /// init exec'd the command: record it as running.
    pub fn started(&mut self, init: nix::unistd::Pid) -> Result<()> {
        let _lock = crate::lock::StateLock::acquire()?;
        self.adopt_changes();
        self.status = Status::Running;
        self.init = ProcessStamp::of(init.as_raw());
        self.started_at = Some(state::now());
        self.save()
    }

    /// The container ended: record how — or, with `--rm`, remove the
    /// record, the log and the layer.
    pub fn exited(&mut self, exit: Exit, oom_killed: bool) -> Result<()> {
        // Everything the container printed is in its log before it is
        // recorded as exited (`logs -f` stops at that).
        logging::finish();
        let _lock = crate::lock::StateLock::acquire()?;
        self.adopt_changes();
        self.paused = false;
        self.status = Status::Exited;
        // An OOM kill is 137, whatever the command's survivors made of it
        // (on v1 the kernel kills one process, and its parent may exit 1):
        // the code `run` exits with, and what docker's ps shows.
        let code = if oom_killed { 137 } else { exit.code() };
        self.exit_code = Some(code.into());
        self.finished = Some(state::now());
        self.oom_killed = oom_killed;
        if self.auto_remove {
            // A `wait` may hold this file open: it reads the code from it
            // once the directory is gone. Written in place (not renamed), so
            // the file it holds is the one that gets the code.
            let path = state::exit_code_path(&self.id);
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut file| writeln!(file, "{code}"));
            if let Err(e) = written {
                crate::trace::failed(
                    format!("write {}", path.display()),
                    crate::error::errno_of(&e),
                );
            }
            return layer::remove_dir(&layer::container_dir(&self.id));
        }
        self.save()
    }
}

/// init's stdout and stderr with `-d`: the container's log.
pub fn log_fds(log: Option<&File>) -> Vec<(BorrowedFd<'_>, RawFd)> {
    log.map_or_else(Vec::new, |log| vec![(log.as_fd(), 1), (log.as_fd(), 2)])
}

/// What a later stage adds to a container that `rm` and `cleanup` must
/// undo too (stage 08: its network lease, veth and rules). The verbs are
/// stage 07's; a stage passes its extensions to [`Verb::execute`].
pub trait Extension {
    /// Undo it for container `id` (its run is gone; `rm` holds its lock).
    fn remove(&self, id: &str) -> Result<()>;
    /// `cleanup`: undo it for every container `alive` says is gone; a line
    /// for cleanup's report.
    fn cleanup(&self, alive: &dyn Fn(&str) -> bool) -> Result<String>;
    /// The header of a column `ps` shows for it, if any.
    fn ps_header(&self) -> Option<&'static str> {
        None
    }
    /// That column's cell for container `id`.
    fn ps_cell(&self, id: &str) -> String {
        let _ = id;
        String::new()
    }
}

/// The verbs around container records, as a stage's subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Verb {
    /// List containers
    Ps {
        /// All containers, not only running ones
        #[arg(short, long)]
        all: bool,
        /// Only their ids
        #[arg(short, long)]
        quiet: bool,
        /// Only those matching: label=KEY[=VALUE], name=TEXT, id=PREFIX, status=STATUS (repeatable)
        #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = Filter::parse)]
        filter: Vec<Filter>,
        /// 'table', 'table TEMPLATE', 'json' or a TEMPLATE, e.g. '{{.ID}}\t{{.Names}}'
        #[arg(long, value_name = "FORMAT", value_parser = ps::Format::parse)]
        format: Option<ps::Format>,
        /// The N last created containers, whatever their state
        #[arg(short = 'n', long = "last", value_name = "N")]
        last: Option<usize>,
        /// The last created container, whatever its state (-n 1)
        #[arg(short = 'l', long)]
        latest: bool,
        /// Do not cut the COMMAND column
        #[arg(long)]
        no_trunc: bool,
        /// Show the SIZE column: what each container wrote (virtual: with its image)
        #[arg(short, long)]
        size: bool,
    },
    /// Show what a detached container printed
    Logs {
        /// Keep following until the container exits
        #[arg(short, long)]
        follow: bool,
        /// Put the time each line arrived in front of it (RFC 3339, UTC)
        #[arg(short, long)]
        timestamps: bool,
        /// Only the last N lines ("all": every line)
        #[arg(short = 'n', long, value_name = "N", default_value = "all", value_parser = parse_tail)]
        tail: usize,
        container: String,
    },
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Stop containers: SIGTERM (or --stop-signal), then SIGKILL after a grace period
    Stop {
        /// Seconds to wait for the container to exit before SIGKILL [default: its --stop-timeout, or 10]
        #[arg(short = 't', long = "time", value_name = "SECONDS")]
        seconds: Option<u64>,
        #[arg(
            long,
            value_enum,
            default_value_t,
            env = "MINIBOX_TRACE",
            value_name = "MODE"
        )]
        trace: TraceMode,
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
    /// Save a container's filesystem as a new image (a running one is frozen meanwhile)
    Commit {
        #[arg(
            long,
            value_enum,
            default_value_t,
            env = "MINIBOX_TRACE",
            value_name = "MODE"
        )]
        trace: TraceMode,
        container: String,
        /// REPOSITORY[:TAG] of the new image
        #[arg(value_parser = image::parse_name)]
        image: String,
    },
    /// List images
    Images,
    /// Images: import, load and save (OCI layouts), list, tag, inspect, remove
    #[command(subcommand)]
    Image(ImageCommand),
    /// Show containers' records as docker's JSON (or --format a template)
    Inspect {
        /// A Go template of paths, e.g. '{{.State.Pid}}' or '{{json .Config}}'
        #[arg(short, long, value_name = "TEMPLATE", value_parser = inspect::Template::parse)]
        format: Option<inspect::Template>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Block until containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers' PID 1 (SIGKILL unless -s)
    Kill {
        /// The signal: KILL, SIGTERM, HUP, 15, …
        #[arg(short, long, value_name = "SIGNAL", default_value = "KILL", value_parser = stop::parse_signal)]
        signal: nix::sys::signal::Signal,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Rename a container
    Rename {
        container: String,
        #[arg(value_parser = state::parse_name)]
        new_name: String,
    },
    /// Show a running container's processes (host and container pids)
    Top { container: String },
    /// Freeze every process of running containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Thaw paused containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// CPU, memory and PIDs of containers, from their cgroups
    Stats {
        /// Print one table and exit (without it: one every second, until Ctrl-C)
        #[arg(long)]
        no_stream: bool,
        /// All containers, not only running ones
        #[arg(short, long)]
        all: bool,
        containers: Vec<String>,
    },
    /// Run stopped containers again, on their own layers (in the background unless -a)
    Start {
        /// Run in the foreground: its output here, its exit code as this command's
        #[arg(short, long)]
        attach: bool,
        #[arg(
            long,
            value_enum,
            default_value_t,
            env = "MINIBOX_TRACE",
            value_name = "MODE"
        )]
        trace: TraceMode,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop containers (if they run), then start them again
    Restart {
        /// Seconds to wait for each to exit before SIGKILL [default: its --stop-timeout, or 10]
        #[arg(short = 't', long = "time", value_name = "SECONDS")]
        seconds: Option<u64>,
        #[arg(
            long,
            value_enum,
            default_value_t,
            env = "MINIBOX_TRACE",
            value_name = "MODE"
        )]
        trace: TraceMode,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Copy files between a container and the host: CONTAINER:SRC DEST or SRC CONTAINER:DEST ("-": a tar archive on stdout or stdin)
    Cp {
        /// Copy what a symbolic link SRC points to, not the link
        #[arg(short = 'L', long = "follow-link")]
        follow_link: bool,
        /// Keep the owners (uid, gid) the files have in the source
        #[arg(short, long)]
        archive: bool,
        #[arg(value_name = "SRC")]
        src: String,
        #[arg(value_name = "DEST")]
        dest: String,
    },
    /// Write a container's filesystem as a tar archive (to stdout, or -o FILE)
    Export {
        /// Write to FILE instead of stdout
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        container: String,
    },
    /// Container commands grouped as docker groups them (`container prune`)
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Remove what killed runs left behind: dead containers, cgroups, layers, locks
    Cleanup {
        #[arg(long, value_name = "PATH", default_value = cgroups::DEFAULT_PARENT, value_parser = cgroups::parse_parent, env = "MINIBOX_CGROUP_PARENT")]
        cgroup_parent: String,
    },
}

/// `container …`.
#[derive(clap::Subcommand, Debug)]
pub enum ContainerCommand {
    /// Remove every container that is not running
    Prune {
        /// Do not ask for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// `exec`'s flags (docker's).
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub stdio: crate::cli::StdioOptions,
    /// Set an environment variable: KEY=VALUE (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE", value_parser = state::parse_env, allow_hyphen_values = true)]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Run as USER[:GROUP] (names or numbers, looked up in the container's /etc/passwd)
    #[arg(short, long, value_name = "USER[:GROUP]", value_parser = crate::security::users::parse)]
    pub user: Option<crate::security::users::UserSpec>,
    #[arg(
        long,
        value_enum,
        default_value_t,
        env = "MINIBOX_TRACE",
        value_name = "MODE"
    )]
    pub trace: TraceMode,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

impl Verb {
    /// Carry out the verb; its exit code for the binary to exit with.
    pub fn execute(self, extensions: &[&dyn Extension]) -> Result<Exit> {
        // Stage 10: an ordinary user sees and controls only their own.
        crate::paths::check_roots_are_mine().map_err(Error::failed)?;
        match self {
            Verb::Ps {
                all,
                quiet,
                filter,
                format,
                last,
                latest,
                no_trunc,
                size,
            } => {
                let options = ps::Options {
                    all,
                    quiet,
                    filters: filter,
                    last: if latest { Some(1) } else { last },
                    no_trunc,
                    size,
                    format,
                };
                print!("{}", ps::ps(&options, extensions).map_err(Error::failed)?)
            }
            Verb::Logs {
                follow,
                timestamps,
                tail,
                container,
            } => {
                let container = state::find(&container).map_err(Error::failed)?;
                let options = LogOptions {
                    follow,
                    timestamps,
                    tail,
                };
                logs(&container, options, &mut std::io::stdout()).map_err(Error::failed)?;
            }
            Verb::Exec(args) => {
                trace::start_as("exec", args.trace);
                let stdin = args.stdio.stdin()?;
                // docker: exec runs as the container's user unless -u says.
                let user = args.user.or_else(|| {
                    state::find(&args.container)
                        .ok()
                        .and_then(|c| c.user)
                        .map(|(uid, gid)| crate::security::users::UserSpec {
                            user: uid.to_string(),
                            group: Some(gid.to_string()),
                        })
                });
                let exit = exec::exec(exec::ExecRequest {
                    container: args.container,
                    command: args.command,
                    stdin,
                    terminal: args.stdio.tty,
                    env: args.env,
                    workdir: args.workdir,
                    user,
                })
                .map_err(exec_failure)?;
                trace::flush();
                return Ok(exit);
            }
            Verb::Stop {
                seconds,
                trace: mode,
                containers,
            } => {
                trace::start_as("stop", mode);
                for name in containers {
                    let container = state::find(&name).map_err(Error::failed)?;
                    stop::stop(&container, stop::grace_for(&container, seconds))
                        .map_err(Error::failed)?;
                    trace::flush();
                    println!("{name}");
                }
            }
            Verb::Rm { force, containers } => {
                for name in containers {
                    remove(&name, force, extensions).map_err(Error::failed)?;
                    println!("{name}");
                }
            }
            Verb::Commit {
                trace: mode,
                container,
                image,
            } => {
                trace::start_as("commit", mode);
                let container = state::find(&container).map_err(Error::failed)?;
                let committed = commit::commit(&container, &image).map_err(Error::failed)?;
                trace::flush();
                if !committed.skipped.is_empty() {
                    eprintln!(
                        "left out (a tar cannot hold them): {}",
                        committed.skipped.join(", ")
                    );
                }
                println!("{image}");
            }
            Verb::Inspect { format, containers } => inspect_all(&containers, format.as_ref())?,
            Verb::Wait { containers } => {
                for name in containers {
                    println!("{}", control::wait(&name).map_err(Error::failed)?);
                }
            }
            Verb::Kill { signal, containers } => {
                for name in containers {
                    control::kill(&name, signal).map_err(Error::failed)?;
                    println!("{name}");
                }
            }
            Verb::Rename {
                container,
                new_name,
            } => control::rename(&container, &new_name).map_err(Error::failed)?,
            Verb::Top { container } => {
                print!("{}", control::top(&container).map_err(Error::failed)?)
            }
            Verb::Pause { containers } => {
                for name in containers {
                    control::set_paused(&name, true).map_err(Error::failed)?;
                    println!("{name}");
                }
            }
            Verb::Unpause { containers } => {
                for name in containers {
                    control::set_paused(&name, false).map_err(Error::failed)?;
                    println!("{name}");
                }
            }
            Verb::Stats {
                no_stream,
                all,
                containers,
            } => loop {
                let table = control::stats(&containers, all).map_err(Error::failed)?;
                print!("{table}");
                if no_stream {
                    break;
                }
                let _ = std::io::stdout().flush();
                std::thread::sleep(Duration::from_millis(500));
            },
            Verb::Start {
                attach,
                trace: mode,
                containers,
            } => {
                if attach && containers.len() > 1 {
                    return Err(Error::Usage(
                        "start -a attaches to one container at a time".into(),
                    ));
                }
                for name in containers {
                    let exit = start::start(&name, attach, mode).map_err(Error::failed)?;
                    if attach {
                        return Ok(exit);
                    }
                    println!("{name}");
                }
            }
            Verb::Restart {
                seconds,
                trace: mode,
                containers,
            } => {
                for name in containers {
                    start::restart(&name, seconds, mode).map_err(Error::failed)?;
                    println!("{name}");
                }
            }
            Verb::Cp {
                follow_link,
                archive,
                src,
                dest,
            } => {
                let options = copy::CpOptions {
                    follow: follow_link,
                    archive,
                };
                // Two container paths, or none: a command line docker
                // rejects (125); anything after that is a failed copy (1).
                copy::check_locations(&src, &dest)?;
                let skipped = copy::cp(&src, &dest, options).map_err(Error::failed)?;
                note_skipped(&skipped);
            }
            Verb::Export { output, container } => {
                let skipped = copy::export(&container, output.as_deref()).map_err(Error::failed)?;
                note_skipped(&skipped);
            }
            Verb::Container(ContainerCommand::Prune { force }) => {
                if !force && !confirm(
                    "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ",
                ) {
                    return Ok(Exit::Code(0));
                }
                let (removed, bytes) = control::prune(extensions).map_err(Error::failed)?;
                println!("Deleted Containers:");
                for id in removed {
                    println!("{id}");
                }
                println!("\nTotal reclaimed space: {}", control::human_size(bytes));
            }
            Verb::Images => image::run_command(ImageCommand::Ls, image_user)?,
            Verb::Image(command) => image::run_command(command, image_user)?,
            Verb::Cleanup { cgroup_parent } => {
                println!("{}", cleanup(&cgroup_parent, extensions)?)
            }
        }
        Ok(Exit::Code(0))
    }
}

/// What a tar (or a copy) could not carry, on stderr.
fn note_skipped(skipped: &[String]) {
    if !skipped.is_empty() {
        eprintln!(
            "left out (sockets, device nodes and FIFOs are not copied): {}",
            skipped.join(", ")
        );
    }
}

/// `exec`'s own failures are failed actions (1, as docker's `exec`); a
/// command that is not found or cannot be executed keeps its 127 or 126.
fn exec_failure(err: Error) -> Error {
    match err {
        Error::CommandNotFound(_) | Error::CannotExecute(_) | Error::Init { .. } => err,
        other => other.failed(),
    }
}

/// `inspect`: a JSON array of the containers found (as docker, 4-space
/// indents), or one `--format` line each. A name not found is reported
/// after the others are printed (exit 1).
fn inspect_all(names: &[String], format: Option<&inspect::Template>) -> Result<()> {
    let mut values = Vec::new();
    let mut missing = None;
    for name in names {
        match state::find(name) {
            Ok(container) => values.push(inspect::to_json(&container)),
            Err(err) => {
                missing.get_or_insert(err);
            }
        }
    }
    match format {
        Some(template) => {
            for value in &values {
                println!("{}", template.render(value).map_err(Error::failed)?);
            }
        }
        None => {
            let mut out = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(&values, &mut serializer)
                .map_err(|e| Error::Protocol(format!("encode inspect: {e}")))?;
            println!("{}", String::from_utf8_lossy(&out));
        }
    }
    missing.map_or(Ok(()), |err| Err(err.failed()))
}

/// Ask on stderr, read the answer from stdin: only `y` or `yes` is yes.
fn confirm(question: &str) -> bool {
    eprint!("{question}");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// A container whose layer rests on `rootfs` (its image may not go).
fn image_user(rootfs: &Path) -> Option<String> {
    state::list().into_iter().find_map(|entry| match entry {
        Entry::Ok(c) if c.lower == rootfs => Some(c.name.clone()),
        _ => None,
    })
}

/// One `ps --filter`, docker's: `label` filters must all match; of the
/// other kinds, any one of a kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    Label(String, Option<String>),
    Name(String),
    Id(String),
    Status(String),
}

impl Filter {
    pub fn parse(text: &str) -> std::result::Result<Filter, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or("expected KEY=VALUE, like label=tier=web or status=exited")?;
        match key {
            "label" => {
                let (k, v) = value
                    .split_once('=')
                    .map_or((value, None), |(k, v)| (k, Some(v.to_string())));
                Ok(Filter::Label(k.to_string(), v))
            }
            "name" => Ok(Filter::Name(value.to_string())),
            "id" => Ok(Filter::Id(value.to_string())),
            "status" => match value {
                "created" | "running" | "paused" | "exited" | "dead" => {
                    Ok(Filter::Status(value.to_string()))
                }
                _ => Err(format!(
                    "status {value:?}: one of created, running, paused, exited, dead"
                )),
            },
            _ => Err(format!("unknown filter {key:?} (label, name, id, status)")),
        }
    }

    fn matches(&self, c: &ContainerState) -> bool {
        match self {
            Filter::Label(key, value) => c
                .labels
                .get(key)
                .is_some_and(|v| value.as_ref().is_none_or(|want| want == v)),
            Filter::Name(part) => c.name.contains(part.as_str()),
            Filter::Id(prefix) => c.id.starts_with(prefix.as_str()),
            Filter::Status(status) => {
                let now = match c.condition() {
                    Condition::Starting => "created",
                    Condition::Running if c.paused => "paused",
                    Condition::Running => "running",
                    Condition::Exited => "exited",
                    Condition::Dead => "dead",
                };
                now == status
            }
        }
    }

    fn kind(&self) -> u8 {
        match self {
            Filter::Label(..) => 0,
            Filter::Name(_) => 1,
            Filter::Id(_) => 2,
            Filter::Status(_) => 3,
        }
    }

    /// Every label filter matches, and of each other kind given, one does.
    pub fn all_match(filters: &[Filter], c: &ContainerState) -> bool {
        filters
            .iter()
            .filter(|f| f.kind() == 0)
            .all(|f| f.matches(c))
            && (1..=3).all(|kind| {
                let of_kind: Vec<&Filter> = filters.iter().filter(|f| f.kind() == kind).collect();
                of_kind.is_empty() || of_kind.iter().any(|f| f.matches(c))
            })
    }
}

/// `logs [-f]`: the container's captured output; with `follow`, keep
/// reading until the container has exited.
pub fn logs(container: &ContainerState, options: LogOptions, out: &mut dyn Write) -> Result<()> {
    let LogOptions {
        follow,
        timestamps,
        tail,
    } = options;
    let path = state::log_path(&container.id);
    let mut file = File::open(&path).map_err(|_| {
        Error::Usage(format!(
            "container {} has no log: only detached containers (run -d) keep one",
            container.name
        ))
    })?;
    let mut start = 0;
    let mut first = Vec::new();
    if tail != usize::MAX {
        // What is written so far, less all but its last `tail` lines; a
        // follow goes on from its end.
        file.read_to_end(&mut first)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let kept = last_lines(&first, tail).len();
        start = first.len() - kept;
        first.drain(..start);
    }
    let mut stamper = timestamps.then(|| logging::Stamper::new(&container.id, start as u64));
    let mut out = Output {
        out,
        stamper: stamper.as_mut(),
    };
    let out = &mut out;
    out.write_all(&first)
        .map_err(|e| Error::io("write stdout", e))?;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        if n > 0 {
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write stdout", e))?;
            continue;
        }
        let _ = out.flush();
        // At the end of what is written: done, unless following a
        // container that can still write. Its monitor holds the lock until
        // the container has exited, so a free lock means no more output.
        if !follow || ContainerLock::is_held(&container.id) != Some(true) {
            // One last read: output written just before the exit.
            let n = file
                .read(&mut buf)
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write stdout", e))?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How `logs` shows the log.
#[derive(Clone, Copy, Debug)]
pub struct LogOptions {
    /// Keep following until the container exits.
    pub follow: bool,
    /// Each line's time in front of it.
    pub timestamps: bool,
    /// Only the last lines (`usize::MAX`: all).
    pub tail: usize,
}

/// stdout, through the stamper with `-t`.
struct Output<'a> {
    out: &'a mut dyn Write,
    stamper: Option<&'a mut logging::Stamper>,
}

impl Write for Output<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf).map(|()| buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self.stamper.as_mut() {
            Some(stamper) => stamper.write(buf, self.out),
            None => self.out.write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `--tail`: a number of lines, or `all` (every line: `usize::MAX`).
fn parse_tail(text: &str) -> std::result::Result<usize, String> {
    match text {
        "all" => Ok(usize::MAX),
        n => n
            .parse()
            .map_err(|_| "expected a number of lines, or all".to_string()),
    }
}

/// The last `n` lines of `text` (a last line without its newline counts).
fn last_lines(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1);
    &text[start..]
}

/// `rm [-f]`: a stopped container's layer, record and log (with `-f`, stop
/// it first). The container's lock is held while its files go, so no run
/// or monitor can be using them.
pub fn remove(name: &str, force: bool, extensions: &[&dyn Extension]) -> Result<()> {
    let container = match state::find_any(name)? {
        Found::Ok(container) => *container,
        Found::Broken(id) => return remove_leftovers_of(&id, None, extensions),
    };
    match container.condition() {
        Condition::Starting => return Err(Error::StillStarting(container.name)),
        Condition::Running if !force => return Err(Error::StillRunning(container.name)),
        Condition::Running => stop::stop(&container, Duration::ZERO)?,
        Condition::Exited | Condition::Dead => {}
    }
    // A --rm container's monitor removed it when it stopped: done.
    if !state::exists(&container.id) {
        return Ok(());
    }
    remove_leftovers_of(&container.id, Some(&container.cgroup_parent), extensions)
}

/// Remove a container whose run is gone: its cgroup (if its monitor died
/// before removing it), its directory, its lock file.
fn remove_leftovers_of(
    id: &str,
    cgroup_parent: Option<&str>,
    extensions: &[&dyn Extension],
) -> Result<()> {
    let Some(_lock) = ContainerLock::try_acquire(id)? else {
        return Err(Error::StillStarting(id.to_string()));
    };
    for extension in extensions {
        extension.remove(id)?;
    }
    if let Some(parent) = cgroup_parent {
        let hierarchy = Hierarchy::detect()?;
        let mut cgroup = cgroups::Cgroup::existing(hierarchy, parent, id);
        if cgroup.dirs().iter().any(|d| d.exists()) {
            cgroup.mark_ours();
            cgroup.remove()?;
        }
    }
    layer::remove_dir(&layer::container_dir(id))
}

/// `cleanup`: finish what killed runs could not. Dead containers (their run
/// or monitor was killed: whatever `--rm` promised, and the records of
/// containers that never started) go entirely; then cgroups and layers no
/// live run holds, half-imported images, and free lock files.
pub fn cleanup(cgroup_parent: &str, extensions: &[&dyn Extension]) -> Result<String> {
    let mut containers = 0;
    for entry in state::list() {
        let (id, parent) = match entry {
            Entry::Ok(c) if c.condition() == Condition::Dead => (c.id, Some(c.cgroup_parent)),
            Entry::Ok(c) if c.auto_remove && c.condition() == Condition::Exited => {
                (c.id, Some(c.cgroup_parent))
            }
            Entry::Broken { id, .. } => (id, None),
            Entry::Ok(_) => continue,
        };
        if remove_leftovers_of(&id, parent.as_deref(), extensions).is_ok() {
            containers += 1;
        }
    }
    let alive = |id: &str| {
        state::load(id)
            .is_ok_and(|c| matches!(c.condition(), Condition::Starting | Condition::Running))
    };
    let mut extra = String::new();
    for extension in extensions {
        extra.push_str(", ");
        extra.push_str(&extension.cleanup(&alive)?);
    }
    let hierarchy = Hierarchy::detect()?;
    let cgroups = cgroups::cleanup(&hierarchy, cgroup_parent)?;
    let layers = layer::remove_stale(state::exists);
    let imports = image::remove_stale_imports();
    ContainerLock::remove_free_locks();
    Ok(format!(
        "removed {containers} dead container(s), {cgroups} stale cgroup(s) under {cgroup_parent}, {layers} layer(s), {imports} unfinished import(s){extra}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(parse_tail("all"), Ok(usize::MAX));
        assert!(parse_tail("-1").is_err());
    }

    #[test]
    fn filters_take_dockers_keys() {
        assert_eq!(
            Filter::parse("label=a=b=c"),
            Ok(Filter::Label("a".into(), Some("b=c".into())))
        );
        assert_eq!(
            Filter::parse("label=a"),
            Ok(Filter::Label("a".into(), None))
        );
        assert!(Filter::parse("status=sleeping").is_err());
        assert!(Filter::parse("colour=red").is_err());
        assert!(Filter::parse("label").is_err());
    }
}
