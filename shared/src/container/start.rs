//! `start` and `restart`: a stopped container runs again, on its own layer
//! (what it wrote is still there), with the flags its `run` was given.
//!
//! The stage's own `run` does the work, so every stage starts containers
//! the way it runs them (its cgroup, network, hardening): `start` executes
//! this binary again as `run --restart-of ID [-d] FLAGS… IMAGE COMMAND…`,
//! and `run` takes the id, record and layer the container already has.
//! Without `-a` the container runs in the background, as docker's `start`;
//! with `-a` in the foreground, its exit code passed through.

use super::state::{self, Condition, ContainerState};
use crate::error::{Error, Result};
use crate::process::{self, Exit};
use crate::trace::TraceMode;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// The flags worth giving `run` again: all but those `start` decides
/// itself (`-d`, `-i`, `-t`, `--rm`, `--trace`, `--restart-of`).
pub fn flags_to_keep(flags: &[String]) -> Vec<String> {
    let mut kept = Vec::new();
    let mut skip_value = false;
    for flag in flags {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        match flag.as_str() {
            "-d" | "--detach" | "-i" | "--interactive" | "-t" | "--tty" | "--rm" => {}
            "--trace" | "--restart-of" => skip_value = true,
            f if f.starts_with("--trace=") || f.starts_with("--restart-of=") => {}
            // A cluster of those one-letter switches (`-dit`).
            f if f.len() > 1
                && f.starts_with('-')
                && !f.starts_with("--")
                && f[1..].chars().all(|c| "dit".contains(c)) => {}
            _ => kept.push(flag.clone()),
        }
    }
    kept
}

/// `start [-a] CONTAINER`: run it again. A running container is left as it
/// is (docker's answer too). With `attach`, the container's exit.
pub fn start(name: &str, attach: bool, trace: TraceMode) -> Result<Exit> {
    let container = state::find(name)?;
    match container.condition() {
        Condition::Running => return Ok(Exit::Code(0)),
        Condition::Starting => return Err(Error::StillStarting(container.name)),
        Condition::Exited | Condition::Dead => {}
    }
    if container.run_image.is_empty() && container.run_flags.is_empty() {
        return Err(Error::Usage(format!(
            "container {} was made before minibox kept its run flags: it cannot be started again",
            container.name
        )));
    }
    let mut command = run_again(&container, attach, trace);
    if attach {
        let status = command
            .status()
            .map_err(|e| Error::io("start run again", e))?;
        return Ok(exit_of(status));
    }
    // `run -d` prints the id; `start` prints what it was given. Its
    // stderr (a trace, or why it failed) is passed on, less its last line
    // when it failed: that becomes this command's one-line error.
    let out = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::io("start run again", e))?;
    let said = String::from_utf8_lossy(&out.stderr);
    let mut lines: Vec<&str> = said.lines().collect();
    let exit = exit_of(out.status);
    let why = match exit {
        Exit::Code(0) => None,
        _ => lines.pop(),
    };
    for line in lines {
        eprintln!("{line}");
    }
    match exit {
        Exit::Code(0) => Ok(Exit::Code(0)),
        failed => {
            let prefix = format!("{}: ", process::program_name());
            let why = why.map(|w| w.strip_prefix(&prefix).unwrap_or(w));
            Err(Error::Init {
                message: match why {
                    Some(why) => format!("container {} did not start: {why}", container.name),
                    None => format!("container {} did not start", container.name),
                },
                exit_code: failed.code(),
            })
        }
    }
}

/// `restart [-t N] CONTAINER`: stop it (if it runs), then start it.
pub fn restart(name: &str, seconds: Option<u64>, trace: TraceMode) -> Result<()> {
    let container = state::find(name)?;
    super::stop::stop(&container, super::stop::grace_for(&container, seconds))?;
    start(name, false, trace).map(drop)
}

/// This binary as `run --restart-of ID [-d] FLAGS… IMAGE COMMAND…`, in the
/// container's cgroup parent.
fn run_again(container: &ContainerState, attach: bool, trace: TraceMode) -> Command {
    let mut command = Command::new("/proc/self/exe");
    command.arg0(process::program_name());
    command.args([
        "run",
        "--restart-of",
        &container.id,
        "--trace",
        trace_name(trace),
    ]);
    if !attach {
        command.arg("-d");
    }
    command
        .args(&container.run_flags)
        .args(&container.run_image)
        .env("MINIBOX_CGROUP_PARENT", &container.cgroup_parent)
        .stdin(Stdio::null());
    if let Some(dir) = container.run_dir.as_ref().filter(|d| d.is_dir()) {
        command.current_dir(dir);
    }
    command
}

fn trace_name(mode: TraceMode) -> &'static str {
    match mode {
        TraceMode::Tree => "tree",
        TraceMode::Json => "json",
        TraceMode::Off => "off",
        TraceMode::Step => "step",
    }
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => nix::sys::signal::Signal::try_from(signal)
            .map_or(Exit::Code(128 + signal), Exit::Signal),
        (None, None) => Exit::Code(crate::error::EXIT_MINIBOX_FAILED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_decides_detach_terminal_and_trace_itself() {
        let typed: Vec<String> = [
            "-dit",
            "--rm",
            "--name",
            "web",
            "-e",
            "A=-d",
            "--trace",
            "json",
            "-m",
            "64m",
            "--restart-of=0123456789ab",
            "-w",
            "/srv",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            flags_to_keep(&typed),
            ["--name", "web", "-e", "A=-d", "-m", "64m", "-w", "/srv"]
        );
    }
}
