//! runc's three processes, in Rust.
//!
//! ```text
//! run (host)          child                         grandchild = init
//! ──────────          ─────                         ─────────────────
//! fork ──────────────▶ unshare(CLONE_NEWUSER)
//!                     "maps, please" ─────▶
//! write gid/uid maps
//! (or newgidmap/newuidmap)
//! idmapped mount of the image
//!            ◀────── "written" [+ the mount's fd]
//!                     setresgid/setresuid(0): root in the namespace
//!                     unshare(UTS|IPC|NET|NS|PID|…): owned by the new
//!                       user namespace, so root inside may use them
//!                     move_mount: the image at lower/
//!                     fork ────────────────────────▶ PID 1 of the new PID
//!                     "grandchild is host pid N"     namespace; waits
//!                     exit
//! waitpid(child); N is ours now (we are a subreaper)
//! "go" ──────────────────────────────────────────▶ PDEATHSIG, place fds,
//!                                                  execve(/proc/self/exe init)
//! ```
//!
//! Why not one `clone(CLONE_NEWUSER|CLONE_NEWPID|…)`? It works (it is what
//! stages 01–09 do without the user flag), but then nobody is left
//! *outside* the namespace between the clone and the first use of the
//! maps except run, and run must write them while the child waits — which
//! is exactly the child's "maps, please" handshake. runc needs the middle
//! process for more: Go's runtime is multithreaded, and `unshare` of a user
//! namespace (like `setns` into a mount namespace) refuses a multithreaded
//! process, so runc's C constructor does it before Go starts; joining
//! existing namespaces must happen in a set order (user first); and a PID
//! namespace applies only to children, hence the grandchild. minibox has no
//! threads, so the child can be plain Rust — but it keeps runc's shape, so
//! the trace shows who writes which map.
//!
//! The grandchild is born to the child, which exits at once: run declares
//! itself a *child subreaper* first, so the orphan is re-parented to run
//! (not to host PID 1) and run can `waitpid` it like any init.

use super::{layer, maps, UserNamespace};
use crate::error::{Error, Result};
use crate::process::{child_exec, InitExec};
use crate::sync::{self, Channel, Msg};
use crate::trace;

use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};
use std::os::fd::{AsRawFd, OwnedFd};

/// Start init in a new user namespace (with `maps`) and the namespaces in
/// `flags`; returns init's host pid once run is its parent.
pub(crate) fn spawn(
    flags: CloneFlags,
    userns: &UserNamespace,
    plan: &InitExec,
    run_end: &Channel,
    init_end: OwnedFd,
) -> Result<Pid> {
    trace::step(
        "prctl(PR_SET_CHILD_SUBREAPER, 1)",
        nix::sys::prctl::set_child_subreaper(true),
    )?;
    let others = flags.difference(CloneFlags::CLONE_NEWUSER);
    // SAFETY: run is single-threaded, so the child's copy of the process
    // is consistent; the child only makes syscalls, forks and exits.
    let child = match unsafe { nix::unistd::fork() } {
        Err(errno) => return trace::step("fork()", Err(errno)),
        Ok(ForkResult::Child) => child(others, userns, plan, &init_end),
        Ok(ForkResult::Parent { child }) => child,
    };
    // The child (and after it the grandchild) holds the other end now: with
    // ours closed, the child dying unheard is EOF here, not a hang.
    drop(init_end);
    trace::note("fork()", Some(format!("child pid {child}")));
    let mut failure = None;
    let grandchild = loop {
        match run_end.recv()? {
            Some(Msg::Event(event)) => trace::record(event),
            Some(Msg::Step(event)) => {
                trace::record_and_pause(event);
                // A child that died meanwhile is reported by the EOF below.
                let _ = run_end.send(&Msg::Resume);
            }
            Some(Msg::UsernsReady) => {
                maps::write(child.as_raw(), &userns.maps)?;
                // The maps exist now, so an idmapped mount can use them.
                let shifted = match userns.layer() {
                    Some(l) if l.how == layer::Lower::Shifted => {
                        l.shift(child.as_raw(), &userns.maps)?
                    }
                    _ => None,
                };
                match shifted {
                    Some(mount) => run_end.send_with_fd(
                        &Msg::MapsWritten {
                            idmapped_lower: true,
                        },
                        std::os::fd::AsFd::as_fd(&mount),
                    )?,
                    None => run_end.send(&Msg::MapsWritten {
                        idmapped_lower: false,
                    })?,
                }
            }
            Some(Msg::Grandchild { host_pid }) => break Some(Pid::from_raw(host_pid)),
            Some(Msg::Failed { message, exit_code }) => {
                failure = Some((message, exit_code));
                break None;
            }
            Some(other) => {
                return Err(Error::Protocol(format!(
                    "the child sent {other:?} while making the user namespace"
                )))
            }
            None => break None,
        }
    };
    let step = format!("waitpid({child})");
    match waitpid(child, None) {
        Ok(WaitStatus::Exited(_, code)) => trace::note(step, Some(format!("child exited {code}"))),
        Ok(status) => trace::note(step, Some(format!("{status:?}"))),
        Err(errno) => trace::failed(step, errno),
    }
    match (grandchild, failure) {
        (Some(pid), _) => {
            // The child is gone, so the grandchild is ours: tell it.
            run_end.send(&Msg::Go)?;
            Ok(pid)
        }
        (None, Some((message, exit_code))) => Err(Error::Init { message, exit_code }),
        (None, None) => Err(Error::Protocol("the child died before it made init".into())),
    }
}

/// The middle process: it never returns.
fn child(others: CloneFlags, userns: &UserNamespace, plan: &InitExec, init_end: &OwnedFd) -> ! {
    trace::forked_child();
    sync::adopt(init_end.as_raw_fd());
    trace::set_actor("child");
    let outcome = (|| -> Result<i32> {
        trace::step(
            "prctl(PR_SET_PDEATHSIG, SIGKILL)",
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL),
        )?;
        // A working directory moves with unshare(CLONE_NEWNS) to the new
        // namespace's copy of the mount, unlike an fd: standing in the
        // container's directory, the child can attach the image there.
        if let Some(prepared) = userns.layer() {
            trace::step(
                format!("fchdir({})", prepared.dir().as_raw_fd()),
                nix::unistd::fchdir(prepared.dir().as_raw_fd()),
            )?;
        }
        trace::step(
            "unshare(CLONE_NEWUSER)",
            nix::sched::unshare(CloneFlags::CLONE_NEWUSER),
        )?;
        sync::send_to_run(&Msg::UsernsReady)?;
        let lower = match sync::recv_from_run_with_fd()? {
            (Some(Msg::MapsWritten { idmapped_lower }), mount) => {
                trace::note(
                    "recv: maps written",
                    mount
                        .as_ref()
                        .map(|fd| format!("an idmapped mount as fd {}", fd.as_raw_fd())),
                );
                if idmapped_lower != mount.is_some() {
                    return Err(Error::Protocol("the idmapped mount got lost".into()));
                }
                mount
            }
            (other, _) => return Err(Error::Protocol(format!("expected the maps, got {other:?}"))),
        };
        // Root in the new namespace: id 0 is mapped now.
        trace::step(
            "setresgid(0, 0, 0)",
            nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)),
        )?;
        trace::step(
            "setresuid(0, 0, 0)",
            nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)),
        )?;
        trace::step(
            format!("unshare({})", trace::flag_names(&others)),
            nix::sched::unshare(others),
        )?;
        // In the container's mount namespace now: the image goes in as
        // container root sees it. The mount is gone with the namespace.
        if let Some(mount) = &lower {
            layer::attach(mount)?;
        }
        drop(lower);
        // SAFETY: single-threaded; the grandchild only waits and execs.
        match unsafe { nix::unistd::fork() } {
            Err(errno) => trace::step("fork()", Err(errno)),
            Ok(ForkResult::Child) => grandchild(plan, init_end),
            Ok(ForkResult::Parent { child }) => {
                trace::note("fork()", Some(format!("grandchild host pid {child}")));
                sync::send_to_run(&Msg::Grandchild {
                    host_pid: child.as_raw(),
                })?;
                Ok(0)
            }
        }
    })();
    let code = match outcome {
        Ok(code) => code,
        Err(err) => {
            let _ = sync::report_failure(err.to_string(), err.exit_code());
            err.exit_code().into()
        }
    };
    // SAFETY: _exit skips the exit handlers, which belong to run's copy.
    unsafe { libc::_exit(code) }
}

/// PID 1 of the new PID namespace: wait until run is its parent, then
/// become init as stage 09 did.
fn grandchild(plan: &InitExec, init_end: &OwnedFd) -> ! {
    trace::set_actor("init");
    match sync::recv_from_run() {
        Ok(Some(Msg::Go)) => child_exec(plan, init_end),
        _ => {
            // run is gone (EOF) or confused: nothing to become init for.
            // SAFETY: as above.
            unsafe { libc::_exit(crate::error::EXIT_MINIBOX_FAILED as i32) }
        }
    }
}
