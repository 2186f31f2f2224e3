//! # Stage 05 — cgroups: limits the kernel enforces
//!
//! Stage 04 plus one idea: resource limits. run creates a cgroup for the
//! container (one directory per controller on cgroup v1, one directory on
//! v2), writes the limits into it (`-m`, `--cpus`, `--cpu-shares`,
//! `--cpuset-cpus`, `--pids-limit`), moves init in, and only then lets init
//! go on: init waits on the sync socket first, so not one instruction of the
//! user's command runs unlimited. When the container ends, run reads the
//! OOM-kill counter, then empties and removes the cgroup.
//!
//! A cgroup is state on the host, so from now on run also catches Ctrl-C
//! and SIGTERM until the container starts: it removes what it made and
//! exits 130/143, and `cleanup` removes what a SIGKILLed run left.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cgroups::{self, Cgroup, Hierarchy};
use minibox::cli::{self, ResourceOptions, RunOptions};
use minibox::config::{self, ConfigPipe, InitConfig, CONFIG_FD};
use minibox::lock::ContainerLock;
use minibox::process::{self, Exit, Spawn};
use minibox::sync::RunLink;
use minibox::{command, id, mounts, namespaces, rootfs, trace};
use std::convert::Infallible;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "05-cgroups",
    version,
    about = "minibox stage 05: cgroups limit what the container may use"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces, in a cgroup of its own
    Run(Box<RunArgs>),
    /// Remove cgroups left behind by runs that were killed
    Cleanup {
        #[arg(long, value_name = "PATH", default_value = cgroups::DEFAULT_PARENT, value_parser = cgroups::parse_parent, env = "MINIBOX_CGROUP_PARENT")]
        cgroup_parent: String,
    },
    /// The container's first process (started by `run`, not by hand)
    #[command(hide = true)]
    Init,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    options: RunOptions,
    #[command(flatten)]
    resources: ResourceOptions,
    /// Root filesystem for the container [default: the busybox rootfs of `just rootfs`]
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// The command to run in the container, with its arguments
    #[arg(required = true, trailing_var_arg = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    match cli::parse::<Cli>() {
        Cli::Run(args) => cli::finish_run(run(*args)),
        Cli::Init => cli::finish_init(init()),
        Cli::Cleanup { cgroup_parent } => cli::finish_run(cleanup(&cgroup_parent)),
    }
}

/// The parent, on the host: start init in new namespaces, wait for it.
fn run(args: RunArgs) -> Result<Exit> {
    trace::start(args.options.trace);
    process::catch_signals();
    let limits = args.resources.limits()?;
    let id = id::generate()?;
    let hostname = args.options.hostname_or(&id)?;
    let stdin = args.options.stdin()?;
    let mut config = InitConfig::new(args.options.trace, hostname, args.command);
    config.env = command::container_env(&config.hostname, args.options.terminal());
    config.root = Some(rootfs::resolve(args.rootfs.as_deref())?);

    // Whatever on the host carries this id is ours while we hold its lock.
    let _lock = ContainerLock::acquire(&id)?;

    // The cgroup exists, limits and all, before init exists.
    let hierarchy = Hierarchy::detect()?;
    cgroups::remove_stale(&hierarchy, &args.resources.cgroup_parent)?;
    let mut cgroup = Cgroup::create(hierarchy, &args.resources.cgroup_parent, &id, &limits)?;

    let config_pipe = ConfigPipe::new()?;
    let mut init = Spawn::new(namespaces::CONTAINER, stdin, args.options.terminal())
        .pass_fd(config_pipe.read_end(), CONFIG_FD)
        .into_cgroup(&cgroup)
        .start()
        .context("cannot start the container")?;
    config_pipe.send(&config)?;
    cgroup.add_process(init.pid)?;
    init.release()?;

    init.wait_for_exec()?;
    let exit = init.wait()?;
    let oom_kills = cgroup.oom_kills();
    cgroup.remove()?;
    trace::flush();
    match args.resources.oom_error(oom_kills) {
        Some(oom) => Err(oom.into()),
        None => Ok(exit),
    }
}

/// Remove what runs killed with SIGKILL left behind.
fn cleanup(cgroup_parent: &str) -> Result<Exit> {
    let removed = cgroups::cleanup(&Hierarchy::detect()?, cgroup_parent)?;
    ContainerLock::remove_free_locks();
    println!("removed {removed} stale cgroup(s) under {cgroup_parent}");
    Ok(Exit::Code(0))
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init() -> Result<Infallible> {
    let run = RunLink::connect()?;
    let config = config::receive(CONFIG_FD)?;
    run.follow_trace_mode(&config);
    run.wait_for_go("placed in its cgroup")?;
    namespaces::set_hostname(&config.hostname)?;
    mounts::make_mount_tree_private()?;
    rootfs::pivot_into(config.root()?)?;
    mounts::mount_proc()?;
    mounts::mount_dev()?;
    mounts::mount_sys_readonly()?;
    Ok(command::exec(&run, &config.command, &config.env)?)
}
