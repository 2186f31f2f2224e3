//! `run --init`: minibox's init stays PID 1 and the command becomes its
//! child — the role docker gives `tini`.
//!
//! Why a container may want that: PID 1 of a PID namespace is special.
//! The kernel delivers it only the signals it has a handler for (so a
//! plain `sleep` as PID 1 ignores `stop`'s SIGTERM and is SIGKILLed after
//! the grace period), and every orphan of the namespace is re-parented to
//! it, to be reaped (`wait`ed for) by it or to stay a zombie. A program
//! written to run under a shell or systemd does neither. With `--init`,
//! PID 1 is a small loop that does both:
//! * every signal but the ones the kernel raises for a fault is blocked,
//!   and fetched with `sigwaitinfo` (blocked signals reach even PID 1);
//!   each is passed on to the command (not one the terminal sent: the
//!   command, in the same process group, got that one itself);
//! * on SIGCHLD, every exited child is reaped; when the command exits,
//!   PID 1 exits with its status (128 + N if signal N killed it), and the
//!   kernel ends what is left in the namespace.
//!
//! The loop runs with whatever init had become by then (the user, the
//! capabilities and the seccomp filter of stage 09), as tini would.

use crate::error::{Error, Result};
use crate::sync::RunLink;
use crate::{process, trace};
use nix::errno::Errno;
use nix::sys::signal::{self, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by init (from its config) before it execs the command.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// init: the command is to run as a child of PID 1 (`--init`).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

/// Signals a fault raises in the process itself: never forwarded (and
/// left unblocked, so a fault in the loop is not hidden).
const SYNCHRONOUS: [Signal; 9] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
];

fn waited_for() -> SigSet {
    let mut set = SigSet::all();
    for sig in SYNCHRONOUS {
        set.remove(sig);
    }
    set
}

/// Fork the command (exec'ing `program` with `argv` and `envp` in the
/// child), tell run it runs, then be its PID 1 until it exits. `step` is
/// the exec as the trace shows it. Returns only if the exec failed.
pub fn run_command(
    run: &RunLink,
    program: &CStr,
    argv: &[CString],
    envp: &[CString],
    step: &str,
) -> Result<Infallible> {
    // Blocked before the fork, so none arrives between it and the loop.
    let waited = waited_for();
    trace::step(
        "sigprocmask(SIG_BLOCK, <all but faults>)",
        signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None),
    )?;
    // The child reports a failed exec here; at a good exec the pipe
    // closes (close-on-exec) and we read EOF.
    let (report_read, report_write) = trace::step(
        "pipe2(O_CLOEXEC)",
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC),
    )?;
    trace::note(
        "fork(): --init, this process stays PID 1 (it reaps and forwards signals)",
        None,
    );
    trace::note(step, None);
    run.ready_to_exec()?;
    // SAFETY: init is single-threaded; the child only changes its signal
    // mask, execs, and on failure writes and _exits.
    let child = match unsafe { fork() } {
        Err(errno) => {
            return Err(Error::Sys {
                step: "fork()".into(),
                errno,
            })
        }
        Ok(ForkResult::Child) => {
            let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            let errno = match nix::unistd::execve(program, argv, envp) {
                Err(errno) => errno,
                Ok(never) => match never {},
            };
            let code = (errno as i32).to_ne_bytes();
            // SAFETY: a write of a local buffer, then _exit: both
            // async-signal-safe, nothing else runs in this child.
            unsafe {
                libc::write(report_write.as_raw_fd(), code.as_ptr().cast(), code.len());
                libc::_exit(127)
            }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(report_write);
    let mut report = [0u8; 4];
    let read = nix::unistd::read(report_read.as_raw_fd(), &mut report);
    drop(report_read);
    if let Ok(4) = read {
        let _ = waitpid(child, None);
        let errno = Errno::from_raw(i32::from_ne_bytes(report));
        trace::failed(step, errno);
        let program = program.to_string_lossy().into_owned();
        return Err(match errno {
            Errno::ENOENT => Error::CommandNotFound(program),
            Errno::EACCES | Errno::ENOEXEC => Error::CannotExecute(program),
            _ => Error::Sys {
                step: step.to_string(),
                errno,
            },
        });
    }
    // The command runs: let go of run's socket and every other fd, as an
    // exec would have (run takes the EOF for "exec'd").
    process::close_fds_from(3)?;
    // What `ps` inside shows as PID 1 (docker's is `docker-init`).
    let _ = nix::sys::prctl::set_name(c"minibox-init");
    serve(child, &waited)
}

/// PID 1's loop: forward, reap, and exit with the command's status.
fn serve(child: Pid, waited: &SigSet) -> ! {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid buffer for the kernel
        // to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `waited` is a valid signal set and `info` a buffer of
        // the right type, both alive for the call.
        let signo = unsafe { libc::sigwaitinfo(waited.as_ref(), &mut info) };
        if signo < 0 {
            continue; // EINTR: nothing to do
        }
        if signo == libc::SIGCHLD {
            if let Some(code) = reap(child) {
                std::process::exit(code);
            }
        } else if info.si_code != libc::SI_KERNEL {
            // SAFETY: kill(2) with a pid of ours and a signal number the
            // kernel just gave us.
            unsafe { libc::kill(child.as_raw(), signo) };
        }
    }
}

/// Reap every child that has exited; the command's exit code if it has.
fn reap(command: Pid) -> Option<i32> {
    let mut ended = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == command => ended = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                ended = Some(128 + sig as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return ended,
            Ok(_) => {}
        }
    }
}
