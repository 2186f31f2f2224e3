//! # Stage 02 — a private mount tree and a fresh /proc
//!
//! Stage 01 plus one idea: `ps` reads `/proc`, so init mounts a new `proc`
//! for its PID namespace, and `ps` shows only the container's processes.
//!
//! First, though, init makes its whole mount tree private. The new mount
//! namespace is a copy of the host's, and on a systemd host `/` is a
//! *shared* mount: without this step the new `/proc` would propagate back
//! and cover the host's own `/proc`.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cli::{self, RunOptions};
use minibox::command;
use minibox::mounts;
use minibox::namespaces::{self, Exit, InitSpec};
use minibox::sync::RunLink;
use minibox::trace;
use nix::sched::CloneFlags;
use std::convert::Infallible;
use std::ffi::OsString;
use std::os::fd::RawFd;
use std::process::ExitCode;

/// The namespaces init is born in (the user namespace comes much later).
const NAMESPACES: CloneFlags = CloneFlags::CLONE_NEWUTS
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET);

#[derive(Parser)]
#[command(
    name = "02-proc-mount",
    version,
    about = "minibox stage 02: a private mount tree and its own /proc"
)]
enum Cli {
    /// Run COMMAND as PID 1 of new namespaces
    Run(RunArgs),
    /// The container's first process (started by `run`, not by hand)
    #[command(hide = true)]
    Init(InitArgs),
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    options: RunOptions,
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
    /// The command travels in init's argv, after `--`
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

fn main() -> ExitCode {
    match cli::parse::<Cli>() {
        Cli::Run(args) => cli::finish_run(run(args)),
        Cli::Init(args) => cli::finish_init(init(args)),
    }
}

/// The parent, on the host: start init in new namespaces, wait for it.
fn run(args: RunArgs) -> Result<Exit> {
    trace::start(args.options.trace);
    let id = namespaces::generate_id()?;
    let hostname = args.options.hostname_or(&id)?;
    let stdin = args.options.stdin()?;

    let mut init_args: Vec<OsString> = vec!["--hostname".into(), hostname.into(), "--".into()];
    init_args.extend(args.command);
    let mut init = namespaces::spawn_init(InitSpec {
        namespaces: NAMESPACES,
        args: init_args,
        pass_fds: vec![],
        stdin,
        terminal: args.options.tty,
    })
    .context("cannot start the container")?;

    init.wait_for_exec()?;
    let exit = init.wait()?;
    trace::flush();
    Ok(exit)
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init(args: InitArgs) -> Result<Infallible> {
    let run = RunLink::connect(args.sync_fd)?;
    namespaces::set_hostname(&args.hostname)?;
    mounts::make_mount_tree_private()?;
    mounts::mount_proc()?;
    let env = command::container_env(&args.hostname);
    Ok(command::exec(&run, &args.command, &env)?)
}
