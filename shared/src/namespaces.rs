//! Creating init in new namespaces, and waiting for it.
//!
//! Why `clone(2)` and not `fork` + `unshare`: a new PID namespace only
//! applies to *children* of the caller (`unshare(CLONE_NEWPID)` leaves the
//! caller where it is). To make the process we are about to exec PID 1, the
//! namespaces must be created together with the process, which is what
//! `clone` with `CLONE_NEW*` flags does.
//!
//! The child then re-executes this very binary (`/proc/self/exe init …`): the
//! `init` half of the story starts as a fresh program, already inside the new
//! namespaces, exactly as the reference tutorial's `/proc/self/exe init`.

use crate::command::to_cstrings;
use crate::error::{Error, Result};
use crate::sync::{self, Channel, Msg};
use crate::trace;
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::ffi::{CString, OsStr, OsString};
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// Where init finds its end of the sync socket.
pub const SYNC_FD: RawFd = 4;

/// What init's stdin is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdin {
    /// The caller's stdin (`-i`, `-t`).
    Inherit,
    /// `/dev/null`, as docker does without `-i`.
    Null,
}

/// How to start init.
pub struct InitSpec<'a> {
    /// `CLONE_NEW*` flags: which namespaces init gets.
    pub namespaces: CloneFlags,
    /// init's arguments after `init` (the sync fd is added here).
    pub args: Vec<OsString>,
    /// Extra fds for init: (fd in run, fd number in init).
    pub pass_fds: Vec<(BorrowedFd<'a>, RawFd)>,
    pub stdin: Stdin,
    /// With `-t` the terminal sends Ctrl-C/Ctrl-\ to the container itself,
    /// so run must not forward (and so double) them.
    pub terminal: bool,
}

/// run's handle on the container's init process.
#[derive(Debug)]
pub struct InitProcess {
    pub pid: Pid,
    channel: Channel,
    reaped: bool,
}

/// Clone init into new namespaces and exec `/proc/self/exe init …` in it.
pub fn spawn_init(spec: InitSpec<'_>) -> Result<InitProcess> {
    let (run_end, init_end) = Channel::pair()?;

    // Everything the child needs is built *before* clone: after clone the
    // child should only make syscalls and exec.
    let exe = CString::new("/proc/self/exe").expect("literal has no NUL");
    let argv0 = std::env::args_os()
        .next()
        .map(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(OsStr::to_os_string)
                .unwrap_or(a)
        })
        .unwrap_or_else(|| "minibox".into());
    let mut args: Vec<OsString> = vec![
        argv0,
        "init".into(),
        "--sync-fd".into(),
        SYNC_FD.to_string().into(),
    ];
    args.extend(spec.args.iter().cloned());
    let argv = to_cstrings(&args)?;
    // init inherits our environment, with our trace mode in it: a run with
    // `--trace off` spares init the work of sending every step.
    let mut env: Vec<OsString> = std::env::vars_os()
        .filter(|(k, _)| k != "MINIBOX_TRACE")
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect();
    env.push(format!("MINIBOX_TRACE={}", trace::mode_name()).into());
    let envp = to_cstrings(&env)?;
    let mut fds: Vec<(RawFd, RawFd)> = vec![(init_end.as_raw_fd(), SYNC_FD)];
    fds.extend(
        spec.pass_fds
            .iter()
            .map(|(fd, target)| (fd.as_raw_fd(), *target)),
    );
    let exec_step = format!("execve(\"/proc/self/exe\", {})", trace::quote_list(&args));

    let flags = spec.namespaces;
    let clone_step = format!("clone({}|SIGCHLD)", trace::flag_names(&flags));
    // SAFETY: the raw clone syscall with a NULL stack behaves like fork(2):
    // the child gets a copy of our (single-threaded) address space. Nothing
    // in minibox starts threads, so no lock can be held by a thread that does
    // not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if ret == 0 {
        // The child: already PID 1 of its new PID namespace.
        child_exec(&exe, &argv, &envp, &fds, spec.stdin, &init_end, &exec_step);
    }
    let pid = trace::step_shows(
        clone_step,
        Errno::result(ret).map(|pid| Pid::from_raw(pid as i32)),
        |pid| Some(format!("host pid {pid}")),
    )?;
    trace::set_init_host_pid(pid.as_raw());
    // Close our copy of init's end now: init's exec can only be seen as EOF
    // if init holds the last copy.
    drop(init_end);
    forward_signals_to(pid, spec.terminal);
    Ok(InitProcess {
        pid,
        channel: run_end,
        reaped: false,
    })
}

/// Between clone and exec: place the fds, then become `/proc/self/exe init`.
fn child_exec(
    exe: &CString,
    argv: &[CString],
    envp: &[CString],
    fds: &[(RawFd, RawFd)],
    stdin: Stdin,
    init_end: &Channel,
    exec_step: &str,
) -> ! {
    sync::adopt_for_child(init_end.as_raw_fd());
    let outcome = (|| -> Result<()> {
        // The container must not outlive run: run is what removes its
        // cgroup (and later its mounts). If run dies, the kernel sends init
        // SIGKILL, which takes the whole PID namespace with it.
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|errno| Error::Sys {
            step: "prctl(PR_SET_PDEATHSIG, SIGKILL)".into(),
            errno,
        })?;
        place_fds(fds)?;
        sync::adopt_for_child(SYNC_FD);
        if stdin == Stdin::Null {
            let null = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDONLY,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|errno| Error::Sys {
                step: "open(\"/dev/null\")".into(),
                errno,
            })?;
            nix::unistd::dup2(null, 0).map_err(|errno| Error::Sys {
                step: "dup2(/dev/null, 0)".into(),
                errno,
            })?;
            let _ = nix::unistd::close(null);
        }
        trace::note(exec_step, None);
        let errno = nix::unistd::execve(exe, argv, envp).unwrap_err();
        trace::failed(exec_step, errno);
        Err(Error::Sys {
            step: exec_step.to_string(),
            errno,
        })
    })();
    if let Err(err) = outcome {
        let _ = sync::report_failure(err.to_string(), err.exit_code());
    }
    // SAFETY: _exit is always safe; it skips Rust's and libc's exit handlers,
    // which belong to the parent's copy of this process.
    unsafe { libc::_exit(crate::error::EXIT_MINIBOX_FAILED as i32) }
}

/// Move each `(fd, target)` so the target number refers to fd, without the
/// close-on-exec flag. Sources are first copied above every target, so a
/// source that happens to sit on another pair's target is not clobbered.
fn place_fds(fds: &[(RawFd, RawFd)]) -> Result<()> {
    let highest = fds.iter().map(|(_, t)| *t).max().unwrap_or(0);
    let mut parked = Vec::with_capacity(fds.len());
    for (fd, target) in fds {
        let copy = nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(highest + 1))
            .map_err(|errno| Error::Sys {
                step: format!("fcntl({fd}, F_DUPFD_CLOEXEC)"),
                errno,
            })?;
        parked.push((copy, *target));
    }
    for (copy, target) in parked {
        // dup2 clears FD_CLOEXEC on the new number: this fd survives exec.
        nix::unistd::dup2(copy, target).map_err(|errno| Error::Sys {
            step: format!("dup2({copy}, {target})"),
            errno,
        })?;
    }
    Ok(())
}

/// How the container ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(Signal),
}

impl Exit {
    /// The shell convention: the code itself, or 128 + the signal number.
    pub fn code(self) -> u8 {
        match self {
            Exit::Code(code) => code as u8,
            Exit::Signal(sig) => 128u8.wrapping_add(sig as i32 as u8),
        }
    }
}

impl InitProcess {
    /// Relay init's trace until it is about to exec, draw the tree, let init
    /// go, and confirm the exec by EOF. A failure init reports is returned
    /// (after init has been reaped) with the exit code init chose.
    pub fn wait_for_exec(&mut self) -> Result<()> {
        let mut failure = None;
        while let Some(msg) = self.channel.recv()? {
            match msg {
                Msg::Event(event) => trace::record(event),
                Msg::ReadyToExec => {
                    trace::flush();
                    self.channel.send(&Msg::Go)?;
                }
                Msg::Failed { message, exit_code } => failure = Some((message, exit_code)),
                Msg::Go => return Err(Error::Protocol("init sent Go".into())),
            }
        }
        if let Some((message, exit_code)) = failure {
            let _ = self.reap();
            trace::flush();
            return Err(Error::Init { message, exit_code });
        }
        trace::flush();
        Ok(())
    }

    /// Tell init to go on (stage 05 uses this once the cgroup is in place).
    pub fn release(&self) -> Result<()> {
        self.channel.send(&Msg::Go)
    }

    /// Wait for the container to end, forwarding SIGINT/SIGTERM/SIGHUP/SIGQUIT.
    pub fn wait(mut self) -> Result<Exit> {
        self.reap()
    }

    fn reap(&mut self) -> Result<Exit> {
        let exit = self.reap_once();
        self.reaped = exit.is_ok();
        exit
    }

    fn reap_once(&self) -> Result<Exit> {
        let step = format!("waitpid({})", self.pid);
        loop {
            // A signal may have been forwarded at any moment, not only while
            // we sat in waitpid: report it before going on.
            self.report_forwarded_signal();
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    self.report_forwarded_signal();
                    trace::note(step, Some(format!("exited with status {code}")));
                    return Ok(Exit::Code(code));
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    self.report_forwarded_signal();
                    trace::note(step, Some(format!("killed by {}", sig.as_str())));
                    return Ok(Exit::Signal(sig));
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(errno) => return trace::step(step, Err(errno)),
            }
        }
    }

    fn report_forwarded_signal(&self) {
        let sig = LAST_FORWARDED.swap(0, Ordering::SeqCst);
        if sig != 0 {
            let name = Signal::try_from(sig).map_or("?", |s| s.as_str());
            trace::note(
                format!("kill({}, {name})", self.pid),
                Some("forwarded".into()),
            );
        }
    }
}

impl Drop for InitProcess {
    /// run bailed out early (a cgroup write failed, say): the container must
    /// not outlive it. SIGKILL to a namespace's PID 1 ends the whole namespace.
    fn drop(&mut self) {
        if !self.reaped {
            let _ = signal::kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

// The signal handler can only touch atomics: it runs between any two
// instructions of the main code.
static INIT_PID: AtomicI32 = AtomicI32::new(0);
static SIGNALS_SEEN: AtomicU32 = AtomicU32::new(0);
static LAST_FORWARDED: AtomicI32 = AtomicI32::new(0);
static HANDLERS_INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    // PID 1 of a namespace ignores signals it installed no handler for, so a
    // polite SIGTERM may do nothing. The second one is not polite.
    let seen = SIGNALS_SEEN.fetch_add(1, Ordering::SeqCst);
    let send = if seen == 0 { sig } else { libc::SIGKILL };
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and has no memory arguments.
        unsafe { libc::kill(pid, send) };
    }
    LAST_FORWARDED.store(send, Ordering::SeqCst);
}

/// Pass the signals a user sends to `run` on to the container, so that
/// `kill <run>` or Ctrl-C ends the container, not just run.
fn forward_signals_to(pid: Pid, terminal: bool) {
    INIT_PID.store(pid.as_raw(), Ordering::SeqCst);
    if HANDLERS_INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    // No SA_RESTART: waitpid must return EINTR so the trace can show the
    // forwarded signal.
    let action = SigAction::new(
        SigHandler::Handler(forward_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    let mut signals = vec![Signal::SIGTERM, Signal::SIGHUP];
    if terminal {
        // The terminal already delivers these to the container's process group.
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        for sig in [Signal::SIGINT, Signal::SIGQUIT] {
            // SAFETY: SIG_IGN runs no code of ours.
            let _ = unsafe { signal::sigaction(sig, &ignore) };
        }
    } else {
        signals.extend([Signal::SIGINT, Signal::SIGQUIT]);
    }
    for sig in signals {
        // SAFETY: forward_signal only uses atomics and kill(2), both
        // async-signal-safe.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
}

/// Set the host name inside the new UTS namespace.
pub fn set_hostname(name: &str) -> Result<()> {
    trace::step(
        format!("sethostname({name:?})"),
        nix::unistd::sethostname(name),
    )
}

/// A random 12-hex-digit container id, also the default host name (as docker's
/// short ids).
pub fn generate_id() -> Result<String> {
    let mut bytes = [0u8; 6];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Error::io("read /dev/urandom", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
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

/// A process `exec` started inside a container.
pub struct ExecChild {
    pid: Pid,
}

/// Fork, and exec `program` in the child. Called after `setns`: the child
/// is the first of our processes inside the container's PID namespace.
pub fn fork_exec(
    program: &std::path::Path,
    argv: &[OsString],
    env: &[String],
    stdin: Stdin,
) -> Result<ExecChild> {
    let program_c = CString::new(program.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Usage("program path contains a NUL byte".into()))?;
    let argv = to_cstrings(argv)?;
    let env: Vec<OsString> = env.iter().map(OsString::from).collect();
    let envp = to_cstrings(&env)?;
    // SAFETY: single-threaded (see `lifecycle::enter`), so the child's copy
    // of the process is consistent.
    match unsafe { nix::unistd::fork() } {
        Err(errno) => trace::step("fork()", Err(errno)),
        Ok(nix::unistd::ForkResult::Child) => {
            if stdin == Stdin::Null {
                if let Ok(null) = nix::fcntl::open(
                    "/dev/null",
                    nix::fcntl::OFlag::O_RDONLY,
                    nix::sys::stat::Mode::empty(),
                ) {
                    let _ = nix::unistd::dup2(null, 0);
                }
            }
            let errno = nix::unistd::execve(&program_c, &argv, &envp).unwrap_err();
            eprintln!(
                "exec {}: {}",
                program.display(),
                crate::error::describe(errno)
            );
            // SAFETY: _exit skips the parent's atexit handlers and buffers.
            unsafe { libc::_exit(crate::error::EXIT_CANNOT_EXECUTE as i32) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            trace::note(
                "fork()",
                Some(format!("pid {child} (in the container's PID namespace)")),
            );
            Ok(ExecChild { pid: child })
        }
    }
}

impl ExecChild {
    pub fn wait(self) -> Result<Exit> {
        loop {
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
                Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(Exit::Signal(sig)),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(errno) => return trace::step(format!("waitpid({})", self.pid), Err(errno)),
            }
        }
    }
}
