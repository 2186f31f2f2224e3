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
//! run  → init  Config{part,last}     stages 01–02: init's config, in parts
//! init → run   Event(..)             one per traced step
//! init → run   Step(..)              one per step with `--trace step`: init
//! run  → init  Resume                  waits for Resume, sent when the
//!                                      presenter lets the step go
//! init → run   ReadyToExec           everything is set up; may I exec?
//! run  → init  Go                    yes (run has drawn the trace, placed the cgroup, …)
//! init → run   Console + fd          stage 07 on, `-t`: the terminal's master (SCM_RIGHTS)
//! init → run   Failed{message,code}  a step failed; init exits with `code`
//!                 <EOF>              execve succeeded (or init died)
//! ```
//!
//! init's end always arrives as fd [`SYNC_FD`]. init's trace events go out
//! through a [`ForwardSink`]: the trace module only knows it as a sink.

use crate::config::InitConfig;
use crate::error::{Error, Result};
use crate::trace::{self, Event, Sink};
use nix::errno::Errno;
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The fd on which init finds its end of the sync socket.
pub const SYNC_FD: RawFd = 4;

#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    Event(Event),
    /// A part of init's config (a SEQPACKET message has a size limit; a
    /// config with a long command is sent in several parts).
    Config {
        part: String,
        last: bool,
    },
    /// A step of init under `--trace step`: init waits for [`Msg::Resume`].
    Step(Event),
    /// run → init: the presenter has let the last step go.
    Resume,
    ReadyToExec,
    Go,
    /// Stage 10, the child: "I am in a new user namespace: write my maps".
    UsernsReady,
    /// run → the child: the maps are written. With `idmapped_lower`, the
    /// message carries (SCM_RIGHTS) a detached, idmapped mount of the
    /// image for the child to attach.
    MapsWritten {
        idmapped_lower: bool,
    },
    /// The child → run: the grandchild, which will be init, has this host pid.
    Grandchild {
        host_pid: i32,
    },
    /// init → run, with `-t` (stage 07 on): the master side of the
    /// container's terminal travels with this message (SCM_RIGHTS).
    Console,
    Failed {
        message: String,
        exit_code: u8,
    },
}

/// Large enough for any message we send: trace lines are capped at 1000
/// bytes, config parts at [`CONFIG_PART`] characters (escaped, at most 6×).
const MAX_MSG: usize = 128 * 1024;
/// Characters of config JSON per message.
const CONFIG_PART: usize = 16 * 1024;

/// run's end of the sync socket.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// Create both ends: `(run's end, init's end)`.
    pub fn pair() -> Result<(Channel, OwnedFd)> {
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
        Ok((Channel { fd: run_end }, init_end))
    }

    pub fn send(&self, msg: &Msg) -> Result<()> {
        send_on(self.fd.as_raw_fd(), msg)
    }

    /// The next message, or `None` at EOF (the other end is closed).
    pub fn recv(&self) -> Result<Option<Msg>> {
        recv_on(self.fd.as_raw_fd())
    }

    /// Send `msg` with `fd` attached (SCM_RIGHTS): the receiver gets its own
    /// fd for the same open file — here, a mount no path leads to.
    pub fn send_with_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> Result<()> {
        send_with_fd_on(self.fd.as_raw_fd(), msg, fd)
    }

    /// The next message and the fd it carries, if any (`None` at EOF).
    pub fn recv_with_fd(&self) -> Result<(Option<Msg>, Option<OwnedFd>)> {
        recv_with_fd_on(self.fd.as_raw_fd())
    }

    /// Send init its config as one or more `Config` messages.
    pub fn send_config(&self, config: &InitConfig) -> Result<()> {
        let json = config.to_json()?;
        let mut parts = Vec::new();
        let mut rest = json.as_str();
        while !rest.is_empty() || parts.is_empty() {
            let mut cut = rest.len().min(CONFIG_PART);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            parts.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        let count = parts.len();
        for (n, part) in parts.into_iter().enumerate() {
            let last = n + 1 == count;
            if let Err(err) = self.send(&Msg::Config {
                part: part.to_string(),
                last,
            }) {
                trace::failed(
                    format!("send(fd {}, InitConfig)", self.fd.as_raw_fd()),
                    match err {
                        Error::Sys { errno, .. } => errno,
                        _ => Errno::EPROTO,
                    },
                );
                return Err(err);
            }
        }
        trace::note(
            format!("send(fd {}, InitConfig)", self.fd.as_raw_fd()),
            Some(format!(
                "{} bytes in {}",
                json.len(),
                trace::count(count, "message")
            )),
        );
        Ok(())
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

fn recv_on(fd: RawFd) -> Result<Option<Msg>> {
    let mut buf = vec![0u8; MAX_MSG];
    let n = loop {
        match socket::recv(fd, &mut buf, MsgFlags::empty()) {
            // A signal for run: its handler has done what it must (see
            // `process`); the conversation goes on until init answers or dies.
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    }
    .map_err(|errno| Error::Sys {
        step: format!("recv(fd {fd})"),
        errno,
    })?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_slice(&buf[..n])
        .map(Some)
        .map_err(|e| Error::Protocol(format!("bad message from the other side: {e}")))
}

fn send_on(fd: RawFd, msg: &Msg) -> Result<()> {
    let bytes =
        serde_json::to_vec(msg).map_err(|e| Error::Protocol(format!("encode message: {e}")))?;
    // MSG_NOSIGNAL: if the other side died, report EPIPE instead of being
    // killed by SIGPIPE.
    loop {
        match socket::send(fd, &bytes, MsgFlags::MSG_NOSIGNAL) {
            Err(Errno::EINTR) => continue,
            Ok(_) => return Ok(()),
            Err(errno) => {
                return Err(Error::Sys {
                    step: format!("send(fd {fd})"),
                    errno,
                })
            }
        }
    }
}

// init's end of the socket. It lives as long as the process (its
// close-on-exec flag closes it at the final execve): even when init fails
// and unwinds, the failure report still has a socket to go out on.
static RUN_LINK_FD: AtomicI32 = AtomicI32::new(-1);

/// Forwards every trace event of init (and of the child before it became
/// init) to run, which draws them.
pub struct ForwardSink {
    fd: RawFd,
    /// `--trace step`: the process that waits for run's word after each
    /// step (a child it forks, the `--init` reaper's, does not).
    stepping: Option<u32>,
}

impl ForwardSink {
    pub fn new(fd: RawFd) -> ForwardSink {
        ForwardSink { fd, stepping: None }
    }

    /// init under `--trace step`: after each step, wait until run resumes us.
    pub fn stepping(fd: RawFd) -> ForwardSink {
        ForwardSink {
            fd,
            stepping: Some(std::process::id()),
        }
    }

    /// Wait for `Resume`. What else arrives meanwhile (stage 05's `Go`, sent
    /// while run had not yet read our step) is kept for init's next
    /// [`RunLink`] read, in order.
    fn wait_for_resume(&self) {
        loop {
            match recv_on(self.fd) {
                Ok(Some(Msg::Resume)) => return,
                Ok(Some(other)) => early().push_back(other),
                // run is gone (or the socket broke): nothing to wait for.
                // The next read of the conversation reports it.
                Ok(None) | Err(_) => return,
            }
        }
    }
}

impl Sink for ForwardSink {
    fn event(&mut self, event: Event) {
        // If run is gone there is nobody to tell; the step's own result
        // still decides what init does next.
        if self.stepping == Some(std::process::id()) {
            if send_on(self.fd, &Msg::Step(event)).is_ok() {
                self.wait_for_resume();
            }
        } else {
            let _ = send_on(self.fd, &Msg::Event(event));
        }
    }
}

/// Messages from run that arrived while init waited for a `Resume`.
static EARLY: std::sync::Mutex<std::collections::VecDeque<Msg>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

fn early() -> std::sync::MutexGuard<'static, std::collections::VecDeque<Msg>> {
    EARLY.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// init's next message from run: one kept while it waited for a `Resume`
/// first, else the socket's next.
fn recv_in_init(fd: RawFd) -> Result<Option<Msg>> {
    let kept = early().pop_front();
    match kept {
        Some(msg) => Ok(Some(msg)),
        None => recv_on(fd),
    }
}

/// init's side of the sync socket.
#[derive(Debug)]
pub struct RunLink {
    fd: RawFd,
}

impl RunLink {
    /// Adopt the socket run passed as [`SYNC_FD`] and forward every trace
    /// event to run.
    pub fn connect() -> Result<RunLink> {
        let fd = SYNC_FD;
        // Reject anything but a socket: `init` is hidden, but a user can still
        // type `04-pivot-root init`.
        let stat = nix::sys::stat::fstat(fd).map_err(|_| {
            Error::Usage("`init` is started by `run`, not by hand (it has no sync socket)".into())
        })?;
        if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(Error::Usage(format!(
                "fd {fd} is not a sync socket: `init` is started by `run`, not by hand"
            )));
        }
        adopt(fd);
        // The fd arrived without close-on-exec (dup2 cleared it so it could
        // cross the first exec); set it again so the user's command never
        // inherits it and run sees EOF at the final exec.
        trace::step(
            format!("fcntl({fd}, F_SETFD, FD_CLOEXEC)"),
            nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            )
            .map(drop),
        )?;
        Ok(RunLink { fd })
    }

    /// Stages 01–02: read init's config from the socket (run sends it
    /// right after clone).
    pub fn receive_config(&self) -> Result<InitConfig> {
        let step = format!("recv(fd {}) InitConfig", self.fd);
        let mut json = String::new();
        loop {
            match self.recv()? {
                Some(Msg::Config { part, last }) => {
                    json.push_str(&part);
                    if last {
                        break;
                    }
                }
                Some(other) => {
                    return Err(Error::Protocol(format!(
                        "expected the config, got {other:?}"
                    )))
                }
                None => {
                    trace::failed(&step, Errno::EPIPE);
                    return Err(Error::Protocol(
                        "run went away before sending the config".into(),
                    ));
                }
            }
        }
        let config = InitConfig::from_json(&json)?;
        trace::note(step, Some(config.summary(json.len())));
        self.follow_trace_mode(&config);
        Ok(config)
    }

    /// With `--trace off` run shows nothing, so init stops sending; with
    /// `--trace step` init waits for run's word after each step.
    pub fn follow_trace_mode(&self, config: &InitConfig) {
        match config.trace {
            trace::TraceMode::Off => trace::set_sink("init", None),
            trace::TraceMode::Step => {
                trace::set_sink("init", Some(Box::new(ForwardSink::stepping(self.fd))))
            }
            trace::TraceMode::Tree | trace::TraceMode::Json => {}
        }
    }

    fn recv(&self) -> Result<Option<Msg>> {
        recv_in_init(self.fd)
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
                trace::failed(&step, Errno::EPIPE);
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

/// From now on this process's trace events go to run over `fd` (used by
/// the child between clone and exec, and by init).
pub fn adopt(fd: RawFd) {
    RUN_LINK_FD.store(fd, Ordering::SeqCst);
    trace::set_sink("init", Some(Box::new(ForwardSink::new(fd))));
}

/// Send `msg` on the adopted end (the child of stage 10 talks to run so).
pub fn send_to_run(msg: &Msg) -> Result<()> {
    let fd = RUN_LINK_FD.load(Ordering::SeqCst);
    if fd < 0 {
        return Err(Error::Protocol("not connected to run".into()));
    }
    send_on(fd, msg)
}

/// The next message from run on the adopted end.
pub fn recv_from_run() -> Result<Option<Msg>> {
    let fd = RUN_LINK_FD.load(Ordering::SeqCst);
    if fd < 0 {
        return Err(Error::Protocol("not connected to run".into()));
    }
    recv_in_init(fd)
}

/// The next message from run, and the fd it carries, if any
/// ([`Channel::send_with_fd`]).
pub fn recv_from_run_with_fd() -> Result<(Option<Msg>, Option<OwnedFd>)> {
    let fd = RUN_LINK_FD.load(Ordering::SeqCst);
    if fd < 0 {
        return Err(Error::Protocol("not connected to run".into()));
    }
    recv_with_fd_on(fd)
}

/// Send `msg` to run with `passed` attached (init's terminal, `-t`).
pub fn send_to_run_with_fd(msg: &Msg, passed: BorrowedFd<'_>) -> Result<()> {
    let fd = RUN_LINK_FD.load(Ordering::SeqCst);
    if fd < 0 {
        return Err(Error::Protocol("not connected to run".into()));
    }
    send_with_fd_on(fd, msg, passed)
}

fn send_with_fd_on(fd: RawFd, msg: &Msg, passed: BorrowedFd<'_>) -> Result<()> {
    let bytes =
        serde_json::to_vec(msg).map_err(|e| Error::Protocol(format!("encode message: {e}")))?;
    let fds = [passed.as_raw_fd()];
    let cmsg = [socket::ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(&bytes)];
    let step = format!("sendmsg(fd {fd}, SCM_RIGHTS [fd {}])", fds[0]);
    loop {
        match socket::sendmsg::<()>(fd, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            result => return trace::step(step, result.map(drop)),
        }
    }
}

fn recv_with_fd_on(fd: RawFd) -> Result<(Option<Msg>, Option<OwnedFd>)> {
    use std::os::fd::FromRawFd;
    let mut buf = vec![0u8; MAX_MSG];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let (n, passed) = loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match socket::recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                return Err(Error::Sys {
                    step: format!("recvmsg(fd {fd})"),
                    errno,
                })
            }
            Ok(msg) => {
                let mut passed = None;
                for cmsg in msg.cmsgs().map_err(|errno| Error::Sys {
                    step: format!("recvmsg(fd {fd})"),
                    errno,
                })? {
                    if let socket::ControlMessageOwned::ScmRights(fds) = cmsg {
                        // SAFETY: the kernel just installed these fds in
                        // this process for us; nothing else owns them.
                        passed = fds.first().map(|&f| unsafe { OwnedFd::from_raw_fd(f) });
                    }
                }
                break (msg.bytes, passed);
            }
        }
    };
    if n == 0 {
        return Ok((None, passed));
    }
    let msg = serde_json::from_slice(&buf[..n])
        .map_err(|e| Error::Protocol(format!("bad message from the other side: {e}")))?;
    Ok((Some(msg), passed))
}

/// Called by init (or the child before it becomes init) when it gives up:
/// run prints `message` and exits with `exit_code`. Returns false if no run
/// is listening (init was started by hand).
pub fn report_failure(message: String, exit_code: u8) -> bool {
    let fd = RUN_LINK_FD.load(Ordering::SeqCst);
    fd >= 0 && send_on(fd, &Msg::Failed { message, exit_code }).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(step: &str) -> Event {
        Event {
            actor: "init".into(),
            pid: 1,
            step: step.into(),
            result: None,
            errno: None,
            error: None,
            t_us: 0,
        }
    }

    /// A stepping init that gets `Go` while it waits for `Resume` (stage 05:
    /// run sends it before it has read init's step) keeps it for its next
    /// read, and goes on only at `Resume`.
    #[test]
    fn a_stepping_init_keeps_what_arrives_before_resume() {
        let (run_end, init) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let run = run_end.as_raw_fd();
        send_on(run, &Msg::Go).unwrap();
        send_on(run, &Msg::Resume).unwrap();
        let mut sink = ForwardSink::stepping(init.as_raw_fd());
        sink.event(event("sethostname(\"x\")"));
        // run got the step as a Step, not an Event: it must answer.
        assert!(
            matches!(recv_on(run).unwrap(), Some(Msg::Step(e)) if e.step.starts_with("sethostname"))
        );
        // The Go that came first is init's next message.
        assert!(matches!(
            recv_in_init(init.as_raw_fd()).unwrap(),
            Some(Msg::Go)
        ));
        // A sink that does not step sends plain events and waits for nothing.
        ForwardSink::new(init.as_raw_fd()).event(event("mount"));
        assert!(matches!(recv_on(run).unwrap(), Some(Msg::Event(_))));
    }
}
