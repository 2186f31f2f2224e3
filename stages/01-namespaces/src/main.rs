//! # Stage 01 — namespaces
//!
//! `run` clones a child into new UTS, PID, mount, IPC and network
//! namespaces. The child re-executes this binary as `init`, which reads
//! its config (the host name and the command) from run, sets the host name
//! and then *becomes* the user's command with execve, so the command is
//! PID 1: `echo $$` prints 1, and the host name is the container's own.
//!
//! But `ps` still lists every process on the host: `ps` reads `/proc`, and
//! this `/proc` is still the host's. Stage 02 fixes that.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cli::{self, RunOptions};
use minibox::config::InitConfig;
use minibox::process::{Exit, Spawn};
use minibox::sync::RunLink;
use minibox::{command, id, namespaces, trace};
use std::convert::Infallible;
use std::ffi::OsString;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "01-namespaces",
    version,
    about = "minibox stage 01: a process in new namespaces"
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

    let mut init = Spawn::new(namespaces::CONTAINER, stdin, args.options.terminal())
        .start()
        .context("cannot start the container")?;
    init.send_config(&config)?;

    init.wait_for_exec()?;
    let exit = init.wait()?;
    trace::flush();
    Ok(exit)
}

/// The child, PID 1 of its namespaces: set up, then become the command.
fn init() -> Result<Infallible> {
    let run = RunLink::connect()?;
    let config = run.receive_config()?;
    namespaces::set_hostname(&config.hostname)?;
    Ok(command::exec(&run, &config.command, &config.env)?)
}
