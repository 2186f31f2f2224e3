//! `stop`: SIGTERM to the container's PID 1, SIGKILL after a grace period.
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

/// Stop a running container and wait until its monitor has recorded the
/// end. A container that is still starting is refused (its run owns it
/// until it runs); one that is not running is left as it is.
pub fn stop(container: &ContainerState, grace: Duration) -> Result<()> {
    match container.condition() {
        Condition::Starting => return Err(Error::StillStarting(container.name.clone())),
        Condition::Running => {}
        Condition::Exited | Condition::Dead => return Ok(()),
    }
    if let Some(pidfd) = container
        .init
        .as_ref()
        .map(PidFd::open)
        .transpose()?
        .flatten()
    {
        pidfd.signal(Signal::SIGTERM)?;
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

/// After init exits, its monitor records the end and then lets go of the
/// container's lock: taking the lock waits for exactly that.
pub fn wait_for_monitor(id: &str) -> Result<()> {
    ContainerLock::acquire(id).map(drop)
}
