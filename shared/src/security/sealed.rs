//! The runtime binary, out of the container's reach (CVE-2019-5736).
//!
//! Before it execs the command, init *is* this binary, running inside the
//! container's PID namespace; so is the child `exec` forks there. A process
//! of the container can open `/proc/PID/exe` of such a process (with
//! `O_PATH`, which needs no permission on the file), and that magic link
//! leads to the host's binary whatever the container's root is. The
//! container can even make it happen on demand: a file `#!/proc/self/exe`
//! in the image, run by `exec`, makes the kernel start *the runtime's
//! binary* as the interpreter. Once the runtime has exited (while it runs,
//! the kernel answers `ETXTBSY`), reopening that fd for writing replaces
//! the binary root runs next: the 2019 runc escape.
//!
//! Two defences, both here:
//! - init and `exec`'s child are non-dumpable until they exec
//!   ([`super::protect_init`]): their `/proc/PID` files belong to root and
//!   only a process with `CAP_SYS_PTRACE` may open `exe`.
//! - what runs inside the container is this binary *reached through a
//!   read-only mount that exists nowhere else*: [`SealedBinary`] is a
//!   detached clone of the bind mount of `/proc/self/exe`
//!   (`open_tree(OPEN_TREE_CLONE)`), made read-only (`mount_setattr`), and
//!   executed through its fd (`execveat(AT_EMPTY_PATH)`). Every
//!   `/proc/PID/exe` the container can reach then names that mount, and
//!   reopening it for writing fails with `EROFS`; no mount table shows it,
//!   and it goes away with the last process using it.
//!
//! runc ≥ 1.2 does the same with a read-only overlayfs of its own
//! directory (and falls back to a sealed `memfd` copy, which costs a copy
//! of the whole binary per container). A bind mount keeps the same inode,
//! which is fine here: the only ways to that inode from the container are
//! the magic links, and they all carry the read-only mount.

use crate::error::{Error, Result};
use crate::trace;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::mounts::OPEN_TREE_CLONE;
/// `OPEN_TREE_CLOEXEC` (`<linux/mount.h>`): `O_CLOEXEC`'s value.
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;

/// This binary, reachable only through a private read-only mount.
#[derive(Debug)]
pub struct SealedBinary {
    fd: OwnedFd,
}

impl SealedBinary {
    /// `open_tree("/proc/self/exe", OPEN_TREE_CLONE)`, then read-only; or,
    /// where cloning a mount is not ours to do (an ordinary user, stage
    /// 10), a sealed `memfd` copy.
    pub fn open() -> Result<SealedBinary> {
        match Self::read_only_mount() {
            Err(Error::Sys {
                errno: Errno::EPERM,
                ..
            }) => Self::sealed_copy(),
            other => other,
        }
    }

    fn read_only_mount() -> Result<SealedBinary> {
        // SAFETY: a NUL-terminated path and integer flags; open_tree
        // returns a new fd or -1.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                c"/proc/self/exe".as_ptr(),
                OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC,
            )
        };
        let fd = trace::step_shows(
            "open_tree(\"/proc/self/exe\", OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC)",
            Errno::result(ret).map(|fd| {
                // SAFETY: open_tree returned a new fd that nothing else owns.
                unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
            }),
            |fd: &OwnedFd| Some(format!("fd {} (a detached bind mount)", fd.as_raw_fd())),
        )?;
        crate::mounts::set_read_only_recursive(&fd, "/proc/self/exe, detached")?;
        Ok(SealedBinary { fd })
    }

    /// runc 1.0's way: copy the binary into a `memfd` and seal it against
    /// every change (`F_SEAL_WRITE|F_SEAL_SHRINK|F_SEAL_GROW`, then
    /// `F_SEAL_SEAL`). `/proc/PID/exe` then names that copy, which no one
    /// can write; the cost is a copy of the whole binary per container.
    fn sealed_copy() -> Result<SealedBinary> {
        let mut exe = std::fs::File::open("/proc/self/exe")
            .map_err(|e| Error::io("open /proc/self/exe", e))?;
        let memfd = trace::step_shows(
            "memfd_create(\"minibox\", MFD_CLOEXEC|MFD_ALLOW_SEALING)",
            nix::sys::memfd::memfd_create(
                c"minibox",
                nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC
                    | nix::sys::memfd::MemFdCreateFlag::MFD_ALLOW_SEALING,
            ),
            |fd: &OwnedFd| Some(format!("fd {}", fd.as_raw_fd())),
        )?;
        // std picks copy_file_range, sendfile or read/write, whichever the
        // two files allow (a memfd is on another filesystem: EXDEV for
        // copy_file_range on some kernels).
        let mut copy = std::fs::File::from(memfd);
        let step = format!("copy /proc/self/exe → fd {}", copy.as_raw_fd());
        match std::io::copy(&mut exe, &mut copy) {
            Ok(bytes) => trace::note(step, Some(format!("{bytes} bytes"))),
            Err(cause) => {
                trace::failed(&step, crate::error::errno_of(&cause));
                return Err(Error::io(step, cause));
            }
        }
        let memfd = OwnedFd::from(copy);
        let seals =
            libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: fcntl with an fd we own and integer arguments.
        let ret = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
        trace::step(
            format!(
                "fcntl(fd {}, F_ADD_SEALS, F_SEAL_WRITE|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL)",
                memfd.as_raw_fd()
            ),
            Errno::result(ret).map(drop),
        )?;
        Ok(SealedBinary { fd: memfd })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Is this process's binary on a read-only mount already (sealed, or
/// installed on a read-only filesystem), or a sealed copy? Either way
/// nothing can write it through `/proc/PID/exe`.
pub fn running_sealed() -> bool {
    let read_only = nix::sys::statvfs::statvfs("/proc/self/exe")
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .unwrap_or(false);
    // Or a sealed memfd copy (see `SealedBinary::sealed_copy`).
    let sealed_copy = std::fs::File::open("/proc/self/exe").is_ok_and(|exe| {
        // SAFETY: fcntl with an fd we own; F_GET_SEALS takes no argument.
        let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
        seals > 0 && seals & libc::F_SEAL_WRITE != 0
    });
    read_only || sealed_copy
}

/// For `exec`: unless this process already runs from a read-only mount,
/// become this same program again, executed through a [`SealedBinary`],
/// with the same arguments and environment. The child `exec` forks into
/// the container is then sealed too.
pub fn reexec_sealed() -> Result<()> {
    if running_sealed() {
        trace::note(
            "statvfs(\"/proc/self/exe\")",
            Some("read-only: running from a sealed binary".into()),
        );
        return Ok(());
    }
    let sealed = SealedBinary::open()?;
    let argv = cstrings(std::env::args_os())?;
    let envp = cstrings(std::env::vars_os().map(|(key, value)| {
        let mut pair = key;
        pair.push("=");
        pair.push(value);
        pair
    }))?;
    let step = format!(
        "execveat(fd {}, \"\", {}, AT_EMPTY_PATH)",
        sealed.raw_fd(),
        trace::quote_list(&std::env::args_os().collect::<Vec<_>>())
    );
    trace::note(
        &step,
        Some("this process again, from the read-only mount".into()),
    );
    trace::flush();
    let errno = execveat(sealed.raw_fd(), &argv, &envp);
    trace::failed(&step, errno);
    Err(Error::Sys { step, errno })
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`; returns only on failure.
/// Also called between clone and exec: minibox starts no threads, so
/// allocating there cannot meet a lock another thread held.
pub(crate) fn execveat(fd: RawFd, argv: &[CString], envp: &[CString]) -> Errno {
    let argv_ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|arg| arg.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp_ptrs: Vec<*const libc::c_char> = envp
        .iter()
        .map(|var| var.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: both arrays are NULL-terminated and point into CStrings that
    // outlive the call; the path is an empty NUL-terminated string.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::last()
}

fn cstrings(items: impl Iterator<Item = std::ffi::OsString>) -> Result<Vec<CString>> {
    use std::os::unix::ffi::OsStringExt;
    items
        .map(|item| {
            CString::new(item.into_vec())
                .map_err(|_| Error::Usage("an argument contains a NUL byte".into()))
        })
        .collect()
}
