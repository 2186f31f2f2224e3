//! The container's root filesystem and `pivot_root` into it.

use crate::error::{Error, Result};
use crate::trace;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::unistd::{chdir, pivot_root};
use std::path::{Path, PathBuf};

/// Where `just rootfs` puts the busybox rootfs (a git-ignored dir of the
/// project), unless `MINIBOX_ROOTFS` says otherwise.
pub fn default_rootfs() -> PathBuf {
    if let Some(dir) = std::env::var_os("MINIBOX_ROOTFS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../build/rootfs")
}

/// Check `--rootfs` (or the default) before anything is created, and make
/// it absolute: init will resolve it after changing namespaces.
pub fn resolve(requested: Option<&Path>) -> Result<PathBuf> {
    let dir = requested.map_or_else(default_rootfs, Path::to_path_buf);
    let absolute = dir
        .canonicalize()
        .map_err(|_| Error::RootfsMissing(dir.clone()))?;
    if !absolute.is_dir() {
        return Err(Error::Usage(format!(
            "rootfs {} is not a directory",
            absolute.display()
        )));
    }
    Ok(absolute)
}

/// Make `new_root` the container's `/` and drop every trace of the host's.
///
/// `chroot` only changes how paths are looked up, and a root process can
/// walk out of it; `pivot_root` moves the whole mount namespace onto the new
/// root, so the old one can be unmounted — and what is not mounted cannot be
/// reached. The steps:
///
/// 1. bind `new_root` onto itself: pivot_root requires a mount point;
/// 2. `chdir(new_root)` and `pivot_root(".", ".")`: the old root ends up
///    stacked on top of the new one, at the same place, so no `.pivot_root`
///    directory is needed inside the image;
/// 3. `umount2(".", MNT_DETACH)` takes the old root off the stack. (Our
///    mount tree is already private, so this unmount cannot propagate to the
///    host; on a shared tree it would.)
/// 4. `chdir("/")`, so our working directory is inside the new root.
pub fn pivot_into(new_root: &Path) -> Result<()> {
    let root = new_root.display().to_string();
    trace::step(
        format!("mount({root:?}, {root:?}, NULL, MS_BIND|MS_REC, NULL)"),
        mount(
            Some(new_root),
            new_root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
    )?;
    trace::step(format!("chdir({root:?})"), chdir(new_root))?;
    trace::step("pivot_root(\".\", \".\")", pivot_root(".", "."))?;
    trace::step(
        "umount2(\".\", MNT_DETACH)",
        umount2(".", MntFlags::MNT_DETACH),
    )?;
    trace::step("chdir(\"/\")", chdir("/"))
}
