//! # Stage 03 — init's config travels through a pipe
//!
//! Stage 02 plus one idea: run hands init its config — the command among
//! it — through a pipe whose read end init inherits as fd 3, and closes
//! the write end; init reads until EOF. A pipe is a stream: the config can
//! be any length, no message limit applies, and the sync socket is left to
//! the conversation (trace events up, "go" down). Every argument keeps its
//! exact bytes: spaces, quotes, empty strings, non-UTF-8.

use anyhow::{Context, Result};
use clap::{Args, Parser};
use minibox::cli::{self, RunOptions};
use minibox::config::{self, ConfigPipe, InitConfig, CONFIG_FD};
use minibox::process::{Exit, Spawn};
use minibox::sync::RunLink;
use minibox::{command, id, mounts, namespaces, trace};
use std::convert::Infallible;
use std::ffi::OsString;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "03-pipe-args",
    version,
    about = "minibox stage 03: the config travels through a pipe"
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
    mounts::mount_proc()?;
    Ok(command::exec(&run, &config.command, &config.env)?)
}
