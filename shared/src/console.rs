//! `-t`: a pseudo-terminal of the container's own (stage 07 on).
//!
//! Up to stage 06, `-t` hands the container the caller's own terminal. That
//! is a way out: the container's processes hold an fd of a host terminal,
//! can `ioctl(TIOCSTI)` keystrokes into the caller's shell on older
//! kernels, and share a session and a foreground process group with the
//! caller. docker (runc) gives the container a terminal pair of its own:
//!
//! ```text
//! init (inside, after /dev/pts is its own devpts)   run (on the host)
//!   open("/dev/ptmx")        → master                       │
//!   ioctl(TIOCGPTPEER)       → slave                        │
//!   sendmsg(SCM_RIGHTS master) ───────────────────────────▶ holds the master
//!   mount(slave → /dev/console)                             │
//!   setsid(); ioctl(slave, TIOCSCTTY)                       │
//!   dup2(slave → 0, 1, 2); execve(command)                  │
//!                                           caller's terminal ⇄ master
//! ```
//!
//! The master is opened *inside*, from the container's own devpts instance,
//! so the terminal is numbered and owned by the container (`tty` prints
//! `/dev/pts/0`); run only ever holds the master, which it got over the sync
//! socket. run then puts the caller's terminal in raw mode (every key,
//! Ctrl-C included, goes to the container's line discipline, which turns it
//! into SIGINT for the container's foreground job, as docker does), copies
//! bytes both ways, and passes on window-size changes (SIGWINCH).

use crate::error::{Error, Result};
use crate::{sync, trace};
use nix::errno::Errno;
use nix::fcntl::{self, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, SetArg, Termios};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// A new terminal pair: the master side and the slave (the terminal the
/// container's processes use).
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    /// N of `/dev/pts/N` in the devpts instance it came from.
    pub number: u32,
}

/// Open a terminal pair from the `/dev/ptmx` of the mount namespace we are
/// in (init: its own devpts; `exec`: the container's, after `setns`).
pub fn open_pty() -> Result<Pty> {
    let master = trace::step_shows(
        "open(\"/dev/ptmx\", O_RDWR|O_NOCTTY|O_CLOEXEC)",
        fcntl::open(
            "/dev/ptmx",
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ),
        |fd| Some(format!("fd {fd}")),
    )?;
    // SAFETY: open just returned this fd and nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let raw = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    trace::step(
        format!("ioctl({raw}, TIOCSPTLCK, 0)"),
        // SAFETY: TIOCSPTLCK reads one int from the pointer, which lives
        // for the whole call.
        Errno::result(unsafe { libc::ioctl(raw, libc::TIOCSPTLCK, &unlock) }).map(drop),
    )?;
    let mut number: libc::c_uint = 0;
    trace::step_shows(
        format!("ioctl({raw}, TIOCGPTN)"),
        // SAFETY: TIOCGPTN writes one unsigned int into `number`.
        Errno::result(unsafe { libc::ioctl(raw, libc::TIOCGPTN, &mut number) }).map(|_| number),
        |n| Some(format!("/dev/pts/{n}")),
    )?;
    // TIOCGPTPEER (Linux 4.13) opens the slave through the master, not by a
    // path: nothing can swap /dev/pts/N for something else in between.
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes its flags by value and returns a new fd.
    let slave = unsafe { libc::ioctl(raw, libc::TIOCGPTPEER, flags) };
    let slave = trace::step_shows(
        format!("ioctl({raw}, TIOCGPTPEER, O_RDWR|O_NOCTTY|O_CLOEXEC)"),
        Errno::result(slave),
        |fd| Some(format!("fd {fd}")),
    )?;
    // SAFETY: the ioctl just returned this fd and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    Ok(Pty {
        master,
        slave,
        number,
    })
}

/// Make `slave` the controlling terminal of a new session and stdin,
/// stdout and stderr of this process (init, or `exec`'s child).
pub fn become_session_leader(slave: BorrowedFd<'_>) -> Result<()> {
    let raw = slave.as_raw_fd();
    // A terminal can be the controlling terminal of one session only, and
    // only its session leader can claim it.
    trace::step_shows("setsid()", nix::unistd::setsid(), |sid| {
        Some(format!("session {sid}"))
    })?;
    // SAFETY: TIOCSCTTY takes an int by value (0: do not steal it).
    let ret = unsafe { libc::ioctl(raw, libc::TIOCSCTTY, 0) };
    trace::step(format!("ioctl({raw}, TIOCSCTTY, 0)"), Errno::result(ret))?;
    for target in 0..=2 {
        trace::step(
            format!("dup2({raw}, {target})"),
            nix::unistd::dup2(raw, target).map(drop),
        )?;
    }
    Ok(())
}

/// init, `-t`: open the container's terminal, hand the master to run,
/// show the slave as `/dev/console`, and make it this process's terminal.
pub fn attach_init() -> Result<()> {
    let pty = open_pty()?;
    sync::send_to_run_with_fd(&sync::Msg::Console, pty.master.as_fd())?;
    // run holds the master now; init must not (a copy here would keep the
    // terminal open after run is gone).
    drop(pty.master);
    // /dev/console: where programs that want "the console" write. docker
    // binds the container's terminal there; the slave is reached through
    // our own fd, so no path can be swapped under the mount.
    let console = "/dev/console";
    trace::step(
        format!("mknod({console:?}, S_IFREG|0600)"),
        nix::sys::stat::mknod(
            console,
            nix::sys::stat::SFlag::S_IFREG,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .or_else(|errno| {
            if errno == Errno::EEXIST {
                Ok(())
            } else {
                Err(errno)
            }
        }),
    )?;
    let source = format!("/proc/self/fd/{}", pty.slave.as_raw_fd());
    crate::mounts::traced_mount(
        Some(&source),
        console,
        None,
        nix::mount::MsFlags::MS_BIND,
        None,
    )?;
    become_session_leader(pty.slave.as_fd())
    // `pty.slave` is closed here; 0, 1 and 2 keep the terminal.
}

/// `-u` with `-t`: the terminal goes to the user the command runs as (runc
/// does the same), so a program that opens it again by name (`su`, a
/// password prompt) may. Only a terminal of the container's own devpts:
/// with `-i` alone, stdin may be the caller's terminal on the host, which
/// is not the container's to give away. A refusal (`--cap-drop CHOWN`) is
/// shown and does not stop the start: the open fds work all the same.
pub fn hand_over(uid: u32) {
    let (Ok(stdin), Ok(devpts)) = (nix::sys::stat::fstat(0), nix::sys::stat::stat("/dev/pts"))
    else {
        return;
    };
    let is_char = stdin.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if uid == 0 || !is_char || stdin.st_dev != devpts.st_dev || stdin.st_uid == uid {
        return;
    }
    let _ = trace::step(
        format!("fchown(0, {uid}, -1)"),
        nix::unistd::fchown(0, Some(nix::unistd::Uid::from_raw(uid)), None),
    );
}

// ---------------------------------------------------------------- relay

static WINDOW_CHANGED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_window_change(_: libc::c_int) {
    WINDOW_CHANGED.store(true, Ordering::SeqCst);
}

/// The caller's terminal in raw mode while the container has it; restored
/// when this is dropped, however run leaves.
struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    fn enter(terminal: BorrowedFd<'_>) -> Result<RawMode> {
        let saved = termios::tcgetattr(terminal).map_err(|errno| Error::Sys {
            step: "tcgetattr(0)".into(),
            errno,
        })?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        trace::step(
            "tcsetattr(0, TCSANOW, raw)",
            termios::tcsetattr(terminal, SetArg::TCSANOW, &raw),
        )?;
        Ok(RawMode {
            fd: terminal.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: fd 0 outlives run's use of it; restoring its settings is
        // all we do with it here.
        let terminal = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(terminal, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Copy the caller's window size onto the container's terminal.
fn copy_window_size(from: RawFd, to: RawFd) {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills `size`; TIOCSWINSZ reads it. Both fds are
    // open for the duration of the calls. Failure (no terminal) is fine:
    // the container keeps the size it has.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &size);
        }
    }
}

/// The caller's terminal whose window size the container's follows:
/// stdin's with `-i`, or stdout's when the container only writes to it.
fn window_size_source(input: bool) -> Option<RawFd> {
    [input.then_some(0), Some(1)]
        .into_iter()
        .flatten()
        .find(|&fd| nix::unistd::isatty(fd).unwrap_or(false))
}

/// Give the container's terminal the caller's window size now, before its
/// command runs (so a first `stty size` already sees it).
pub fn set_initial_window_size(master: BorrowedFd<'_>, input: bool) {
    if let Some(fd) = window_size_source(input) {
        copy_window_size(fd, master.as_raw_fd());
    }
}

/// Where the container's terminal output goes and where its input comes from.
pub struct Relay {
    pub master: OwnedFd,
    /// The caller's stdin (`-i`), or nothing.
    pub input: Option<RawFd>,
    /// run's stdout, or the container's log (`-d -t`).
    pub output: RawFd,
}

impl Relay {
    /// Copy bytes both ways until `done` (a pidfd of the process whose end
    /// ends the session) becomes readable, then drain what the terminal
    /// still holds. `on_interrupt` runs when a signal interrupts the wait
    /// (run reports forwarded signals there).
    pub fn run(self, done: BorrowedFd<'_>, on_interrupt: impl Fn()) -> Result<()> {
        let master = self.master.as_raw_fd();
        let input_is_terminal = self
            .input
            .is_some_and(|fd| nix::unistd::isatty(fd).unwrap_or(false));
        let _raw = match self.input {
            // SAFETY: the caller's stdin stays open for all of run's life.
            Some(fd) if input_is_terminal => {
                Some(RawMode::enter(unsafe { BorrowedFd::borrow_raw(fd) })?)
            }
            _ => None,
        };
        let size_source = window_size_source(self.input.is_some());
        if size_source.is_some() {
            let action = nix::sys::signal::SigAction::new(
                nix::sys::signal::SigHandler::Handler(on_window_change),
                nix::sys::signal::SaFlags::empty(),
                nix::sys::signal::SigSet::empty(),
            );
            // SAFETY: the handler only stores to an atomic.
            let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::SIGWINCH, &action) };
        }
        let mut input = self.input;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if WINDOW_CHANGED.swap(false, Ordering::SeqCst) {
                if let Some(fd) = size_source {
                    copy_window_size(fd, master);
                }
            }
            // SAFETY: these fds stay open while we poll them.
            let master_fd = unsafe { BorrowedFd::borrow_raw(master) };
            let mut fds = vec![
                PollFd::new(master_fd, PollFlags::POLLIN),
                PollFd::new(done, PollFlags::POLLIN),
            ];
            // SAFETY: as above.
            let input_fd = input.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) });
            if let Some(fd) = input_fd {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => {
                    on_interrupt();
                    continue;
                }
                Err(errno) => return trace::step("poll(terminal)", Err(errno)),
                Ok(_) => {}
            }
            let ready = |i: usize| {
                fds.get(i)
                    .and_then(|f| f.revents())
                    .is_some_and(|r| !r.is_empty())
            };
            let (master_ready, finished, input_ready) = (ready(0), ready(1), ready(2));
            if master_ready && !copy_once(master, self.output, &mut buf) {
                // EIO: no process holds the terminal any more.
                return Ok(());
            }
            if input_ready {
                if let Some(fd) = input {
                    if !copy_once(fd, master, &mut buf) {
                        // The caller's stdin ended: stop reading it; the
                        // container keeps its terminal.
                        input = None;
                    }
                }
            }
            if finished {
                self.drain(&mut buf);
                return Ok(());
            }
        }
    }

    /// The session's process is gone: whatever it wrote last is still in
    /// the terminal; copy it out without waiting for more.
    fn drain(&self, buf: &mut [u8]) {
        let master = self.master.as_raw_fd();
        loop {
            // SAFETY: the master stays open for the call.
            let fd = unsafe { BorrowedFd::borrow_raw(master) };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
                Ok(n) if n > 0 => {
                    if !copy_once(master, self.output, buf) {
                        return;
                    }
                }
                Err(Errno::EINTR) => continue,
                _ => return,
            }
        }
    }
}

/// One read from `from` written wholly to `to`; false at end of input (or
/// EIO, which is how a master says every slave is closed).
fn copy_once(from: RawFd, to: RawFd, buf: &mut [u8]) -> bool {
    let n = loop {
        match nix::unistd::read(from, buf) {
            Err(Errno::EINTR) => continue,
            Ok(0) | Err(_) => return false,
            Ok(n) => break n,
        }
    };
    let mut rest = &buf[..n];
    while !rest.is_empty() {
        // SAFETY: `to` is open for the call (run's stdout, the log, or the master).
        let fd = unsafe { BorrowedFd::borrow_raw(to) };
        match nix::unistd::write(fd, rest) {
            Err(Errno::EINTR) => continue,
            // Output nobody reads any more (a closed pipe): keep draining
            // the terminal so the container is not blocked on it.
            Err(_) => return true,
            Ok(written) => rest = &rest[written..],
        }
    }
    true
}
