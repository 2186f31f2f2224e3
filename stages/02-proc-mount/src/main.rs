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
use minibox::config::InitConfig;
use minibox::process::{Exit, Spawn};
use minibox::sync::RunLink;
use minibox::{command, id, mounts, namespaces, trace};
use std::convert::Infallible;
use std::ffi::OsString;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "02-proc-mount",
    version,
    about = "minibox stage 02: a private mount tree and its own /proc"
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
    mounts::make_mount_tree_private()?;
    mounts::mount_proc()?;
    Ok(command::exec(&run, &config.command, &config.env)?)
}
