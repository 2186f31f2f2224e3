//! Namespaces: which ones a container gets, its host name, and joining a
//! running container's namespaces (`exec`).
//!
//! Creating them happens in [`crate::process::Spawn::start`]: a new PID
//! namespace only applies to children, so the namespaces are created
//! together with init by `clone`.

use crate::error::{Error, Result};
use crate::trace;
use nix::sched::CloneFlags;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The namespaces a container's init is born in (the user namespace comes
/// in stage 10).
pub const CONTAINER: CloneFlags = CloneFlags::CLONE_NEWUTS
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWNS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET);

/// Set the host name inside the new UTS namespace.
pub fn set_hostname(name: &str) -> Result<()> {
    trace::step(
        format!("sethostname({name:?})"),
        nix::unistd::sethostname(name),
    )
}

/// Check a `--hostname` before anything is created.
pub fn validate_hostname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid --hostname {name:?}: use 1 to 64 letters, digits, '-' and '.'"
        )))
    }
}

/// The namespaces `exec` joins, in the order it joins them. A user
/// namespace (none yet) would come first, since it decides what the
/// others allow; the mount namespace comes last, because once we are in
/// it, the host's `/proc/<pid>/ns/*` paths are no longer ours to open.
pub const JOIN_ORDER: [(&str, CloneFlags); 5] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// The namespaces of a running process, opened (and so pinned: a
/// namespace lives as long as an fd refers to it).
pub struct Handles(Vec<(OwnedFd, CloneFlags, &'static str)>);

/// Open every namespace of `pid` in [`JOIN_ORDER`] — after its user
/// namespace, when it has one of its own (stage 10): that one decides what
/// the others allow, and a process that joined the others without it
/// would be host root inside the container.
pub fn open(pid: i32) -> Result<Handles> {
    let mut handles = Vec::new();
    let theirs = format!("/proc/{pid}/ns/user");
    let same = |a: &str, b: &str| {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => true,
        }
    };
    if !same(&theirs, "/proc/self/ns/user") {
        let fd = trace::step_shows(
            format!("open({theirs:?})"),
            nix::fcntl::open(
                theirs.as_str(),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ),
            |fd| Some(format!("fd {fd}")),
        )?;
        // SAFETY: open just returned this fd to us alone.
        handles.push((
            unsafe { OwnedFd::from_raw_fd(fd) },
            CloneFlags::CLONE_NEWUSER,
            "user",
        ));
    }
    for (name, flag) in JOIN_ORDER {
        let path = format!("/proc/{pid}/ns/{name}");
        let fd = trace::step_shows(
            format!("open({path:?})"),
            nix::fcntl::open(
                path.as_str(),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ),
            |fd| Some(format!("fd {fd}")),
        )?;
        // SAFETY: open just returned this fd to us alone.
        handles.push((unsafe { OwnedFd::from_raw_fd(fd) }, flag, name));
    }
    Ok(Handles(handles))
}

impl Handles {
    /// `setns` into each, in order, then `chdir("/")`: joining a mount
    /// namespace moves our root and working directory to its root.
    ///
    /// Why Rust needs no trick here: `setns` into a mount (or user)
    /// namespace requires a *single-threaded* caller, because the other
    /// threads would be left in the old namespace. A Go program has runtime
    /// threads before `main` runs, which is why runc does this in C, in a
    /// constructor that runs before the Go runtime starts. A Rust program
    /// has exactly the threads it starts itself, and minibox starts none:
    /// were a thread running, the mount-namespace `setns` would fail with
    /// EINVAL.
    pub fn join(self) -> Result<()> {
        for (fd, flag, name) in self.0 {
            trace::step(
                format!(
                    "setns(fd {}, {}) [{name}]",
                    fd.as_raw_fd(),
                    trace::flag_names(&flag)
                ),
                nix::sched::setns(&fd, flag),
            )?;
            if flag == CloneFlags::CLONE_NEWUSER {
                // Root of the namespace: our host uid is not mapped in it.
                let root = (nix::unistd::Gid::from_raw(0), nix::unistd::Uid::from_raw(0));
                // The host's supplementary groups mean nothing inside; where
                // the namespace denies setgroups they stay (as overflow ids).
                match nix::unistd::setgroups(&[]) {
                    Err(nix::errno::Errno::EPERM) => {
                        trace::failed("setgroups([])", nix::errno::Errno::EPERM)
                    }
                    other => trace::step("setgroups([])", other)?,
                }
                trace::step(
                    "setresgid(0, 0, 0)",
                    nix::unistd::setresgid(root.0, root.0, root.0),
                )?;
                trace::step(
                    "setresuid(0, 0, 0)",
                    nix::unistd::setresuid(root.1, root.1, root.1),
                )?;
            }
        }
        trace::step("chdir(\"/\")", nix::unistd::chdir("/"))
    }
}

/// The fd on which init finds another container's network namespace
/// (`--network container:NAME`).
pub const NETNS_FD: std::os::fd::RawFd = 5;

/// init: join the network namespace run passed as [`NETNS_FD`] (a
/// container sharing another's network, as in a pod).
pub fn join_network() -> Result<()> {
    // SAFETY: run placed the namespace's fd at NETNS_FD for us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(NETNS_FD) };
    trace::step(
        format!("setns(fd {NETNS_FD}, CLONE_NEWNET)"),
        nix::sched::setns(&fd, CloneFlags::CLONE_NEWNET),
    )
}

/// run: open the network namespace of process `pid`, to pass to init.
pub fn open_network_of(pid: i32) -> Result<OwnedFd> {
    let path = format!("/proc/{pid}/ns/net");
    let fd = trace::step_shows(
        format!("open({path:?})"),
        nix::fcntl::open(
            path.as_str(),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ),
        |fd| Some(format!("fd {fd}")),
    )?;
    // SAFETY: open just returned this fd to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
