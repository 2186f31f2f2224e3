//! `stop`: the stop signal (SIGTERM unless `--stop-signal` said otherwise)
//! to the container's PID 1, SIGKILL after a grace period.
//!
//! PID 1 in a PID namespace only gets signals it installed a handler for
//! (the kernel drops the rest, so nothing kills init by accident), which is
//! why a container that never handles SIGTERM needs the SIGKILL.

use super::state::{Condition, ContainerState};
use crate::error::{Error, Result};
use crate::lock::ContainerLock;
use crate::process::PidFd;
use crate::trace;
use nix::sys::signal::Signal;
use std::time::Duration;

/// Seconds `stop` waits for the container before SIGKILL (docker's 10),
/// unless `stop -t` or the container's `--stop-timeout` say otherwise.
pub const DEFAULT_TIMEOUT: u64 = 10;

/// Stop a running container and wait until its monitor has recorded the
/// end. A container that is still starting is refused (its run owns it
/// until it runs); one that is not running is left as it is.
pub fn stop(container: &ContainerState, grace: Duration) -> Result<()> {
    match container.condition() {
        Condition::Starting => return Err(Error::StillStarting(container.name.clone())),
        Condition::Running => {}
        Condition::Exited | Condition::Dead => return Ok(()),
    }
    let first = container
        .stop_signal
        .as_deref()
        .and_then(|s| parse_signal(s).ok())
        .unwrap_or(Signal::SIGTERM);
    if let Some(pidfd) = container
        .init
        .as_ref()
        .map(PidFd::open)
        .transpose()?
        .flatten()
    {
        pidfd.signal(first)?;
        // A paused container gets its signal once thawed (docker's order).
        super::control::thaw_if_paused(container)?;
        if !pidfd.wait(Some(grace)) {
            trace::note(
                format!("wait {}s for exit", grace.as_secs()),
                Some("still running".into()),
            );
            pidfd.signal(Signal::SIGKILL)?;
            pidfd.wait(None);
        }
    }
    wait_for_monitor(&container.id)
}

/// The grace period for `container`: `stop -t`, else its `--stop-timeout`,
/// else docker's 10 seconds.
pub fn grace_for(container: &ContainerState, asked: Option<u64>) -> Duration {
    Duration::from_secs(asked.or(container.stop_timeout).unwrap_or(DEFAULT_TIMEOUT))
}

/// After init exits, its monitor records the end and then lets go of the
/// container's lock: taking the lock waits for exactly that.
pub fn wait_for_monitor(id: &str) -> Result<()> {
    ContainerLock::acquire(id).map(drop)
}

/// A signal as docker takes it: `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(text: &str) -> std::result::Result<Signal, String> {
    let bad = || format!("{text:?} is not a signal (KILL, SIGTERM, 15, …)");
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| bad());
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// `--stop-signal`: checked on the command line, kept by its name.
pub fn parse_stop_signal(text: &str) -> std::result::Result<String, String> {
    parse_signal(text).map(|s| s.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_are_taken_as_docker_takes_them() {
        for text in ["KILL", "SIGKILL", "kill", "9"] {
            assert_eq!(parse_signal(text), Ok(Signal::SIGKILL), "{text}");
        }
        assert_eq!(parse_signal("usr1"), Ok(Signal::SIGUSR1));
        for bad in ["", "NOPE", "0", "99", "SIG"] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
    }
}
