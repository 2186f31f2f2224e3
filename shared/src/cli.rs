//! What every stage's command line shares: docker-style run flags, one-line
//! errors, and exit codes (see [`crate::error`] for the table).

use crate::cgroups::{self, Limits};
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
    /// The host name to use: `--hostname`, checked, or the container id.
    pub fn hostname_or(&self, container_id: &str) -> Result<String, Error> {
        match &self.hostname {
            Some(name) => namespaces::validate_hostname(name).map(|()| name.clone()),
            None => Ok(container_id.to_string()),
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

/// The resource flags of stage 05 on (docker's spelling). Each value is
/// checked by its parser, so `-m 100x` fails before anything is created.
#[derive(clap::Args, Debug, Clone)]
pub struct ResourceOptions {
    /// Memory limit, e.g. 64m (b, k, m, g)
    #[arg(short, long, value_name = "BYTES", value_parser = cgroups::parse_memory)]
    pub memory: Option<u64>,

    /// Memory plus swap, e.g. 128m; -1 for unlimited swap [default: no swap]
    #[arg(long, value_name = "BYTES", value_parser = cgroups::parse_memory_swap, allow_hyphen_values = true)]
    pub memory_swap: Option<cgroups::MaybeUnlimited>,

    /// CPU time, in CPUs (0.5 = half of one CPU)
    #[arg(long, value_name = "CPUS", value_parser = cgroups::parse_cpus, allow_hyphen_values = true)]
    pub cpus: Option<u64>,

    /// Relative CPU weight against other cgroups (v1 cpu.shares; v2 cpu.weight)
    #[arg(long, value_name = "SHARES", value_parser = cgroups::parse_cpu_shares)]
    pub cpu_shares: Option<u64>,

    /// CPUs the container may run on, e.g. 0-1 or 0,2
    #[arg(long, value_name = "LIST", value_parser = cgroups::parse_cpuset_cpus)]
    pub cpuset_cpus: Option<String>,

    /// Memory nodes the container may use, e.g. 0
    #[arg(long, value_name = "LIST", value_parser = cgroups::parse_cpuset_mems)]
    pub cpuset_mems: Option<String>,

    /// Most processes the container may have; -1 for no limit
    #[arg(long, value_name = "N", value_parser = cgroups::parse_pids_limit, allow_hyphen_values = true)]
    pub pids_limit: Option<cgroups::MaybeUnlimited>,

    /// Parent cgroup for the container, relative to each hierarchy's root
    #[arg(long, value_name = "PATH", default_value = cgroups::DEFAULT_PARENT, value_parser = cgroups::parse_parent, env = "MINIBOX_CGROUP_PARENT")]
    pub cgroup_parent: String,
}

impl ResourceOptions {
    /// The limits, checked against each other.
    pub fn limits(&self) -> Result<Limits, Error> {
        let limits = Limits {
            memory: self.memory,
            memory_swap: self.memory_swap.map(cgroups::MaybeUnlimited::as_option),
            cpu_quota_us: self.cpus,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_max: self.pids_limit.map(cgroups::MaybeUnlimited::as_option),
        };
        limits.check()?;
        Ok(limits)
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
