//! `exec`: run another process in a running container.
//!
//! Join the container's cgroup and namespaces, then fork: setns into a PID
//! namespace moves only our future children, so the child is the first of
//! our processes really inside. Before it execs, the child drops everything
//! of ours (fds, signal dispositions), changes to its working directory and
//! checks that directory is inside the container (CVE-2024-21626), and
//! takes the user it is asked to run as (`-u`, names looked up in the
//! container's own `/etc/passwd`).
//!
//! A hardened container (stage 09) gets the same privileges for every
//! process `exec` starts as for its command: `exec` first becomes its own
//! binary again from a read-only mount ([`crate::security::sealed`]), is
//! non-dumpable while it is inside, and its child drops capabilities, sets
//! `no_new_privs` and loads the container's seccomp filter before exec.
//!
//! `-t` gives the process a terminal of its own from the container's devpts
//! (opened after `setns` into its mount namespace), as `run -t` does for
//! init: the child makes it its controlling terminal, and `exec` relays
//! between it and the caller's terminal (see [`crate::console`]).

use super::state::{self, Condition};
use crate::cgroups::{Cgroup, Hierarchy};
use crate::error::{Error, Result};
use crate::process::{self, Exit, Stdin};
use crate::security::{self, sealed, users, Hardening};
use crate::{command, console, namespaces, trace};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;

/// What `exec` was asked.
pub struct ExecRequest {
    pub container: String,
    pub command: Vec<OsString>,
    pub stdin: Stdin,
    /// `-t`: a terminal of the container's own.
    pub terminal: bool,
    /// `-e`: added to the container's own environment (docker's rule).
    pub env: Vec<String>,
    /// `-w`: the working directory inside the container [default: /].
    pub workdir: Option<PathBuf>,
    /// `-u USER[:GROUP]` [default: the container's own `-u`].
    pub user: Option<users::UserSpec>,
}

pub fn exec(request: ExecRequest) -> Result<Exit> {
    let container = state::find(&request.container)?;
    match container.condition() {
        Condition::Running => {}
        Condition::Starting => return Err(Error::StillStarting(container.name)),
        _ => return Err(Error::NotRunning(container.name)),
    }
    // docker refuses too: a frozen container could not even start the process.
    if container.paused {
        return Err(Error::Paused(container.name));
    }
    let init = container
        .init
        .clone()
        .ok_or_else(|| Error::NotRunning(container.name.clone()))?;
    let hardening = Hardening::saved_for(&container.id)?;
    if hardening.is_some() {
        // Our child will be this binary inside the container until it
        // execs: it must be the read-only copy, and not open to ptrace.
        sealed::reexec_sealed()?;
        security::make_non_dumpable()?;
    }
    // Open (and so pin) its namespaces first, then check the pid still
    // names our init: a pid reused between the two would be caught here.
    let handles = namespaces::open(init.pid)?;
    if !init.is_alive() {
        return Err(Error::NotRunning(container.name));
    }
    let cgroup = Cgroup::existing(
        Hierarchy::detect()?,
        &container.cgroup_parent,
        &container.id,
    );
    // A rootless container (stage 10) may have no cgroup at all.
    let rootless_without_cgroup =
        !nix::unistd::geteuid().is_root() && !cgroup.dirs().iter().any(|dir| dir.exists());
    if rootless_without_cgroup {
        trace::note(
            "no cgroup to join",
            Some("rootless: the container has none".into()),
        );
    } else {
        cgroup.add_process(nix::unistd::Pid::this())?;
    }
    handles.join()?;
    let env = command::merge_env(container.env.clone(), &request.env);
    let program = command::lookup(&request.command[0], &env)?;
    trace::flush();
    let workdir = request.workdir;
    let user = request
        .user
        .or_else(|| hardening.as_ref().and_then(|h| h.user.clone()));
    // We are in the container's mount namespace: this is its /dev/ptmx.
    let pty = request.terminal.then(console::open_pty).transpose()?;
    if let Some(pty) = &pty {
        console::set_initial_window_size(pty.master.as_fd(), request.stdin == Stdin::Inherit);
    }
    let slave = pty.as_ref().map(|pty| pty.slave.as_raw_fd());
    let child = process::fork_exec(
        program.as_os_str(),
        &request.command,
        &env,
        request.stdin,
        move || {
            if let Some(slave) = slave {
                // SAFETY: the slave is open in this (forked) process until
                // close_fds_from below; 0, 1 and 2 keep the terminal.
                console::become_session_leader(unsafe { BorrowedFd::borrow_raw(slave) })?;
            }
            // Really close what we inherited, before changing directory: no
            // fd can then be named as `-w /proc/self/fd/N`.
            process::close_fds_from(3)?;
            if let Some(dir) = &workdir {
                trace::step(
                    format!("chdir({})", trace::quote(dir)),
                    nix::unistd::chdir(dir),
                )?;
            }
            // setns into the mount namespace made the container's root ours:
            // these are the image's /etc/passwd and /etc/group.
            let user = user.as_ref().map(users::resolve_in_root).transpose()?;
            match hardening {
                Some(hardening) => hardening.drop_privileges(user.as_ref()),
                None => user.as_ref().map_or(Ok(()), users::become_user),
            }
        },
    )?;
    match pty {
        Some(pty) => {
            // Only the child may hold the slave: the terminal ends with it.
            drop(pty.slave);
            child.wait_relaying(pty.master, request.stdin == Stdin::Inherit)
        }
        None => child.wait(),
    }
}
