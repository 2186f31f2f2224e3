//! Stage 04's stubs (student mode only; see tests/tools/student.py).
//! Without them the container is chroot'ed into the rootfs, as the toy
//! tutorials do: the host's mounts are all still there, a root process can
//! walk out, and `/dev` is whatever the image holds.

// @stub shared/src/rootfs.rs pivot_into
// @section The steps
/// Make `new_root` the container's `/` and drop every trace of the host's.
///
/// Stub: `chroot(new_root)`, which only changes how paths are looked up.
pub fn pivot_into(new_root: &Path) -> Result<()> {
    crate::student::not_written("04", "rootfs::pivot_into", "The steps");
    let root = new_root.display().to_string();
    trace::step(format!("chroot({root:?})"), nix::unistd::chroot(new_root))?;
    trace::step("chdir(\"/\")", chdir("/"))
}

// @stub shared/src/mounts.rs mount_dev
// @section What programs expect to find
/// A small tmpfs `/dev` with the basic nodes, a private devpts and the usual links.
///
/// Stub: mounts nothing; `/dev` is the image's directory.
pub fn mount_dev() -> Result<()> {
    crate::student::not_written("04", "mounts::mount_dev", "What programs expect to find");
    Ok(())
}

// @stub shared/src/mounts.rs mount_sys_readonly
// @section What programs expect to find
/// `/sys`, read-only.
///
/// Stub: mounts nothing.
pub fn mount_sys_readonly() -> Result<()> {
    crate::student::not_written(
        "04",
        "mounts::mount_sys_readonly",
        "What programs expect to find",
    );
    Ok(())
}
