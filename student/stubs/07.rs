//! Stage 07's stubs (student mode only; see tests/tools/student.py).
//! Without them a container's record never moves past "created": `ps`
//! does not list it as running, `stop` finds no process to stop, and
//! `--rm` leaves the record behind.

// @stub shared/src/container/mod.rs ContainerState::started
// @section State
    /// init exec'd the command: record it as running.
    ///
    /// Stub: records nothing.
    pub fn started(&mut self, init: nix::unistd::Pid) -> Result<()> {
        crate::student::not_written("07", "ContainerState::started", "State");
        let _ = init;
        Ok(())
    }

// @stub shared/src/container/mod.rs ContainerState::exited
// @section State
    /// The container ended: record how — or, with `--rm`, remove the
    /// record, the log and the layer.
    ///
    /// Stub: records nothing.
    pub fn exited(&mut self, exit: Exit, oom_killed: bool) -> Result<()> {
        crate::student::not_written("07", "ContainerState::exited", "State");
        // Keep this line in yours: everything the container printed must be
        // in its log before the record says it exited.
        logging::finish();
        let _ = (exit, oom_killed);
        Ok(())
    }
