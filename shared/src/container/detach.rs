//! `run -d`: the process splits in two. The caller's half waits for word
//! and returns; the other half stays behind as the container's *monitor*.
//!
//! The monitor is the container's parent: it waits for init, records its
//! exit code and end time, removes its cgroup, and holds the container's
//! lock all along. It is cheap — one sleeping process — and it is why
//! every container's end is recorded even when nobody is watching.

use crate::error::{Error, Result};
use crate::process::{self, Exit};
use crate::trace;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The monitor's line back to the caller that started it.
pub struct StartReporter {
    pipe: File,
}

impl StartReporter {
    /// The container is up: the caller may print the id and return.
    pub fn started(mut self) {
        // The log's relay first: the container may print a lot at once.
        if let Err(err) = super::logging::start() {
            eprintln!(
                "{}: the container's log stays empty: {err}",
                process::program_name()
            );
        }
        let _ = self.pipe.write_all(b"started");
    }
}

/// Which half of the split this process is.
pub enum Detached {
    /// The caller: the container is up (exit 0, the id printed), or the
    /// monitor failed and said why on the shared stderr (its exit code).
    Caller(Exit),
    /// The monitor: carry on, and report when the container runs.
    Monitor(StartReporter),
}

/// Fork, before anything of the container exists (so neither half owns a
/// lock, a record or a cgroup the other would remove). The caller waits
/// until the monitor says the container started; a Ctrl-C meanwhile is
/// passed on to the monitor, which cleans up and exits 128 + N.
pub fn detach(id: &str) -> Result<Detached> {
    process::catch_signals();
    process::checkpoint()?;
    let (read_end, write_end) = trace::step_shows(
        "pipe2(O_CLOEXEC)",
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC),
        |(r, w)| {
            Some(format!(
                "read fd {}, write fd {}",
                r.as_raw_fd(),
                w.as_raw_fd()
            ))
        },
    )?;
    // SAFETY: minibox is single-threaded, so the child gets a consistent
    // copy of the whole process.
    match unsafe { nix::unistd::fork() } {
        Err(errno) => trace::step("fork()", Err(errno)),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(read_end);
            trace::set_actor("monitor");
            trace::note("fork()", Some("0: the monitor, this process".into()));
            // A session of its own: closing the terminal `run -d` was typed
            // in must not hang up the container.
            trace::step_shows("setsid()", nix::unistd::setsid(), |sid| {
                Some(format!("session {sid}"))
            })?;
            // A daemon keeps none of its caller's fds: a pipe the caller's
            // shell reads to EOF (`run -d … | cat`) would otherwise stay
            // open as long as the container lives. Its own pipe moves to 3.
            let report_fd = 3;
            let write_end = if write_end.as_raw_fd() == report_fd {
                write_end
            } else {
                trace::step(
                    format!("dup3({}, {report_fd}, O_CLOEXEC)", write_end.as_raw_fd()),
                    nix::unistd::dup3(
                        write_end.as_raw_fd(),
                        report_fd,
                        nix::fcntl::OFlag::O_CLOEXEC,
                    )
                    .map(drop),
                )?;
                drop(write_end);
                // SAFETY: dup3 just made fd 3 a copy of the pipe, and
                // nothing else in this process owns fd 3.
                unsafe { OwnedFd::from_raw_fd(report_fd) }
            };
            process::close_fds_from(report_fd + 1)?;
            Ok(Detached::Monitor(StartReporter {
                pipe: File::from(write_end),
            }))
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            // The monitor has a copy of every step recorded so far and
            // draws them; this half shows nothing, or they would appear twice.
            trace::set_sink("run", None);
            drop(write_end);
            Ok(Detached::Caller(wait_for_monitor(id, read_end, child)))
        }
    }
}

fn wait_for_monitor(id: &str, read_end: OwnedFd, monitor: nix::unistd::Pid) -> Exit {
    let mut pipe = File::from(read_end);
    let mut word = Vec::new();
    let mut buf = [0u8; 16];
    let mut passed_on = false;
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => word.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                if let (Err(Error::Interrupted(signal)), false) = (process::checkpoint(), passed_on)
                {
                    let _ = nix::sys::signal::kill(monitor, signal);
                    passed_on = true;
                }
            }
            Err(_) => break,
        }
    }
    if word == b"started" {
        println!("{id}");
        return Exit::Code(0);
    }
    // The monitor failed (and said why on our shared stderr) or was told to stop.
    loop {
        match nix::sys::wait::waitpid(monitor, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => return Exit::Code(code),
            Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => return Exit::Signal(sig),
            Err(nix::errno::Errno::EINTR) | Ok(_) => continue,
            Err(_) => return Exit::Code(crate::error::EXIT_MINIBOX_FAILED as i32),
        }
    }
}

/// The monitor, once the container runs, lets go of the terminal: its
/// stdin, stdout and stderr become `/dev/null`.
pub fn release_terminal() -> Result<()> {
    let null = trace::step_shows(
        "open(\"/dev/null\", O_RDWR)",
        nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDWR,
            nix::sys::stat::Mode::empty(),
        ),
        |fd| Some(format!("fd {fd}")),
    )?;
    for fd in 0..3 {
        trace::step(
            format!("dup2({null}, {fd})"),
            nix::unistd::dup2(null, fd).map(drop),
        )?;
    }
    let _ = nix::unistd::close(null);
    Ok(())
}
