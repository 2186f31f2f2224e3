//! Processes: creating init in new namespaces, waiting for it, signals,
//! and getting a process ready to exec into a container.
//!
//! Why `clone(2)` and not `fork` + `unshare`: a new PID namespace only
//! applies to *children* of the caller (`unshare(CLONE_NEWPID)` leaves the
//! caller where it is). To make the process we are about to exec PID 1, the
//! namespaces must be created together with the process, which is what
//! `clone` with `CLONE_NEW*` flags does.
//!
//! The child then re-executes this very binary (`/proc/self/exe init`): the
//! `init` half of the story starts as a fresh program, already inside the new
//! namespaces, exactly as the tutorial's `/proc/self/exe init`. Its argv is
//! just that: everything else reaches it as an [`crate::config::InitConfig`].

use crate::error::{Error, Result};
use crate::sync::{self, Channel, Msg, SYNC_FD};
use crate::{config::InitConfig, trace};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// What init's stdin is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdin {
    /// The caller's stdin (`-i`, `-t`).
    Inherit,
    /// `/dev/null`, as docker does without `-i`.
    Null,
}

/// How to start init: `Spawn::new(…)`, then what each stage adds
/// (`.pass_fd` in 03, `.into_cgroup` in 05, `.in_user_namespace` in 10),
/// then `.start()`.
pub struct Spawn<'a> {
    /// `CLONE_NEW*` flags: which namespaces init gets.
    namespaces: CloneFlags,
    /// Extra fds for init: (fd in run, fd number in init).
    pass_fds: Vec<(BorrowedFd<'a>, RawFd)>,
    stdin: Stdin,
    /// With `-t` the terminal sends Ctrl-C/Ctrl-\ to the container itself,
    /// so run must not forward (and so double) them once it runs.
    terminal: bool,
    cgroup: Option<&'a crate::cgroups::Cgroup>,
    user_namespace: Option<&'a crate::userns::UserNamespace>,
    sealed: Option<&'a crate::security::sealed::SealedBinary>,
}

impl<'a> Spawn<'a> {
    pub fn new(namespaces: CloneFlags, stdin: Stdin, terminal: bool) -> Spawn<'a> {
        Spawn {
            namespaces,
            pass_fds: Vec::new(),
            stdin,
            terminal,
            cgroup: None,
            user_namespace: None,
            sealed: None,
        }
    }

    /// Give init `fd` as fd number `target`.
    pub fn pass_fd(mut self, fd: BorrowedFd<'a>, target: RawFd) -> Spawn<'a> {
        self.pass_fds.push((fd, target));
        self
    }

    pub fn pass_fds(mut self, fds: Vec<(BorrowedFd<'a>, RawFd)>) -> Spawn<'a> {
        self.pass_fds.extend(fds);
        self
    }

    /// Stage 05: on cgroup v2, make init *born* in its cgroup
    /// (`clone3(CLONE_INTO_CGROUP)`, Linux 5.7), so no migration is needed
    /// later; elsewhere run moves it in by writing `cgroup.procs`.
    pub fn into_cgroup(mut self, cgroup: &'a crate::cgroups::Cgroup) -> Spawn<'a> {
        self.cgroup = Some(cgroup);
        self
    }

    /// Stage 10: a new user namespace (`None`: `--userns=host`), made by
    /// runc's three processes (see [`crate::userns::nsexec`]) instead of
    /// one clone.
    pub fn in_user_namespace(
        mut self,
        userns: Option<&'a crate::userns::UserNamespace>,
    ) -> Spawn<'a> {
        self.user_namespace = userns;
        self
    }

    /// Stage 09: exec init from `binary`, a read-only mount of this
    /// binary no one else can reach, instead of `/proc/self/exe`
    /// (CVE-2019-5736, see [`crate::security::sealed`]).
    pub fn from_sealed_binary(
        mut self,
        binary: &'a crate::security::sealed::SealedBinary,
    ) -> Spawn<'a> {
        self.sealed = Some(binary);
        self
    }

    /// Create init and exec `/proc/self/exe init` in it.
    pub fn start(self) -> Result<InitProcess> {
        spawn(self)
    }
}

/// What the child does once it may become init: built before any fork,
/// so that after it the child only makes syscalls and execs.
pub(crate) struct InitExec {
    exe: CString,
    /// Exec this fd (`execveat`) instead of `exe`: a sealed binary.
    exe_fd: Option<RawFd>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// (fd here, fd number in init)
    fds: Vec<(RawFd, RawFd)>,
    stdin: Stdin,
    step: String,
    /// The sealed binary's fd in run, moved to `SEALED_EXE_FD` first thing.
    sealed_source: Option<RawFd>,
}

/// Where init keeps the sealed binary's fd until `execveat`: above every fd
/// it places, so placing them cannot clobber it; close-on-exec, so the
/// container never holds it.
const SEALED_EXE_FD: RawFd = 100;

/// run's handle on the container's init process.
#[derive(Debug)]
pub struct InitProcess {
    pub pid: Pid,
    channel: Channel,
    reaped: bool,
    /// `-t`, stage 07 on: the master of the container's terminal, which
    /// init sends over the sync socket (see [`crate::console`]).
    console: Option<OwnedFd>,
    /// Where the terminal's output goes: the log with `-d` (the fd init
    /// was given as its stdout), else run's stdout.
    console_output: Option<OwnedFd>,
    /// `-i`: the caller's stdin feeds the terminal.
    console_input: bool,
}

/// Clone init into new namespaces and exec `/proc/self/exe init` in it.
fn spawn(spec: Spawn<'_>) -> Result<InitProcess> {
    catch_signals();
    checkpoint()?;
    let (run_end, init_end) = Channel::pair()?;

    // Everything the child needs is built *before* clone: after clone the
    // child should only make syscalls and exec.
    let args: Vec<OsString> = vec![program_name().into(), "init".into()];
    let mut fds: Vec<(RawFd, RawFd)> = vec![(init_end.as_raw_fd(), SYNC_FD)];
    fds.extend(
        spec.pass_fds
            .iter()
            .map(|(fd, target)| (fd.as_raw_fd(), *target)),
    );
    let exe_fd = spec.sealed.map(|binary| binary.raw_fd());
    let step = match exe_fd {
        Some(_) => format!(
            "execveat(fd {SEALED_EXE_FD}, \"\", {}, AT_EMPTY_PATH)",
            trace::quote_list(&args)
        ),
        None => format!("execve(\"/proc/self/exe\", {})", trace::quote_list(&args)),
    };
    let plan = InitExec {
        exe: CString::new("/proc/self/exe").map_err(|_| Error::Protocol("exe path".into()))?,
        exe_fd: exe_fd.map(|_| SEALED_EXE_FD),
        argv: to_cstrings(&args)?,
        // init starts with an empty environment: what it needs is in its
        // config, and nothing of the caller's environment should reach the
        // container by accident.
        envp: Vec::new(),
        fds,
        stdin: spec.stdin,
        step,
        sealed_source: exe_fd,
    };
    TERMINAL.store(spec.terminal, Ordering::SeqCst);

    let unified_cgroup = spec.cgroup.and_then(|c| c.unified_dir());
    // Each branch closes run's copy of init's end as soon as init has its
    // own: init's exec can only be seen as EOF if init holds the last copy.
    let pid = match (spec.user_namespace, unified_cgroup) {
        (Some(userns), _) => {
            crate::userns::nsexec::spawn(spec.namespaces, userns, &plan, &run_end, init_end)?
        }
        (None, Some(dir)) => {
            let pid = clone3_into_cgroup(spec.namespaces, &dir, &plan, &init_end);
            drop(init_end);
            pid?
        }
        (None, None) => {
            let pid = clone_init(spec.namespaces, &plan, &init_end);
            drop(init_end);
            pid?
        }
    };
    INIT_PID.store(pid.as_raw(), Ordering::SeqCst);
    trace::init_started(pid.as_raw());
    // With a terminal of its own, the container's output comes back through
    // run: to where init's stdout would have gone (the log, with -d).
    let console_output = match spec.pass_fds.iter().find(|(_, target)| *target == 1) {
        Some((fd, _)) if spec.terminal => Some(
            fd.try_clone_to_owned()
                .map_err(|e| Error::io("dup the log for the terminal's output", e))?,
        ),
        _ => None,
    };
    let init = InitProcess {
        pid,
        channel: run_end,
        reaped: false,
        console: None,
        console_output,
        console_input: spec.stdin == Stdin::Inherit,
    };
    // A signal that came while we cloned found no pid to kill yet.
    checkpoint()?;
    Ok(init)
}

/// One `clone` with every namespace flag: the child is init.
fn clone_init(flags: CloneFlags, plan: &InitExec, init_end: &OwnedFd) -> Result<Pid> {
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
        child_exec(plan, init_end);
    }
    trace::step_shows(
        clone_step,
        Errno::result(ret).map(|pid| Pid::from_raw(pid as i32)),
        |pid| Some(format!("host pid {pid}")),
    )
}

/// `struct clone_args` of `clone3(2)`, up to the `cgroup` field (Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone3` with `CLONE_INTO_CGROUP`: init is a member of its cgroup from
/// its first instruction, and no `cgroup.procs` write (which on v1 waits
/// for an RCU grace period) is needed. A kernel without it (ENOSYS before
/// 5.3, E2BIG/EINVAL before 5.7) gets the plain clone, and says so.
fn clone3_into_cgroup(
    flags: CloneFlags,
    dir: &std::path::Path,
    plan: &InitExec,
    init_end: &OwnedFd,
) -> Result<Pid> {
    let cgroup = crate::cgroups::open_dir(dir)?;
    let args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    let step = format!(
        "clone3({{{}|CLONE_INTO_CGROUP, cgroup: fd {}, exit_signal: SIGCHLD}})",
        trace::flag_names(&flags),
        cgroup.as_raw_fd()
    );
    // SAFETY: as for clone above (a NULL stack: fork semantics in a
    // single-threaded process); `args` outlives the call and its size is
    // passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        drop(cgroup);
        child_exec(plan, init_end);
    }
    match Errno::result(ret) {
        Err(errno @ (Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL)) => {
            trace::failed(&step, errno);
            trace::note(
                "clone3 with CLONE_INTO_CGROUP unavailable",
                Some("plain clone; run moves init into its cgroup".into()),
            );
            clone_init(flags, plan, init_end)
        }
        result => trace::step_shows(step, result.map(|pid| Pid::from_raw(pid as i32)), |pid| {
            Some(format!("host pid {pid}"))
        }),
    }
}

/// Between clone and exec: place the fds, then become `/proc/self/exe init`.
/// Each step goes to run over the socket, which is how its lines appear
/// under init in the trace.
pub(crate) fn child_exec(plan: &InitExec, init_end: &OwnedFd) -> ! {
    let InitExec {
        exe,
        exe_fd,
        argv,
        envp,
        fds,
        stdin,
        step: exec_step,
        sealed_source,
    } = plan;
    let (fds, stdin, exec_step) = (fds.as_slice(), *stdin, exec_step.as_str());
    trace::forked_child();
    sync::adopt(init_end.as_raw_fd());
    let outcome = (|| -> Result<()> {
        // The container must not outlive run: run is what removes its
        // cgroup (and later its mounts). If run dies, the kernel sends init
        // SIGKILL, which takes the whole PID namespace with it.
        trace::step(
            "prctl(PR_SET_PDEATHSIG, SIGKILL)",
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL),
        )?;
        if let Some(source) = sealed_source {
            trace::step(
                format!("dup3({source}, {SEALED_EXE_FD}, O_CLOEXEC)"),
                nix::unistd::dup3(*source, SEALED_EXE_FD, nix::fcntl::OFlag::O_CLOEXEC).map(drop),
            )?;
        }
        place_fds(fds)?;
        sync::adopt(SYNC_FD);
        if stdin == Stdin::Null {
            null_stdin()?;
        }
        // Nothing but the fds placed above may reach init: the caller's own
        // (a `9</tmp` on run's command line, say) stop at this exec.
        cloexec_all_but(fds)?;
        trace::note(exec_step, None);
        let errno = match exe_fd {
            Some(fd) => crate::security::sealed::execveat(*fd, argv, envp),
            None => match nix::unistd::execve(exe, argv, envp) {
                Err(errno) => errno,
                Ok(never) => match never {},
            },
        };
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
        let copy = trace::step_shows(
            format!("fcntl({fd}, F_DUPFD_CLOEXEC, {})", highest + 1),
            nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(highest + 1)),
            |copy| Some(format!("fd {copy}")),
        )?;
        parked.push((copy, *target));
    }
    for (copy, target) in parked {
        // dup2 clears FD_CLOEXEC on the new number: this fd survives exec.
        trace::step(
            format!("dup2({copy}, {target})"),
            nix::unistd::dup2(copy, target).map(drop),
        )?;
    }
    Ok(())
}

/// Mark every fd above stderr close-on-exec except the placed targets.
fn cloexec_all_but(fds: &[(RawFd, RawFd)]) -> Result<()> {
    let targets: Vec<RawFd> = fds.iter().map(|(_, t)| *t).collect();
    let highest = targets.iter().copied().max().unwrap_or(2);
    for fd in 3..highest {
        if !targets.contains(&fd) {
            // EBADF (nothing open there) is the usual answer, and fine.
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }
    }
    mark_cloexec_from(highest + 1)
}

/// `/dev/null` as stdin (docker's behaviour without `-i`).
fn null_stdin() -> Result<()> {
    let null = trace::step_shows(
        "open(\"/dev/null\", O_RDONLY)",
        nix::fcntl::open(
            "/dev/null",
            nix::fcntl::OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
        ),
        |fd| Some(format!("fd {fd}")),
    )?;
    trace::step(
        format!("dup2({null}, 0)"),
        nix::unistd::dup2(null, 0).map(drop),
    )?;
    let _ = nix::unistd::close(null);
    Ok(())
}

/// The name this binary was started as (`07-full`), for init's argv[0].
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "minibox".into())
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
    /// Stages 01–02: send init its config over the sync socket.
    pub fn send_config(&self, config: &InitConfig) -> Result<()> {
        self.channel.send_config(config)
    }

    /// Relay init's trace until it is about to exec, draw the tree, let init
    /// go, and confirm the exec by EOF. A failure init reports is returned
    /// (after init has been reaped) with the exit code init chose.
    pub fn wait_for_exec(&mut self) -> Result<()> {
        let mut failure = None;
        loop {
            let (msg, passed) = self.channel.recv_with_fd()?;
            let Some(msg) = msg else { break };
            match msg {
                Msg::Event(event) => trace::record(event),
                Msg::Console => {
                    let master = passed.ok_or_else(|| {
                        Error::Protocol("init sent Console without a terminal".into())
                    })?;
                    trace::note(
                        format!("recvmsg(fd {}) Console", self.channel.as_raw_fd()),
                        Some(format!("terminal master fd {}", master.as_raw_fd())),
                    );
                    // The container's terminal turns Ctrl-C into SIGINT for
                    // its own foreground job: a SIGINT that reaches run
                    // came from elsewhere, and is forwarded like any other.
                    TERMINAL.store(false, Ordering::SeqCst);
                    crate::console::set_initial_window_size(master.as_fd(), self.console_input);
                    self.console = Some(master);
                }
                Msg::Step(event) => {
                    trace::record_and_pause(event);
                    // If init died meanwhile, the EOF and waitpid below
                    // tell how; a failed Resume has nothing to add.
                    let _ = self.channel.send(&Msg::Resume);
                }
                Msg::ReadyToExec => {
                    trace::flush();
                    // The last moment a Ctrl-C means "do not start". From
                    // the go on, the command may be running: signals are
                    // passed on to it.
                    checkpoint()?;
                    STARTED.store(true, Ordering::SeqCst);
                    self.channel.send(&Msg::Go)?;
                }
                Msg::Failed { message, exit_code } => failure = Some((message, exit_code)),
                other => {
                    return Err(Error::Protocol(format!(
                        "init sent {other:?} while it set up"
                    )))
                }
            }
        }
        // EOF: init exec'd the command, or died. A signal that killed it
        // while it was setting up shows here.
        checkpoint()?;
        if let Some((message, exit_code)) = failure {
            let _ = self.reap();
            trace::flush();
            return Err(Error::Init { message, exit_code });
        }
        // The command runs: `--trace step` stops here. A pause from now on
        // would only hold up the container's terminal (run relays it).
        trace::finish();
        trace::flush();
        Ok(())
    }

    /// Tell init to go on (stage 05 uses this once the cgroup is in place).
    pub fn release(&self) -> Result<()> {
        checkpoint()?;
        self.channel.send(&Msg::Go)
    }

    /// Wait for the container to end, forwarding SIGINT/SIGTERM/SIGHUP/SIGQUIT
    /// (and, with `-t`, relaying its terminal until then).
    pub fn wait(mut self) -> Result<Exit> {
        if let Some(master) = self.console.take() {
            let output = self.console_output.take();
            let relay = crate::console::Relay {
                master,
                input: self.console_input.then_some(0),
                output: output.as_ref().map_or(1, |fd| fd.as_raw_fd()),
            };
            let pid = self.pid;
            let done = PidFd::of_child(pid)?;
            relay.run(done.as_fd(), || report_forwarded_signal(pid))?;
        }
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
            report_forwarded_signal(self.pid);
            match waitpid(self.pid, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    report_forwarded_signal(self.pid);
                    trace::note(step, Some(format!("exited with status {code}")));
                    return Ok(Exit::Code(code));
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    report_forwarded_signal(self.pid);
                    trace::note(step, Some(format!("killed by {}", sig.as_str())));
                    return Ok(Exit::Signal(sig));
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(errno) => return trace::step(step, Err(errno)),
            }
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

// ---------------------------------------------------------------- signals
//
// Before the container starts, SIGINT/SIGTERM/SIGHUP/SIGQUIT to run mean
// "do not start": the handler SIGKILLs init (if there is one yet), and run
// notices at its next checkpoint, unwinds — every cgroup, layer and record
// it made has a `Drop` that removes it — and exits 128 + the signal. Once
// the container runs, the same signals are forwarded to it: the first as
// sent, a second as SIGKILL (PID 1 of a namespace ignores signals it has no
// handler for, so a polite SIGTERM may do nothing).
//
// The handler may only touch atomics: it runs between any two instructions.

static INIT_PID: AtomicI32 = AtomicI32::new(0);
static STARTED: AtomicBool = AtomicBool::new(false);
static TERMINAL: AtomicBool = AtomicBool::new(false);
static INTERRUPTED_BY: AtomicI32 = AtomicI32::new(0);
static SIGNALS_SEEN: AtomicU32 = AtomicU32::new(0);
static LAST_FORWARDED: AtomicI32 = AtomicI32::new(0);
static HANDLERS_INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if !STARTED.load(Ordering::SeqCst) {
        let _ = INTERRUPTED_BY.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe and has no memory arguments.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        return;
    }
    if TERMINAL.load(Ordering::SeqCst) && (sig == libc::SIGINT || sig == libc::SIGQUIT) {
        // The terminal delivered it to the container's process group itself.
        return;
    }
    let seen = SIGNALS_SEEN.fetch_add(1, Ordering::SeqCst);
    let send = if seen == 0 { sig } else { libc::SIGKILL };
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and has no memory arguments.
        unsafe { libc::kill(pid, send) };
    }
    LAST_FORWARDED.store(send, Ordering::SeqCst);
}

/// From here on, SIGINT/SIGTERM/SIGHUP/SIGQUIT are run's to handle: before
/// the container starts they make run clean up and exit 128 + N; after,
/// they are forwarded to the container. Stages that create host state
/// before cloning (cgroups, layers, records) call this first.
pub fn catch_signals() {
    if HANDLERS_INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    // No SA_RESTART: blocking calls return EINTR, so waitpid can report a
    // forwarded signal and run notices an interrupt promptly.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: on_signal only uses atomics and kill(2), both
        // async-signal-safe.
        let _ = unsafe { signal::sigaction(sig, &action) };
    }
}

/// Fails with [`Error::Interrupted`] if run was asked to stop before its
/// container started. Library functions that create host state call it
/// first; blocking waits call it when they return.
pub fn checkpoint() -> Result<()> {
    match INTERRUPTED_BY.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(Error::Interrupted(
            Signal::try_from(sig).unwrap_or(Signal::SIGTERM),
        )),
    }
}

/// Forget the pid (`run -d`'s parent after fork: the monitor owns init).
pub fn forget_init() {
    INIT_PID.store(0, Ordering::SeqCst);
}

fn report_forwarded_signal(pid: Pid) {
    let sig = LAST_FORWARDED.swap(0, Ordering::SeqCst);
    if sig != 0 {
        let name = Signal::try_from(sig).map_or("?", |s| s.as_str());
        trace::note(format!("kill({pid}, {name})"), Some("forwarded".into()));
    }
}

// ---------------------------------------------------------------- exec

/// The last steps before any exec into a container (init's final one, and
/// `exec`'s): nothing of ours may reach the container's process.
///
/// * Every fd above stderr becomes close-on-exec (`close_range`, Linux
///   5.11+): a leaked host fd is a way out (runc's CVE-2024-21626 was a
///   leaked directory fd).
/// * Signal dispositions go back to default and the mask is emptied: Rust
///   ignores SIGPIPE at start-up, and an ignored signal stays ignored
///   across exec (`yes | head` would misbehave); a caller started under
///   `nohup` ignores SIGHUP.
/// * The working directory must be inside the container's root: the other
///   half of the CVE-2024-21626 fix. `getcwd` fails (or answers
///   "(unreachable)") for a directory outside our root.
pub fn prepare_exec() -> Result<()> {
    mark_cloexec_from(3)?;
    reset_signals()?;
    check_cwd()
}

fn mark_cloexec_from(first: RawFd) -> Result<()> {
    // SAFETY: close_range only changes fd flags; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    trace::step(
        format!("close_range({first}, ~0, CLOSE_RANGE_CLOEXEC)"),
        Errno::result(ret).map(drop),
    )
}

/// Really close every fd from `first` up (not only at exec): `exec` does
/// this before it changes directory, so no inherited fd can be named as
/// `-w /proc/self/fd/N`.
pub fn close_fds_from(first: RawFd) -> Result<()> {
    // SAFETY: close_range closes fds; no memory is passed, and nothing in
    // this process uses an fd above `first` afterwards.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first as u32, u32::MAX, 0u32) };
    trace::step(
        format!("close_range({first}, ~0, 0)"),
        Errno::result(ret).map(drop),
    )
}

fn reset_signals() -> Result<()> {
    // Every signal up to SIGRTMAX, real-time ones included: glibc's own
    // sigaction() refuses 32 and 33 (it keeps them for threads), but an
    // ignored 32 would still reach the container, so the raw syscall.
    let default = libc::sigaction {
        sa_sigaction: libc::SIG_DFL,
        // SAFETY: an all-zero sigset_t is a valid, empty signal set.
        sa_mask: unsafe { std::mem::zeroed() },
        sa_flags: 0,
        sa_restorer: None,
    };
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL installs no code of ours; the struct outlives the
        // call and its size (the kernel's 8-byte sigset) is passed.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const libc::sigaction,
                std::ptr::null_mut::<libc::sigaction>(),
                8usize,
            )
        };
    }
    trace::step(
        "sigprocmask(SIG_SETMASK, {}) and every handler to SIG_DFL",
        signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None),
    )
}

fn check_cwd() -> Result<()> {
    let step = "getcwd()";
    match nix::unistd::getcwd() {
        Ok(dir) if dir.as_os_str().as_bytes().starts_with(b"/") => {
            trace::note(step, Some(dir.display().to_string()));
            Ok(())
        }
        Ok(dir) => {
            trace::failed(step, Errno::ENOENT);
            Err(Error::Usage(format!(
                "the working directory {} is outside the container",
                dir.display()
            )))
        }
        Err(errno) => {
            trace::failed(step, errno);
            Err(Error::Usage(
                "the working directory is outside the container".into(),
            ))
        }
    }
}

/// A process `exec` started inside a container.
pub struct ExecChild {
    pid: Pid,
}

/// Fork; in the child run `setup` (it is the first of our processes inside
/// the container's PID namespace, since setns into a PID namespace moves
/// only future children), then exec `program`. The child reports its own
/// failure on stderr and exits 126/127.
pub fn fork_exec(
    program: &OsStr,
    argv: &[OsString],
    env: &[String],
    stdin: Stdin,
    setup: impl FnOnce() -> Result<()>,
) -> Result<ExecChild> {
    let program_c = CString::new(program.as_bytes())
        .map_err(|_| Error::Usage("program path contains a NUL byte".into()))?;
    let argv = to_cstrings(argv)?;
    let env: Vec<OsString> = env.iter().map(OsString::from).collect();
    let envp = to_cstrings(&env)?;
    // SAFETY: single-threaded (see `container::exec`), so the child's copy
    // of the process is consistent.
    match unsafe { nix::unistd::fork() } {
        Err(errno) => trace::step("fork()", Err(errno)),
        Ok(nix::unistd::ForkResult::Child) => {
            let outcome = (|| -> Result<()> {
                if stdin == Stdin::Null {
                    null_stdin()?;
                }
                setup()?;
                prepare_exec()?;
                trace::flush();
                let errno = match nix::unistd::execve(&program_c, &argv, &envp) {
                    Err(errno) => errno,
                    Ok(never) => match never {},
                };
                Err(match errno {
                    Errno::ENOENT => Error::CommandNotFound(program.to_string_lossy().into()),
                    Errno::EACCES | Errno::ENOEXEC => {
                        Error::CannotExecute(program.to_string_lossy().into())
                    }
                    _ => Error::Sys {
                        step: format!("execve({})", trace::quote(program)),
                        errno,
                    },
                })
            })();
            let code = match outcome {
                Err(err) => {
                    trace::flush();
                    eprintln!("{}: {err}", program_name());
                    err.exit_code()
                }
                Ok(()) => crate::error::EXIT_MINIBOX_FAILED,
            };
            // SAFETY: _exit skips the parent's atexit handlers and buffers.
            unsafe { libc::_exit(code as i32) }
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
    /// `exec -t`: relay between the caller's terminal and the child's until
    /// the child ends, then reap it.
    pub fn wait_relaying(self, master: OwnedFd, input: bool) -> Result<Exit> {
        let done = PidFd::of_child(self.pid)?;
        crate::console::Relay {
            master,
            input: input.then_some(0),
            output: 1,
        }
        .run(done.as_fd(), || {})?;
        self.wait()
    }

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

/// argv/envp for execve: C strings, which is why no argument can hold a NUL.
pub fn to_cstrings(items: &[OsString]) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| {
                Error::Usage(format!(
                    "argument {:?} contains a NUL byte",
                    s.to_string_lossy()
                ))
            })
        })
        .collect()
}

// ---------------------------------------------------------------- argv

/// Overwrite `secret` with `*` wherever it appears in this process's own
/// argv, which every user on the host can read through
/// `/proc/<pid>/cmdline`. The kernel shows the bytes between `arg_start`
/// and `arg_end` (fields 48 and 49 of `/proc/self/stat`): our own memory,
/// still holding the strings we were started with. Call it after parsing
/// (clap and `std::env::args` have copied what they need) and before any
/// fork, so the monitor of `-d` shares the scrubbed copy.
pub fn hide_in_argv(secret: &[u8]) -> Result<()> {
    if secret.is_empty() {
        return Ok(());
    }
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| Error::io("read /proc/self/stat", e))?;
    let fields: Vec<&str> = stat
        .get(stat.rfind(')').unwrap_or(0) + 2..)
        .unwrap_or_default()
        .split(' ')
        .collect();
    // After the command name, field 3 is at index 0: field N at N - 3.
    let number = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<usize>().ok());
    let (Some(start), Some(end)) = (number(48), number(49)) else {
        return Err(Error::Protocol(
            "no arg_start/arg_end in /proc/self/stat".into(),
        ));
    };
    if end <= start {
        return Ok(());
    }
    // SAFETY: [arg_start, arg_end) is this process's own argv area, mapped
    // and writable (it lies on our initial stack), and nothing else refers
    // to it any more: std and clap hold copies of the arguments.
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    let mut i = 0;
    while i + secret.len() <= area.len() {
        if &area[i..i + secret.len()] == secret {
            area[i..i + secret.len()].fill(b'*');
            i += secret.len();
        } else {
            i += 1;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- identity

/// A process as it can be recognised later: a pid alone is reused by the
/// kernel, and after a reboot even pid + start time can match a stranger
/// (start times count from boot). pid + start time + boot id cannot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessStamp {
    pub pid: i32,
    /// Field 22 of `/proc/PID/stat`: clock ticks since boot.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
}

impl ProcessStamp {
    /// Stamp a live process; `None` if it is gone (or a zombie).
    pub fn of(pid: i32) -> Option<ProcessStamp> {
        Some(ProcessStamp {
            pid,
            start_ticks: start_ticks(pid)?,
            boot_id: boot_id()?,
        })
    }

    /// Is the stamped process still running (not exited, not a zombie)?
    pub fn is_alive(&self) -> bool {
        boot_id().as_deref() == Some(self.boot_id.as_str())
            && start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// This boot's id: a random UUID the kernel picks at every boot.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks
/// since boot. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted after its closing parenthesis. A zombie has
/// exited, whoever has yet to reap it: `None`.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.get(stat.rfind(')')? + 2..)?;
    // after_name starts at field 3, the state; field 22 is 19 further.
    let mut fields = after_name.split(' ');
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

// ---------------------------------------------------------------- pidfd

/// A pidfd: a handle on one process that cannot be redirected to another
/// process by PID reuse.
pub struct PidFd(OwnedFd);

/// `pidfd_open(2)` (Linux 5.3), untraced: each caller says what it means.
fn pidfd_open(pid: i32) -> nix::Result<PidFd> {
    // SAFETY: pidfd_open takes a pid and flags, no memory.
    let fd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just gave us this fd, and nothing else owns it.
    Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl PidFd {
    /// Open a pidfd for the stamped process, and only then check the stamp:
    /// if it still matches, the pidfd refers to that process.
    pub fn open(stamp: &ProcessStamp) -> Result<Option<PidFd>> {
        let pid = stamp.pid;
        let Ok(pidfd) = pidfd_open(pid) else {
            return Ok(None); // ESRCH: gone
        };
        trace::note(
            format!("pidfd_open({pid})"),
            Some(format!("fd {}", pidfd.0.as_raw_fd())),
        );
        if !stamp.is_alive() {
            return Ok(None); // a different process now has that pid
        }
        Ok(Some(pidfd))
    }

    /// A pidfd for our own child: until we reap it, its pid cannot be
    /// reused, so no stamp is needed. Readable once the child has ended.
    pub fn of_child(pid: Pid) -> Result<PidFd> {
        trace::step_shows(
            format!("pidfd_open({pid}, 0)"),
            pidfd_open(pid.as_raw()),
            |fd| Some(format!("fd {}", fd.0.as_raw_fd())),
        )
    }

    pub fn signal(&self, signal: Signal) -> Result<()> {
        // SAFETY: pidfd_send_signal with a NULL siginfo, as kill(2).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as i32,
                0usize,
                0u32,
            )
        };
        trace::step(
            format!(
                "pidfd_send_signal(fd {}, {})",
                self.0.as_raw_fd(),
                signal.as_str()
            ),
            Errno::result(ret).map(drop),
        )
    }

    /// Wait until the process exits, at most `timeout` (None: forever).
    /// True if it exited.
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> bool {
        let timeout = timeout.map_or(nix::poll::PollTimeout::NONE, |t| {
            nix::poll::PollTimeout::try_from(t).unwrap_or(nix::poll::PollTimeout::MAX)
        });
        let mut fds = [nix::poll::PollFd::new(
            self.0.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        loop {
            match nix::poll::poll(&mut fds, timeout) {
                Err(Errno::EINTR) => continue,
                Ok(n) => return n > 0,
                Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_matches_its_stamp_and_a_changed_boot_does_not() {
        let me = std::process::id() as i32;
        let stamp = ProcessStamp::of(me).expect("we are alive");
        assert!(stamp.is_alive());
        let after_reboot = ProcessStamp {
            boot_id: "00000000-0000-0000-0000-000000000000".into(),
            ..stamp.clone()
        };
        assert!(!after_reboot.is_alive());
        let reused_pid = ProcessStamp {
            start_ticks: stamp.start_ticks + 1,
            ..stamp
        };
        assert!(!reused_pid.is_alive());
    }
}
