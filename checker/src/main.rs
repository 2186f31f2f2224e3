//! `minibox-check STAGE [--runtime PRESET|TEMPLATE] [--json] [--junit FILE]`
//!
//! Exit codes: 0 every check of stages 1..=STAGE passed (skips do not
//! fail); 1 at least one failed; 2 the checker could not run (a usage
//! mistake, a bad template, not root, no cgroups).

use anyhow::{Context, Result};
use clap::Parser;
use minibox_check::checks::{self, Context as CheckContext, LAST_STAGE};
use minibox_check::output::{self, Verdict};
use minibox_check::runtime::{Runtime, PRESETS};
use minibox_check::session::{self, Settings};
use minibox_check::template::PLACEHOLDERS;
use minibox_check::Error;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn after_help() -> String {
    let mut text = String::from("Presets (--runtime NAME):\n");
    for (name, what) in PRESETS {
        text.push_str(&format!("  {name:14} {what}\n"));
    }
    text.push_str("\nTemplate placeholders (--runtime 'TEMPLATE'):\n");
    for (name, what) in PLACEHOLDERS {
        text.push_str(&format!("  {name:16} {what}\n"));
    }
    text.push_str(
        "\nExamples:\n  minibox-check 4\n  minibox-check 5 --runtime minibox:4\n  minibox-check 4 --runtime runc\n  minibox-check 4 --runtime './my-runtime run {rootfs} {cmd}'\n\nExit status: 0 every check up to STAGE passes, 1 a check fails, 2 the checker could not run.\n",
    );
    text
}

#[derive(Parser)]
#[command(
    name = "minibox-check",
    version,
    about = "Grade a container runtime stage by stage: a probe run inside it reports what a container sees",
    after_help = after_help()
)]
struct Cli {
    /// The stage to check, 1 to 10 (its checks and those of every stage below)
    #[arg(value_parser = parse_stage, value_name = "STAGE")]
    stage: u8,
    /// A preset (minibox, minibox:N, runc, crun, podman, bwrap) or a template such as
    /// './my-runtime run {rootfs} {cmd}' [default: minibox, the stage's own binary]
    #[arg(long, value_name = "PRESET|TEMPLATE")]
    runtime: Option<String>,
    /// Print the result as JSON (checks, summary, what each run saw)
    #[arg(long)]
    json: bool,
    /// Also write the result as JUnit XML to FILE
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Seconds each run of the runtime may take before it is killed
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    timeout: u64,
    /// Where minibox's stage binaries are [default: next to minibox-check]
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Keep the work directory ($TMPDIR/minibox-check-PID) for inspection
    #[arg(long)]
    keep: bool,
}

fn parse_stage(text: &str) -> Result<u8, String> {
    let digits = text.split('-').next().unwrap_or(text);
    digits
        .parse::<u8>()
        .ok()
        .filter(|n| (1..=LAST_STAGE).contains(n))
        .ok_or_else(|| format!("{text:?} is not a stage: 1 to {LAST_STAGE} (or 04, 04-pivot-root)"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match check(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("minibox-check: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Run the checks; Ok(passed), or an error that kept them from running.
fn check(cli: &Cli) -> Result<bool> {
    let bin_dir = match &cli.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()
            .context("find minibox-check's own path")?
            .parent()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Environment("minibox-check has no directory".into()))?,
    };
    let runtime = Runtime::resolve(cli.runtime.as_deref(), cli.stage, &bin_dir)?;
    let settings = Settings {
        stage: cli.stage,
        runtime,
        timeout: Duration::from_secs(cli.timeout.max(1)),
        keep: cli.keep,
    };
    let observations = session::observe(&settings)?;
    let ctx = CheckContext {
        obs: &observations,
        runtime: &settings.runtime,
    };
    let verdict = Verdict {
        stage: cli.stage,
        runtime: &settings.runtime,
        graded: checks::grade(cli.stage, &ctx),
        observations: &observations,
    };
    if let Some(file) = &cli.junit {
        std::fs::write(file, output::junit(&verdict))
            .with_context(|| format!("write {}", file.display()))?;
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&output::json(&verdict))?);
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", output::text(&verdict, color));
    }
    Ok(verdict.passed())
}
