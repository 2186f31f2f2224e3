//! The container's layer when its root is not the host's root.
//!
//! Two problems appear as soon as container root is host uid 100000:
//!
//! 1. **Reaching the layer.** init (host uid 100000) mounts the overlay,
//!    but `containers/` is 0700 host root: no path from `/` leads it
//!    there. So it starts from inside: the child `fchdir`s into the
//!    container's directory (an `O_PATH` fd run opened) before it
//!    unshares, `unshare(CLONE_NEWNS)` moves its working directory to the
//!    new namespace's copy of that mount, and the grandchild — init —
//!    inherits it. init names its layer `/proc/self/cwd/upper`, …; the
//!    directory is 0710 with container root's group, so what is below is
//!    reachable by name and nothing else is. (An fd would not do: it names
//!    the *host* namespace's mount, where the container's mounts are not.
//!    Rootless, the user owns it all anyway.)
//! 2. **Owning the image.** The image's files belong to host root, which
//!    the user namespace does not map: inside they would show as `nobody`
//!    (65534), and container root could not change them. An *idmapped
//!    mount* (Linux 5.12, `mount_setattr(MOUNT_ATTR_IDMAP)`) shows the same
//!    files through the container's map, without touching the disk: on-disk
//!    0 reads as host 100000, which is container root. Only host root may
//!    make one (it needs `CAP_SYS_ADMIN` over the file system), so run makes
//!    it — a detached mount, no path to it — and hands it to the child over
//!    the sync socket; the child attaches it at `lower/` in the container's
//!    mount namespace. Where the file system cannot be idmapped (tmpfs
//!    before Linux 6.3) run makes a *shifted copy* of the image instead:
//!    every id moved into the container's range, at the cost of a copy per
//!    container. The trace says which.

use super::maps::IdMaps;
use crate::config::LayerPaths;
use crate::error::{Error, Result};
use crate::trace;
use nix::errno::Errno;
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Uid};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Linux's `<linux/mount.h>` values the libc crate lacks on some targets.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
use crate::mounts::{MountAttr, OPEN_TREE_CLONE};

/// How the image reaches the container's root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lower {
    /// As it is: its files belong to ids the map covers (rootless: the
    /// user's own image), or no map moves them (`--userns=single` as root).
    AsIs,
    /// An idmapped mount made by run, or a shifted copy where none can be.
    Shifted,
}

/// A container layer made ready for a user namespace.
#[derive(Debug)]
pub struct PreparedLayer {
    /// `containers/<id>`, opened `O_PATH`.
    dir: OwnedFd,
    /// The image (the overlay's lower layer on the host).
    pub image: PathBuf,
    /// `containers/<id>/lower`: where the shifted image is attached.
    pub lower: PathBuf,
    pub how: Lower,
}

impl PreparedLayer {
    /// run: give `upper/` and `work/` to container root, let its group
    /// into the container's directory, and open that directory for init.
    pub fn prepare(layer: &LayerPaths, maps: &IdMaps, how: Lower) -> Result<PreparedLayer> {
        let dir = layer
            .upper
            .parent()
            .ok_or_else(|| Error::Protocol("a layer without a directory".into()))?
            .to_path_buf();
        let (uid, gid) = root_ids(maps)?;
        let lower = dir.join("lower");
        if how == Lower::Shifted && !lower.is_dir() {
            trace::step(
                format!("mkdir({:?}, 0755)", lower.display().to_string()),
                nix::unistd::mkdir(&lower, Mode::from_bits_truncate(0o755)),
            )?;
        }
        let me = nix::unistd::geteuid().as_raw();
        if me != uid.as_raw() {
            for sub in [&layer.upper, &layer.work] {
                chown(sub, uid, gid)?;
            }
            // Owner host root (its record and log stay 0600 root), group
            // container root: passable, not listable, for the container.
            trace::step(
                format!(
                    "chown({:?}, -1, {gid}); chmod 0710",
                    dir.display().to_string()
                ),
                nix::unistd::chown(&dir, None, Some(gid)).and_then(|()| {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710))
                        .map_err(|e| crate::error::errno_of(&e))
                }),
            )?;
        }
        let fd = trace::step_shows(
            format!("open({:?}, O_PATH|O_DIRECTORY)", dir.display().to_string()),
            nix::fcntl::open(
                &dir,
                nix::fcntl::OFlag::O_PATH
                    | nix::fcntl::OFlag::O_DIRECTORY
                    | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::empty(),
            ),
            |fd| Some(format!("fd {fd}")),
        )?;
        Ok(PreparedLayer {
            // SAFETY: open returned a new fd that nothing else owns.
            dir: unsafe { OwnedFd::from_raw_fd(fd) },
            image: layer.lower.clone(),
            lower,
            how,
        })
    }

    /// The container's directory, where the child stands when it unshares.
    pub fn dir(&self) -> &OwnedFd {
        &self.dir
    }

    /// The layer as init names it: from where it stands.
    pub fn paths_for_init(&self, layer: &LayerPaths) -> LayerPaths {
        LayerPaths {
            lower: match self.how {
                Lower::AsIs => layer.lower.clone(),
                Lower::Shifted => here("lower"),
            },
            upper: here("upper"),
            work: here("work"),
            merged: here("merged"),
        }
    }

    /// A host path inside the container's directory (the network's
    /// `/etc/hosts`, …) as init can reach it; other paths unchanged.
    pub fn reachable(&self, host: &Path) -> PathBuf {
        let dir = self.lower.parent().unwrap_or(Path::new("/"));
        match host.strip_prefix(dir) {
            Ok(rest) => here(&rest.to_string_lossy()),
            Err(_) => host.to_path_buf(),
        }
    }

    /// run, once the child's user namespace has its maps: a detached
    /// idmapped mount of the image to hand over, or (`None`) a shifted copy
    /// already in `lower/` where the file system cannot be idmapped.
    pub fn shift(&self, userns_pid: i32, maps: &IdMaps) -> Result<Option<OwnedFd>> {
        match idmapped_mount(&self.image, userns_pid) {
            Ok(fd) => Ok(Some(fd)),
            Err(errno) => {
                trace::note(
                    "idmapped mounts unavailable here",
                    Some(format!(
                        "{}: a shifted copy of the image instead",
                        errno.desc()
                    )),
                );
                if !is_empty_dir(&self.lower) {
                    trace::note(
                        format!("{:?}", self.lower.display().to_string()),
                        Some("kept from its last run".into()),
                    );
                    return Ok(None);
                }
                let copied = shifted_copy(&self.image, &self.lower, maps);
                trace::step_shows(
                    format!(
                        "copy {:?} → {:?}, ids shifted by the map",
                        self.image.display().to_string(),
                        self.lower.display().to_string()
                    ),
                    copied,
                    |n| Some(format!("{n} files")),
                )?;
                Ok(None)
            }
        }
    }
}

/// The child, in the container's mount namespace and working in the
/// container's directory: attach the idmapped image at `lower/`. (An fd
/// of the directory would not do: it names the host namespace's mount,
/// and a mount can only be attached in the caller's namespace.)
pub(crate) fn attach(mount: &OwnedFd) -> Result<()> {
    // SAFETY: the fd is open; the paths are NUL-terminated C strings.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c"lower".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    trace::step(
        format!(
            "move_mount(fd {}, \"\", AT_FDCWD, \"lower\", MOVE_MOUNT_F_EMPTY_PATH)",
            mount.as_raw_fd()
        ),
        Errno::result(ret).map(drop),
    )
}

/// `open_tree(OPEN_TREE_CLONE)` of the image, then
/// `mount_setattr(MOUNT_ATTR_IDMAP)` with the child's user namespace.
fn idmapped_mount(image: &Path, userns_pid: i32) -> std::result::Result<OwnedFd, Errno> {
    let shown = image.display().to_string();
    let path =
        std::ffi::CString::new(image.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: a NUL-terminated path; the call returns a new fd or -1.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let tree = Errno::result(ret).map(|fd| {
        // SAFETY: open_tree returned a new fd that nothing else owns.
        unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
    });
    let step = format!("open_tree(AT_FDCWD, {shown:?}, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC)");
    let tree = match tree {
        Ok(fd) => {
            trace::note(
                step,
                Some(format!("fd {} (a detached copy)", fd.as_raw_fd())),
            );
            fd
        }
        Err(errno) => {
            trace::failed(step, errno);
            return Err(errno);
        }
    };
    let ns_path = format!("/proc/{userns_pid}/ns/user");
    let userns = std::fs::File::open(&ns_path).map_err(|e| crate::error::errno_of(&e))?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: `attr` is a valid mount_attr that outlives the call, its size
    // is passed, and the path is a NUL-terminated empty string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    let step = format!(
        "mount_setattr(fd {}, AT_EMPTY_PATH, {{MOUNT_ATTR_IDMAP, userns: {ns_path}}})",
        tree.as_raw_fd()
    );
    match Errno::result(ret) {
        Ok(_) => {
            trace::note(step, Some("on-disk 0 now reads as container root".into()));
            Ok(tree)
        }
        Err(errno) => {
            trace::failed(step, errno);
            Err(errno)
        }
    }
}

/// Container root's host uid and gid.
pub fn root_ids(maps: &IdMaps) -> Result<(Uid, Gid)> {
    match (maps.host_uid(0), maps.host_gid(0)) {
        (Some(uid), Some(gid)) => Ok((Uid::from_raw(uid), Gid::from_raw(gid))),
        _ => Err(Error::Usage(
            "the id map has no container root (id 0)".into(),
        )),
    }
}

fn chown(path: &Path, uid: Uid, gid: Gid) -> Result<()> {
    trace::step(
        format!("chown({:?}, {uid}, {gid})", path.display().to_string()),
        nix::unistd::chown(path, Some(uid), Some(gid)),
    )
}

fn here(name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/self/cwd/{name}"))
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none())
}

/// Copy `src` to `dst` (an empty directory) with every owner moved by
/// `maps`: on-disk id N becomes the host id container id N stands for.
/// Ids the map does not cover become container `nobody` (65534), as the
/// kernel shows unmapped ids. Hard links are copied as separate files.
pub fn shifted_copy(src: &Path, dst: &Path, maps: &IdMaps) -> nix::Result<usize> {
    let nobody = (maps.host_uid(65534), maps.host_gid(65534));
    let shift = |uid: u32, gid: u32| -> nix::Result<(Uid, Gid)> {
        let uid = maps.host_uid(uid).or(nobody.0).ok_or(Errno::EOVERFLOW)?;
        let gid = maps.host_gid(gid).or(nobody.1).ok_or(Errno::EOVERFLOW)?;
        Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
    };
    let io = |e: std::io::Error| crate::error::errno_of(&e);
    let mut count = 0;
    let mut todo = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((from, to)) = todo.pop() {
        let meta = std::fs::symlink_metadata(&from).map_err(io)?;
        let kind = meta.file_type();
        if from != src {
            if kind.is_dir() {
                std::fs::create_dir(&to).map_err(io)?;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&from).map_err(io)?;
                std::os::unix::fs::symlink(target, &to).map_err(io)?;
            } else if kind.is_file() {
                std::fs::copy(&from, &to).map_err(io)?;
            } else {
                // Device nodes, fifos, sockets: the same node, shifted.
                nix::sys::stat::mknod(
                    &to,
                    nix::sys::stat::SFlag::from_bits_truncate(meta.mode()),
                    Mode::from_bits_truncate(meta.mode()),
                    meta.rdev(),
                )?;
            }
        }
        let (uid, gid) = shift(meta.uid(), meta.gid())?;
        nix::unistd::fchownat(
            None,
            &to,
            Some(uid),
            Some(gid),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if !kind.is_symlink() {
            // After chown, which clears setuid and setgid bits.
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
                .map_err(io)?;
        }
        count += 1;
        if kind.is_dir() {
            for entry in std::fs::read_dir(&from).map_err(io)? {
                let name = entry.map_err(io)?.file_name();
                todo.push((from.join(&name), to.join(&name)));
            }
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::userns::{IdRange, Writer};

    #[test]
    fn init_reaches_its_layer_from_where_it_stands() {
        let dir = tempfile::tempdir().unwrap();
        let fd = nix::fcntl::open(dir.path(), nix::fcntl::OFlag::O_PATH, Mode::empty()).unwrap();
        let prepared = PreparedLayer {
            // SAFETY: a new fd from open above.
            dir: unsafe { OwnedFd::from_raw_fd(fd) },
            image: PathBuf::from("/img"),
            lower: dir.path().join("lower"),
            how: Lower::Shifted,
        };
        assert_eq!(
            prepared.reachable(&dir.path().join("hosts")),
            Path::new("/proc/self/cwd/hosts")
        );
        assert_eq!(prepared.reachable(Path::new("/etc/x")), Path::new("/etc/x"));
    }

    #[test]
    fn a_shifted_copy_moves_owners_into_the_range() {
        if !nix::unistd::geteuid().is_root() {
            return; // chown to other ids needs root
        }
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("d")).unwrap();
        std::fs::write(src.path().join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("d/f", src.path().join("l")).unwrap();
        nix::unistd::chown(&src.path().join("d/f"), Some(Uid::from_raw(5)), None).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let range = vec![IdRange {
            inside: 0,
            outside: 100000,
            count: 65536,
        }];
        let maps = IdMaps {
            uids: range.clone(),
            gids: range,
            writer: Writer::Direct,
            deny_setgroups: false,
        };
        assert_eq!(shifted_copy(src.path(), dst.path(), &maps).unwrap(), 4);
        let uid = |p: &str| std::fs::symlink_metadata(dst.path().join(p)).unwrap().uid();
        assert_eq!(uid("d/f"), 100005);
        assert_eq!(uid("d"), 100000);
        assert_eq!(uid("l"), 100000);
        assert_eq!(
            std::fs::read_to_string(dst.path().join("d/f")).unwrap(),
            "x"
        );
    }
}
