//! Stage 05's stubs (student mode only; see tests/tools/student.py).
//! Without them the container runs in run's own cgroup: no directory of
//! its own, no limits, nothing to remove afterwards.

// @stub shared/src/cgroups/mod.rs Cgroup::create
// @section v1 and v2, side by side
    /// Create the container's cgroup under `parent` and write `limits`.
    /// On failure, whatever was created is removed again.
    ///
    /// Stub: creates nothing and returns a cgroup with no directories.
    pub fn create(hierarchy: Hierarchy, parent: &str, id: &str, limits: &Limits) -> Result<Cgroup> {
        crate::student::not_written("05", "Cgroup::create", "v1 and v2, side by side");
        let _ = (parent, id, limits);
        Ok(Cgroup::none(hierarchy.mode()))
    }

// @stub shared/src/cgroups/mod.rs Cgroup::add_process
// @section Why the child must wait
    /// Move `pid` into the cgroup (every tree of it, in v1).
    ///
    /// Stub: moves nothing.
    pub fn add_process(&self, pid: nix::unistd::Pid) -> Result<()> {
        crate::student::not_written("05", "Cgroup::add_process", "Why the child must wait");
        let _ = pid;
        Ok(())
    }
