//! Running a runtime: in the outer cgroup, in a process group of its own,
//! stdin from /dev/null, stdout and stderr captured, with a deadline.
//! Nothing waits by sleeping: threads read the pipes and wait for the
//! exit, and the caller blocks on their messages until the deadline.

use crate::cgroup::Outer;
use crate::error::{Error, Result};
use std::ffi::{CString, OsString};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a runtime ended.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// The exit code, or 128 + signal for a killed runtime (a shell's
    /// convention); `None` when it timed out.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    /// Processes still in the checker's cgroups once the runtime had
    /// exited ("PID comm"): a container that outlived its runtime. They
    /// are killed.
    pub leftovers: Vec<String>,
    /// The command line, for messages.
    pub argv: Vec<OsString>,
}

impl Finished {
    /// The last non-empty line of stderr: the runtime's own error message.
    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().chars().take(200).collect())
            .unwrap_or_default()
    }

    /// "exit 1: runc: …" — how it ended, in a few words.
    pub fn summary(&self) -> String {
        let how = match (self.timed_out, self.code) {
            (true, _) => "timed out (killed)".to_string(),
            (false, Some(code)) => format!("exit {code}"),
            (false, None) => "no exit status".to_string(),
        };
        let tail = self.stderr_tail();
        if tail.is_empty() {
            how
        } else {
            format!("{how}: {tail}")
        }
    }
}

enum Event {
    Line(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    WaitFailed(String),
}

/// What the caller may do with the first line the probe prints while
/// the runtime is still running (the `hold` scenario).
pub type OnLine<'a> = &'a mut dyn FnMut(&[u8]) -> bool;

/// How to run one command.
pub struct Options<'a> {
    pub env: &'a [(&'a str, OsString)],
    pub timeout: Duration,
    /// `run -d`: a process that stays behind is the point, not a leftover.
    pub background_ok: bool,
}

/// Run `argv` to completion (or to the deadline). `on_line` sees each
/// stdout line as it arrives; once it returns true it is not called again.
pub fn run(
    argv: &[OsString],
    options: &Options<'_>,
    outer: &Outer,
    mut on_line: Option<OnLine<'_>>,
) -> Result<Finished> {
    let (env, timeout) = (options.env, options.timeout);
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Usage("empty command".into()));
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_COLOR", "1")
        .env_remove("MINIBOX_TRACE")
        .process_group(0);
    for (key, value) in env {
        command.env(key, value);
    }
    let procs: Vec<CString> = outer.procs_files().to_vec();
    // SAFETY: the closure runs in the child between fork and exec, so it
    // only makes async-signal-safe calls (open, write, close) on data
    // prepared before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for file in &procs {
                join_cgroup(file)?;
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| {
        Error::Usage(format!(
            "cannot start {:?}: {e} (is the runtime installed, and the template's first word its program?)",
            program
        ))
    })?;
    let pgid = child.id() as i32;
    let (tx, rx) = mpsc::channel();

    let stdout = child.stdout.take();
    let tx_out = tx.clone();
    let out_thread = std::thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx_out.send(Event::Line(line)).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let stderr = child.stderr.take();
    let tx_err = tx.clone();
    let err_thread = std::thread::spawn(move || {
        let Some(mut stderr) = stderr else { return };
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx_err.send(Event::Stderr(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let tx_wait = tx;
    let wait_thread = std::thread::spawn(move || {
        let event = match child.wait() {
            Ok(status) => Event::Exit(
                status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(-1),
            ),
            Err(e) => Event::WaitFailed(e.to_string()),
        };
        let _ = tx_wait.send(event);
    });

    let deadline = Instant::now() + timeout;
    let mut finished = Finished {
        argv: argv.to_vec(),
        ..Finished::default()
    };
    let mut exited = false;
    let mut line_handled = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(Event::Line(line)) => {
                if !line_handled {
                    if let Some(handler) = on_line.as_mut() {
                        line_handled = handler(&line);
                    }
                }
                finished.stdout.extend_from_slice(&line);
            }
            Ok(Event::Stderr(bytes)) => finished.stderr.extend_from_slice(&bytes),
            Ok(Event::Exit(code)) => {
                finished.code = Some(code);
                exited = true;
                if options.background_ok {
                    continue;
                }
                // Whatever is still in our cgroups once a short grace has
                // passed outlived the runtime (and may hold its pipes
                // open): note it, end it. The grace is for processes
                // already on their way out (a runtime that exits before
                // its init is reaped), waited for on pidfds.
                finished.leftovers = still_running(outer.processes(), LEFTOVER_GRACE)
                    .into_iter()
                    .map(|pid: i32| {
                        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                            .unwrap_or_default();
                        format!("{pid} {}", comm.trim())
                    })
                    .collect();
                if !finished.leftovers.is_empty() {
                    outer.kill_all();
                }
            }
            Ok(Event::WaitFailed(e)) => {
                return Err(Error::Environment(format!("waiting for {program:?}: {e}")));
            }
            // Every sender is gone: both pipes closed and the exit seen.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => break,
        }
    }
    if !exited {
        // The deadline passed: kill the runtime's process group and
        // whatever it left in our cgroups (all of it started by us).
        finished.timed_out = true;
        // SAFETY: kill has no memory effects; -pgid is the process group
        // of the runtime we spawned (process_group(0) made it its leader).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        outer.kill_all();
    }
    // The runtime has exited or been killed: its wait ends now. The
    // reader threads end when the last writer of the pipes is gone; a
    // process that escaped our cgroups may hold them, so they are
    // detached, not joined.
    let _ = wait_thread.join();
    drop(out_thread);
    drop(err_thread);
    Ok(finished)
}

/// How long processes left in our cgroups after the runtime exits may
/// take to end by themselves.
pub const LEFTOVER_GRACE: Duration = Duration::from_secs(2);

/// The processes of `pids` still running after `grace`: each is watched
/// through a pidfd, which becomes readable when the process exits.
pub fn still_running(pids: Vec<i32>, grace: Duration) -> Vec<i32> {
    let mut watched: Vec<(i32, std::os::fd::OwnedFd)> = Vec::new();
    for pid in pids {
        // SAFETY: pidfd_open takes a pid and flags, returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            // SAFETY: the fd was just returned to us and is owned by no one else.
            let fd =
                unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
            watched.push((pid, fd));
        }
    }
    let deadline = Instant::now() + grace;
    while !watched.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut polls: Vec<libc::pollfd> = watched
            .iter()
            .map(|(_, fd)| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(fd),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
        // SAFETY: polls is a valid, writable array of polls.len() pollfds
        // that outlives the call.
        let ready = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, millis) };
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break;
        }
        let mut i = 0;
        watched.retain(|_| {
            let gone = polls[i].revents != 0;
            i += 1;
            !gone
        });
    }
    watched.into_iter().map(|(pid, _)| pid).collect()
}

/// Write "0" (this process) to a cgroup.procs file, with raw syscalls: this
/// runs between fork and exec.
fn join_cgroup(file: &CString) -> std::io::Result<()> {
    // SAFETY: file is a valid NUL-terminated path; open has no other
    // memory effects.
    let fd = unsafe { libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: writing 1 byte from a static buffer to the fd we just opened.
    let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
    let err = std::io::Error::last_os_error();
    // SAFETY: closing the fd we opened above.
    unsafe {
        libc::close(fd);
    }
    if written != 1 {
        return Err(err);
    }
    Ok(())
}
