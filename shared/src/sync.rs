//! The sync socket: how run and init talk while the container starts.
//!
//! One `socketpair(AF_UNIX, SOCK_SEQPACKET)`: each `send` is one message and
//! each `recv` returns exactly one, so there is no framing code to get wrong.
//! Both ends are close-on-exec, which gives the protocol its last word for
//! free: when init's `execve` of the user's command succeeds, the kernel
//! closes init's end and run reads EOF. No message can say "exec worked",
//! because after a successful exec there is no init left to send it.
//!
//! ```text
//! init → run   Event(..)            one per traced step
//! init → run   ReadyToExec          everything is set up; may I exec?
//! run  → init  Go                   yes (run has drawn the trace, placed the cgroup, …)
//! init → run   Failed{message,code} a step failed; init exits with `code`
//!                 <EOF>             execve succeeded (or init died)
//! ```

use crate::error::{Error, Result};
use crate::trace::{self, Event};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    Event(Event),
    ReadyToExec,
    Go,
    Failed { message: String, exit_code: u8 },
}

/// Large enough for any message we send: trace lines are capped at 1000 bytes.
const MAX_MSG: usize = 64 * 1024;

/// One end of the sync socket.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// Create both ends: `(run's end, init's end)`.
    pub fn pair() -> Result<(Channel, Channel)> {
        let (run_end, init_end) = trace::step_shows(
            "socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC)",
            socket::socketpair(
                AddressFamily::Unix,
                SockType::SeqPacket,
                None,
                SockFlag::SOCK_CLOEXEC,
            ),
            |(a, b)| {
                Some(format!(
                    "run end fd {}, init end fd {}",
                    a.as_raw_fd(),
                    b.as_raw_fd()
                ))
            },
        )?;
        Ok((Channel { fd: run_end }, Channel { fd: init_end }))
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        send_on(self.fd.as_raw_fd(), msg)
    }

    /// The next message, or `None` at EOF (the other end is closed).
    pub fn recv(&self) -> Result<Option<Msg>> {
        recv_on(self.fd.as_raw_fd())
    }
}

fn recv_on(fd: RawFd) -> Result<Option<Msg>> {
    {
        let mut buf = vec![0u8; MAX_MSG];
        let n = loop {
            match socket::recv(fd, &mut buf, MsgFlags::empty()) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other,
            }
        }
        .map_err(|errno| Error::Sys {
            step: "recv(sync socket)".into(),
            errno,
        })?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_slice(&buf[..n])
            .map(Some)
            .map_err(|e| Error::Protocol(format!("bad message from the other side: {e}")))
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn send_on(fd: RawFd, msg: &Msg) -> Result<()> {
    let bytes =
        serde_json::to_vec(msg).map_err(|e| Error::Protocol(format!("encode message: {e}")))?;
    // MSG_NOSIGNAL: if the other side died, report EPIPE instead of being
    // killed by SIGPIPE.
    socket::send(fd, &bytes, MsgFlags::MSG_NOSIGNAL)
        .map(|_| ())
        .map_err(|errno| Error::Sys {
            step: "send(sync socket)".into(),
            errno,
        })
}

// init's end of the socket. It lives as long as the process (its
// close-on-exec flag closes it at the final execve): even when init fails
// and unwinds, the failure report still has a socket to go out on.
static RUN_LINK_FD: AtomicI32 = AtomicI32::new(-1);

/// init's side of the sync socket.
#[derive(Debug)]
pub struct RunLink {
    fd: RawFd,
}

impl RunLink {
    /// Adopt the socket run passed as `fd` and forward every trace event to run.
    pub fn connect(fd: RawFd) -> Result<RunLink> {
        // Reject anything but a socket: `init` is hidden, but a user can still
        // type `04-pivot-root init --sync-fd 0`.
        let stat = nix::sys::stat::fstat(fd).map_err(|errno| Error::Sys {
            step: format!("fstat({fd})"),
            errno,
        })?;
        if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(Error::Usage(format!(
                "fd {fd} is not a sync socket: `init` is started by `run`, not by hand"
            )));
        }
        // The fd arrived without close-on-exec (dup2 cleared it so it could
        // cross the first exec); set it again so the user's command never
        // inherits it and run sees EOF at the final exec.
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .map_err(|errno| Error::Sys {
            step: format!("fcntl({fd}, F_SETFD, FD_CLOEXEC)"),
            errno,
        })?;
        RUN_LINK_FD.store(fd, Ordering::SeqCst);
        trace::forward_to_run();
        Ok(RunLink { fd })
    }

    fn recv(&self) -> Result<Option<Msg>> {
        recv_on(self.fd)
    }

    /// Block until run says go (stage 05: after it has placed us in our cgroup).
    pub fn wait_for_go(&self, why: &str) -> Result<()> {
        let step = format!("recv(fd {}) waiting for run: {why}", self.fd);
        match self.recv()? {
            Some(Msg::Go) => {
                trace::note(step, Some("go".into()));
                Ok(())
            }
            Some(other) => Err(Error::Protocol(format!("expected Go, got {other:?}"))),
            None => {
                trace::failed(&step, nix::errno::Errno::EPIPE);
                Err(Error::Protocol("run went away before saying go".into()))
            }
        }
    }

    /// Tell run we are about to exec, and wait until it has drawn the trace,
    /// so the tree is complete before the command prints anything.
    pub fn ready_to_exec(&self) -> Result<()> {
        send_on(self.fd, &Msg::ReadyToExec)?;
        match self.recv()? {
            Some(Msg::Go) => Ok(()),
            Some(other) => Err(Error::Protocol(format!("expected Go, got {other:?}"))),
            None => Err(Error::Protocol(
                "run went away before init could exec".into(),
            )),
        }
    }
}

/// Send `msg` on init's end (used by the trace and by the failure report).
pub fn send_to_run(msg: &Msg) -> Result<()> {
    let fd = RUN_LINK_FD.load(Ordering::SeqCst);
    if fd < 0 {
        return Err(Error::Protocol("not connected to run".into()));
    }
    send_on(fd, msg)
}

/// Called by init (or the child before it becomes init) when it gives up:
/// run prints `message` and exits with `exit_code`. Returns false if no run
/// is listening (init was started by hand).
pub fn report_failure(message: String, exit_code: u8) -> bool {
    send_to_run(&Msg::Failed { message, exit_code }).is_ok()
}

/// Used between clone and exec, before `RunLink::connect` exists.
pub fn adopt_for_child(fd: RawFd) {
    RUN_LINK_FD.store(fd, Ordering::SeqCst);
    trace::forward_to_run();
}
