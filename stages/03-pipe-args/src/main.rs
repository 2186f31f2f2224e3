//! # Stage 03 — the command travels through a pipe
//!
//! Stage 02 plus one idea: the user's command no longer rides in init's
//! argv, which now holds only init's own options. run writes the command
//! into a pipe whose read end init inherits as fd 3, then closes the write
//! end; init reads until EOF. Every argument keeps its exact bytes: spaces,
//! quotes, empty strings, non-UTF-8.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cli::{self, RunOptions};
use minibox::command::{self, CommandPipe, COMMAND_FD};
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
    name = "03-pipe-args",
    version,
    about = "minibox stage 03: the command travels through a pipe"
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

    let command_pipe = CommandPipe::new()?;
    let mut init = namespaces::spawn_init(InitSpec {
        namespaces: NAMESPACES,
        args: vec!["--hostname".into(), hostname.into()],
        pass_fds: vec![(command_pipe.read_end(), COMMAND_FD)],
        stdin,
        terminal: args.options.tty,
    })
    .context("cannot start the container")?;
    command_pipe.send(&args.command)?;

    init.wait_for_exec()?;
    let exit = init.wait()?;
    trace::flush();
    Ok(exit)
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init(args: InitArgs) -> Result<Infallible> {
    let run = RunLink::connect(args.sync_fd)?;
    let command = command::receive(COMMAND_FD)?;
    namespaces::set_hostname(&args.hostname)?;
    mounts::make_mount_tree_private()?;
    mounts::mount_proc()?;
    let env = command::container_env(&args.hostname);
    Ok(command::exec(&run, &command, &env)?)
}
