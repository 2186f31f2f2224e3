//! # Stage 05 — cgroups: limits the kernel enforces
//!
//! Stage 04 plus one idea: resource limits. run creates a cgroup for the
//! container (one directory per controller on cgroup v1, one directory on
//! v2), writes the limits into it (`-m`, `--cpus`, `--cpu-shares`,
//! `--cpuset-cpus`, `--pids-limit`), moves init in, and only then lets init
//! go on: init waits on the sync socket first, so not one instruction of the
//! user's command runs unlimited. When the container ends, run reads the
//! OOM-kill counter, then empties and removes the cgroup.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cgroups::{self, Cgroup, Hierarchy};
use minibox::cli::{self, ResourceOptions, RunOptions};
use minibox::command::{self, CommandPipe, COMMAND_FD};
use minibox::mounts;
use minibox::namespaces::{self, Exit, InitSpec};
use minibox::paths::ContainerLock;
use minibox::rootfs;
use minibox::sync::RunLink;
use minibox::trace;
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
    name = "05-cgroups",
    version,
    about = "minibox stage 05: cgroups limit what the container may use"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces, in a cgroup of its own
    Run(RunArgs),
    /// Remove cgroups left behind by runs that were killed
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
    /// Root filesystem for the container [default: the busybox rootfs of `just rootfs`]
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// The command to run in the container, with its arguments
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
    rootfs: PathBuf,
}

fn main() -> ExitCode {
    match cli::parse::<Cli>() {
        Cli::Run(args) => cli::finish_run(run(args)),
        Cli::Init(args) => cli::finish_init(init(args)),
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
    let rootfs = rootfs::resolve(args.rootfs.as_deref())?;

    // The cgroup exists, limits and all, before init exists.
    let hierarchy = Hierarchy::detect()?;
    let _lock = ContainerLock::acquire(&id)?;
    cgroups::remove_stale(&hierarchy, &args.resources.cgroup_parent)?;
    let mut cgroup = Cgroup::create(hierarchy, &args.resources.cgroup_parent, &id, &limits)?;

    let command_pipe = CommandPipe::new()?;
    let mut init = namespaces::spawn_init(InitSpec {
        namespaces: NAMESPACES,
        args: vec![
            "--hostname".into(),
            hostname.into(),
            "--rootfs".into(),
            rootfs.into(),
        ],
        pass_fds: vec![(command_pipe.read_end(), COMMAND_FD)],
        stdin,
        terminal: args.options.tty,
    })
    .context("cannot start the container")?;
    command_pipe.send(&args.command)?;
    cgroup.add_process(init.pid)?;
    init.release()?;

    init.wait_for_exec()?;
    let exit = init.wait()?;
    let oom_kills = cgroup.oom_kills();
    cgroup.remove()?;
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

/// Remove what runs killed with SIGKILL left behind.
fn cleanup(cgroup_parent: &str) -> Result<Exit> {
    let hierarchy = Hierarchy::detect()?;
    let removed = cgroups::remove_stale(&hierarchy, cgroup_parent)?;
    ContainerLock::remove_free_locks();
    println!("removed {removed} stale cgroup(s) under {cgroup_parent}");
    Ok(Exit::Code(0))
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init(args: InitArgs) -> Result<Infallible> {
    let run = RunLink::connect(args.sync_fd)?;
    run.wait_for_go("placed in its cgroup")?;
    let command = command::receive(COMMAND_FD)?;
    namespaces::set_hostname(&args.hostname)?;
    mounts::make_mount_tree_private()?;
    rootfs::pivot_into(&args.rootfs)?;
    mounts::mount_proc()?;
    mounts::mount_dev()?;
    mounts::mount_sys_readonly()?;
    let env = command::container_env(&args.hostname);
    Ok(command::exec(&run, &command, &env)?)
}
