//! # Stage 04 — pivot_root into a root filesystem of its own
//!
//! Stage 03 plus one idea: the container stops seeing the host's files.
//! init bind-mounts the rootfs (the busybox tree `just rootfs` builds, or
//! `--rootfs DIR`) onto itself, `pivot_root`s into it and unmounts the old
//! root, so the host's filesystem is not hidden but *gone* from this mount
//! namespace. Then it mounts what a Linux program expects: `/proc`, a
//! small tmpfs `/dev` with a handful of device nodes and its own
//! `/dev/pts`, and `/sys` read-only.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cli::{self, RunOptions};
use minibox::config::{self, ConfigPipe, InitConfig, CONFIG_FD};
use minibox::process::{Exit, Spawn};
use minibox::sync::RunLink;
use minibox::{command, id, mounts, namespaces, rootfs, trace};
use std::convert::Infallible;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "04-pivot-root",
    version,
    about = "minibox stage 04: pivot_root into its own root filesystem"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces
    Run(Box<RunArgs>),
    /// The container's first process (started by `run`, not by hand)
    #[command(hide = true)]
    Init,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    options: RunOptions,
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
    }
}

/// The parent, on the host: start init in new namespaces, wait for it.
fn run(args: RunArgs) -> Result<Exit> {
    trace::start(args.options.trace);
    let id = id::generate()?;
    let hostname = args.options.hostname_or(&id)?;
    let stdin = args.options.stdin()?;
    let mut config = InitConfig::new(args.options.trace, hostname, args.command);
    config.env = command::container_env(&config.hostname, args.options.terminal());
    config.root = Some(rootfs::resolve(args.rootfs.as_deref())?);

    let config_pipe = ConfigPipe::new()?;
    let mut init = Spawn::new(namespaces::CONTAINER, stdin, args.options.terminal())
        .pass_fd(config_pipe.read_end(), CONFIG_FD)
        .start()
        .context("cannot start the container")?;
    config_pipe.send(&config)?;

    init.wait_for_exec()?;
    let exit = init.wait()?;
    trace::flush();
    Ok(exit)
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init() -> Result<Infallible> {
    let run = RunLink::connect()?;
    let config = config::receive(CONFIG_FD)?;
    run.follow_trace_mode(&config);
    namespaces::set_hostname(&config.hostname)?;
    mounts::make_mount_tree_private()?;
    rootfs::pivot_into(config.root()?)?;
    mounts::mount_proc()?;
    mounts::mount_dev()?;
    mounts::mount_sys_readonly()?;
    Ok(command::exec(&run, &config.command, &config.env)?)
}
