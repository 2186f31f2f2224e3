//! Stage 02's stubs (student mode only; see tests/tools/student.py).
//! Without them stage 02 is stage 01: the container shares the host's
//! mount propagation and sees the host's /proc.

// @stub shared/src/mounts.rs make_mount_tree_private
// @section First: cut the mount tree loose
/// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`: nothing mounted in
/// this namespace propagates to the host, and nothing comes back.
///
/// Stub: does nothing, so the mount tree keeps the host's propagation.
pub fn make_mount_tree_private() -> Result<()> {
    crate::student::not_written(
        "02",
        "mounts::make_mount_tree_private",
        "First: cut the mount tree loose",
    );
    Ok(())
}

// @stub shared/src/mounts.rs mount_proc
// @section Then: /proc
/// A fresh `proc` for this PID namespace, mounted nosuid, noexec and nodev.
///
/// Stub: mounts nothing, so `ps` still reads the host's `/proc`.
pub fn mount_proc() -> Result<()> {
    crate::student::not_written("02", "mounts::mount_proc", "Then: /proc");
    Ok(())
}
