//! `exec`: run another process in a running container.
//!
//! Join the container's cgroup and namespaces, then fork: setns into a PID
//! namespace moves only our future children, so the child is the first of
//! our processes really inside. Before it execs, the child drops everything
//! of ours (fds, signal dispositions), changes to its working directory and
//! checks that directory is inside the container (CVE-2024-21626), and
//! takes the user it is asked to run as.

use super::state::{self, Condition};
use crate::cgroups::{Cgroup, Hierarchy};
use crate::error::{Error, Result};
use crate::process::{self, Exit, Stdin};
use crate::{command, namespaces, trace};
use std::ffi::OsString;
use std::path::PathBuf;

/// What `exec` was asked.
pub struct ExecRequest {
    pub container: String,
    pub command: Vec<OsString>,
    pub stdin: Stdin,
    /// `-e`: added to the container's own environment (docker's rule).
    pub env: Vec<String>,
    /// `-w`: the working directory inside the container [default: /].
    pub workdir: Option<PathBuf>,
    /// `-u UID[:GID]`.
    pub user: Option<(u32, Option<u32>)>,
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
    cgroup.add_process(nix::unistd::Pid::this())?;
    handles.join()?;
    let env = command::merge_env(container.env.clone(), &request.env);
    let program = command::lookup(&request.command[0], &env)?;
    trace::flush();
    let workdir = request.workdir;
    let user = request.user;
    let child = process::fork_exec(
        program.as_os_str(),
        &request.command,
        &env,
        request.stdin,
        move || {
            // Really close what we inherited, before changing directory: no
            // fd can then be named as `-w /proc/self/fd/N`.
            process::close_fds_from(3)?;
            if let Some(dir) = &workdir {
                trace::step(
                    format!("chdir({})", trace::quote(dir)),
                    nix::unistd::chdir(dir),
                )?;
            }
            if let Some((uid, gid)) = user {
                become_user(uid, gid.unwrap_or(uid))?;
            }
            Ok(())
        },
    )?;
    child.wait()
}

/// Drop to `uid`/`gid` with no supplementary groups: groups first, while
/// we still may change them.
fn become_user(uid: u32, gid: u32) -> Result<()> {
    use nix::unistd::{Gid, Uid};
    trace::step("setgroups([])", nix::unistd::setgroups(&[]))?;
    let gid = Gid::from_raw(gid);
    trace::step(
        format!("setresgid({gid}, {gid}, {gid})"),
        nix::unistd::setresgid(gid, gid, gid),
    )?;
    let uid = Uid::from_raw(uid);
    trace::step(
        format!("setresuid({uid}, {uid}, {uid})"),
        nix::unistd::setresuid(uid, uid, uid),
    )
}

/// `-u UID[:GID]` (numeric; names come with stage 09).
pub fn parse_user(text: &str) -> std::result::Result<(u32, Option<u32>), String> {
    let bad = || "expected UID or UID:GID (numbers)".to_string();
    match text.split_once(':') {
        Some((uid, gid)) => Ok((
            uid.parse().map_err(|_| bad())?,
            Some(gid.parse().map_err(|_| bad())?),
        )),
        None => Ok((text.parse().map_err(|_| bad())?, None)),
    }
}
