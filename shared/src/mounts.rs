//! Mounts inside the container's mount namespace.
//!
//! A new mount namespace starts as a *copy* of the parent's mount table,
//! and copies keep their propagation: on a systemd host `/` is `shared`, so
//! a mount made in the copy is replayed in the host's namespace too. The
//! toy tutorials' `mount proc /proc` then replaces the host's `/proc`.
//! [`make_mount_tree_private`] cuts that link first, before any other mount.

use crate::error::Result;
use crate::trace;
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

pub(crate) fn traced_mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    let show = |s: Option<&str>| s.map_or("NULL".to_string(), |v| format!("{v:?}"));
    let step = format!(
        "mount({}, {:?}, {}, {}, {})",
        show(source),
        target,
        show(fstype),
        trace::flag_names(&flags),
        show(data)
    );
    trace::step(step, mount(source, target, fstype, flags, data))
}

/// `mount(NULL, "/", NULL, MS_REC|MS_PRIVATE, NULL)`: nothing mounted in
/// this namespace propagates to the host, and nothing comes back.
pub fn make_mount_tree_private() -> Result<()> {
    traced_mount(None, "/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
}

/// A fresh `proc` for this PID namespace: `ps` now sees only the container.
/// nosuid/noexec/nodev because nothing in /proc needs them, and each is one
/// less way to misuse it.
pub fn mount_proc() -> Result<()> {
    ensure_dir("/proc")?;
    traced_mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        None,
    )
}

/// The device nodes a container gets: a short list, never the host's `/dev`
/// (which would hand the container every disk).
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// A small tmpfs `/dev` with the basic nodes, a private devpts and the usual links.
pub fn mount_dev() -> Result<()> {
    ensure_dir("/dev")?;
    traced_mount(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    // mknod honours the umask; the nodes must be 0666 whatever ours is.
    let old_umask = nix::sys::stat::umask(Mode::empty());
    let made = DEVICES.iter().try_for_each(|(name, major, minor)| {
        let path = format!("/dev/{name}");
        trace::step(
            format!("mknod({path:?}, S_IFCHR|0666, {major}:{minor})"),
            mknod(
                path.as_str(),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                makedev(*major, *minor),
            ),
        )
    });
    nix::sys::stat::umask(old_umask);
    made?;

    // newinstance: the container gets its own pty numbering, and cannot see
    // or open the host's terminals through /dev/pts.
    trace::step(
        "mkdir(\"/dev/pts\", 0755)",
        nix::unistd::mkdir("/dev/pts", Mode::from_bits_truncate(0o755)),
    )?;
    traced_mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        trace::step(
            format!("symlink({target:?}, {link:?})"),
            nix::unistd::symlinkat(target, None, link),
        )?;
    }
    Ok(())
}

/// `/sys` read-only: the container may look at the kernel, not retune it.
pub fn mount_sys_readonly() -> Result<()> {
    ensure_dir("/sys")?;
    traced_mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        None,
    )
}

/// A rootfs from a tarball may lack `/proc` or `/sys`; create the mount point.
fn ensure_dir(path: &str) -> Result<()> {
    if Path::new(path).is_dir() {
        return Ok(());
    }
    trace::step(
        format!("mkdir({path:?}, 0755)"),
        nix::unistd::mkdir(path, Mode::from_bits_truncate(0o755)),
    )
}

/// An `O_PATH` fd of the mount now at `path` (for [`set_read_only_recursive`]).
pub fn open_mount(path: &str) -> Result<OwnedFd> {
    trace::step_shows(
        format!("open({path:?}, O_PATH|O_CLOEXEC)"),
        nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        // SAFETY: open returned a new fd that nothing else owns.
        .map(|fd| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }),
        |fd: &OwnedFd| Some(format!("fd {}", fd.as_raw_fd())),
    )
}

/// `AT_RECURSIVE` and `MOUNT_ATTR_RDONLY` from `<linux/mount.h>` (the libc
/// crate does not offer them for every target).
const AT_RECURSIVE: libc::c_int = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const OPEN_TREE_CLONE: libc::c_uint = 0x1;

/// `struct mount_attr` of `mount_setattr(2)` (Linux 5.12).
#[repr(C)]
pub(crate) struct MountAttr {
    pub(crate) attr_set: u64,
    pub(crate) attr_clr: u64,
    pub(crate) propagation: u64,
    pub(crate) userns_fd: u64,
}

/// Make the mount at `fd` and every mount below it read-only, keeping
/// their other flags (nosuid, nodev, …): `mount_setattr(fd, "",
/// AT_EMPTY_PATH|AT_RECURSIVE, {attr_set: MOUNT_ATTR_RDONLY})`. `shown` is
/// how the trace names the mount.
pub fn set_read_only_recursive(fd: &OwnedFd, shown: &str) -> Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid mount_attr that outlives the call, its size
    // is passed, and the path is a NUL-terminated empty string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    trace::step(
        format!(
            "mount_setattr({shown:?} via fd {}, AT_RECURSIVE, MOUNT_ATTR_RDONLY)",
            fd.as_raw_fd()
        ),
        Errno::result(ret).map(drop),
    )
}
