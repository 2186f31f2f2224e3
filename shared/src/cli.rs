//! What every stage's command line shares: docker-style run flags, one-line
//! errors, and exit codes (see [`crate::error`] for the table).

use crate::error::{Error, EXIT_MINIBOX_FAILED};
use crate::namespaces::{self, Exit, Stdin};
use crate::sync;
use crate::trace::TraceMode;
use clap::Parser;
use std::convert::Infallible;
use std::io::IsTerminal;
use std::process::ExitCode;

/// The flags of `run` that every stage has.
#[derive(clap::Args, Debug, Clone)]
pub struct RunOptions {
    /// Keep stdin open (without -i the container reads /dev/null)
    #[arg(short, long)]
    pub interactive: bool,

    /// Give the container this terminal (needs a terminal on stdin)
    #[arg(short, long)]
    pub tty: bool,

    /// Host name inside the container [default: a generated container id]
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// How to show the run/init trace on stderr
    #[arg(
        long,
        value_enum,
        default_value_t,
        env = "MINIBOX_TRACE",
        value_name = "MODE"
    )]
    pub trace: TraceMode,
}

impl RunOptions {
    /// The host name to use: `--hostname`, checked, or a fresh container id.
    pub fn hostname(&self) -> Result<String, Error> {
        match &self.hostname {
            Some(name) => namespaces::validate_hostname(name).map(|()| name.clone()),
            None => namespaces::generate_id(),
        }
    }

    /// What init's stdin is; `-t` without a terminal is refused up front.
    pub fn stdin(&self) -> Result<Stdin, Error> {
        if self.tty && !std::io::stdin().is_terminal() {
            return Err(Error::Usage(
                "-t needs a terminal on stdin (drop -t when piping)".into(),
            ));
        }
        Ok(if self.interactive || self.tty {
            Stdin::Inherit
        } else {
            Stdin::Null
        })
    }
}

/// Parse the command line; a mistake is one line on stderr and exit 125.
pub fn parse<C: Parser>() -> C {
    match C::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            use clap::error::ErrorKind::*;
            if matches!(
                err.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                std::process::exit(if err.kind() == DisplayHelpOnMissingArgumentOrSubcommand {
                    EXIT_MINIBOX_FAILED as i32
                } else {
                    0
                });
            }
            // clap's message is a paragraph plus usage; keep the paragraph, on one line.
            let rendered = err.render().to_string();
            let paragraph: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = paragraph.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("{}: {message} (see --help)", program_name());
            std::process::exit(EXIT_MINIBOX_FAILED as i32);
        }
    }
}

/// End `run`: the container's exit code, or a one-line error and its code.
pub fn finish_run(result: anyhow::Result<Exit>) -> ExitCode {
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            eprintln!("{}: {err:#}", program_name());
            ExitCode::from(exit_code_of(&err))
        }
    }
}

/// End `init` after a failure (success never returns: it is an exec). init
/// prints nothing itself — its stderr is the container's — and tells run.
pub fn finish_init(result: anyhow::Result<Infallible>) -> ExitCode {
    let Err(err) = result;
    let code = exit_code_of(&err);
    let message = format!("{err:#}");
    if !sync::report_failure(message.clone(), code) {
        eprintln!("{}: {message}", program_name());
    }
    ExitCode::from(code)
}

fn exit_code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| cause.downcast_ref::<Error>())
        .map_or(EXIT_MINIBOX_FAILED, Error::exit_code)
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "minibox".into())
}
