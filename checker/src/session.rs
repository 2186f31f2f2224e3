//! One checker run: the scenarios the stage asks for, each in a fresh
//! rootfs, in the outer cgroup; what the probe and the host saw.

use crate::bundle;
use crate::cgroup::{self, Outer};
use crate::error::{Error, Result};
use crate::host::{self, HostFacts};
use crate::probe::{self, Report, ARGV_CASES};
use crate::rootfs::{RunDir, WorkDir, PREFIX, WROTE_FILE};
use crate::run::{self, Finished};
use crate::runtime::Runtime;
use crate::template::{Placeholder, Template, Values};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::time::Duration;

/// The limits the cgroup scenarios ask for, and how hard they push.
pub const MEMORY_LIMIT: u64 = 64 << 20;
pub const PIDS_LIMIT: u64 = 16;
/// The hog touches this much: 2.5 times the limit, a third of the outer
/// cgroup's.
pub const HOG_MIB: u64 = 160;
/// The fork probe tries this many children: 3 times the limit.
pub const FORKS: u64 = 48;
/// The host name runs are given with `{hostname}`.
pub const HOSTNAME: &str = "minibox-check";

/// How the checker runs.
pub struct Settings {
    pub stage: u8,
    pub runtime: Runtime,
    pub timeout: Duration,
    pub keep: bool,
}

/// One run of the runtime with the probe.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    pub scenario: String,
    pub finished: Finished,
    /// The probe's JSON (report, hog or fork), as printed.
    pub raw: Option<serde_json::Value>,
    /// Mounts left on the host after the run.
    pub leaked_mounts: Vec<String>,
    pub token: String,
    /// After the run: did the probe's writes reach the host?
    pub rootfs_written: bool,
    pub volume_rw_written: bool,
    pub volume_ro_written: bool,
    /// The host uid and gid of the file the probe wrote into the rw volume.
    pub volume_rw_owner: Option<(u32, u32)>,
    pub rootfs: PathBuf,
}

impl ScenarioRun {
    fn placeholder() -> Self {
        ScenarioRun {
            scenario: String::new(),
            finished: Finished::default(),
            raw: None,
            leaked_mounts: Vec::new(),
            token: String::new(),
            rootfs_written: false,
            volume_rw_written: false,
            volume_ro_written: false,
            volume_rw_owner: None,
            rootfs: PathBuf::new(),
        }
    }

    pub fn report(&self) -> Option<Report> {
        serde_json::from_value(self.raw.clone()?).ok()
    }

    /// Why this run gave the checks nothing to grade, if it did not: no
    /// probe output, or output the checker cannot read.
    pub fn problem(&self) -> Option<String> {
        let Some(raw) = &self.raw else {
            return Some(format!(
                "printed no probe report: {}",
                self.finished.summary()
            ));
        };
        if matches!(self.scenario.as_str(), "hog" | "fork") {
            return None;
        }
        serde_json::from_value::<Report>(raw.clone())
            .err()
            .map(|e| format!("printed a probe report the checker cannot read ({e})"))
    }
}

/// A cgroup of the container, as the host saw it while it ran.
#[derive(Debug, Clone)]
pub struct SeenCgroup {
    pub path: String,
    pub dir: PathBuf,
    pub limit: Option<String>,
    pub exists_after: bool,
}

/// The `hold` scenario: the probe waits while the host looks at it.
#[derive(Debug, Clone)]
pub struct Held {
    pub run: ScenarioRun,
    /// The probe's PID on the host, if found.
    pub host_pid: Option<i32>,
    pub memory: Option<SeenCgroup>,
    pub pids: Option<SeenCgroup>,
    /// The probe's real uid and gid as the host sees them (/proc/PID/status).
    pub host_ids: Option<(u32, u32)>,
    /// Why the host could not look, if it could not.
    pub problem: Option<String>,
}

/// The stage-07 sequence.
#[derive(Debug, Clone, Default)]
pub struct LifecycleRun {
    pub steps: Vec<(String, Finished)>,
    pub detach_ok: bool,
    pub detach_output: String,
    pub logs_report: Option<Report>,
    pub ps_all_lists_exited: bool,
    pub ps_lists_running: bool,
    pub stop_ok: bool,
    pub ps_after_stop_lists: bool,
    pub rm_ok: bool,
    pub ps_all_after_rm_lists: bool,
    pub leftover_cgroups: Vec<String>,
    pub leftover_processes: Vec<i32>,
}

/// Everything the checks grade.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    pub host: HostFacts,
    pub runtime_cgroup: String,
    pub report: Option<ScenarioRun>,
    pub hold: Option<Held>,
    pub hog: Option<ScenarioRun>,
    pub fork: Option<ScenarioRun>,
    pub bridge: Option<ScenarioRun>,
    pub lifecycle: Option<LifecycleRun>,
    /// Why the bridge scenario could not run here, if it could not.
    pub bridge_problem: Option<String>,
    /// Why no check applies to the runtime on this host (it refused the
    /// host's cgroup mode), if none does; nothing more was run.
    pub not_here: Option<String>,
    pub warnings: Vec<String>,
}

impl Observations {
    /// Every foreground run, for checks about all of them.
    pub fn runs(&self) -> Vec<&ScenarioRun> {
        let mut runs: Vec<&ScenarioRun> = Vec::new();
        runs.extend(self.report.iter());
        runs.extend(self.hold.iter().map(|h| &h.run));
        runs.extend(self.hog.iter());
        runs.extend(self.fork.iter());
        runs.extend(self.bridge.iter());
        runs
    }
}

/// Run every scenario stage `settings.stage` needs.
pub fn observe(settings: &Settings) -> Result<Observations> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::Environment(
            "minibox-check needs root: containers do, and it runs them in a cgroup of its own (use sudo)".into(),
        ));
    }
    let outer = Outer::create()?;
    let work = WorkDir::create(settings.keep)?;
    let mut session = Session {
        settings,
        outer: &outer,
        work: &work,
        host: HostFacts::gather(),
        index: 0,
    };
    let result = session.all();
    outer.remove();
    let finished = work.finish();
    let mut observations = result?;
    match finished {
        Ok(unmounted) if !unmounted.is_empty() => observations.warnings.push(format!(
            "unmounted what the runtime left under the work directory: {}",
            unmounted.join(", ")
        )),
        Ok(_) => {}
        Err(e) => observations.warnings.push(e.to_string()),
    }
    if let Some(w) = &outer.warning {
        observations.warnings.push(w.clone());
    }
    Ok(observations)
}

struct Session<'a> {
    settings: &'a Settings,
    outer: &'a Outer,
    work: &'a WorkDir,
    host: HostFacts,
    index: usize,
}

impl Session<'_> {
    fn all(&mut self) -> Result<Observations> {
        let stage = self.settings.stage;
        let mut obs = Observations {
            host: self.host.clone(),
            runtime_cgroup: self.outer.runtime_path.clone(),
            ..Observations::default()
        };
        let report_args = self.report_args("report");
        let report = self.scenario("report", report_args, "none", false)?;
        if let Some(why) = self.settings.runtime.refuses_hybrid_cgroups {
            if report.problem().is_some() && cgroup::is_hybrid() {
                let said = report.finished.stderr_tail();
                obs.not_here = Some(if said.is_empty() {
                    why.to_string()
                } else {
                    format!("{why} (it said: {said})")
                });
                obs.report = Some(report);
                return Ok(obs);
            }
        }
        obs.report = Some(report);
        if stage >= 5 {
            obs.hold = Some(self.hold()?);
            let hog = vec!["hog".into(), HOG_MIB.to_string().into()];
            obs.hog = Some(self.scenario("hog", hog, "none", false)?);
            let fork = vec!["fork".into(), FORKS.to_string().into()];
            obs.fork = Some(self.scenario("fork", fork, "none", false)?);
        }
        if stage >= 7 && self.settings.runtime.lifecycle.is_some() {
            obs.lifecycle = Some(self.lifecycle()?);
        }
        if stage >= 8 && self.settings.runtime.template.uses(Placeholder::Network) {
            match network_sandbox_problem() {
                Some(problem) => obs.bridge_problem = Some(problem),
                None => {
                    let args = self.report_args("report");
                    obs.bridge = Some(self.scenario("bridge", args, "bridge", true)?);
                }
            }
        }
        Ok(obs)
    }

    /// `report|hold DEV:INO -- <the argv cases>`.
    fn report_args(&self, mode: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![mode.into(), self.host.root_arg().into(), "--".into()];
        args.extend(
            ARGV_CASES
                .iter()
                .map(|(_, a)| OsString::from_vec(a.to_vec())),
        );
        args
    }

    fn values(&self, dir: &RunDir, probe_args: Vec<OsString>, network: &str) -> Values {
        Values {
            rootfs: dir.rootfs.clone(),
            bundle: dir.bundle.clone(),
            name: format!("{PREFIX}{}-{}", std::process::id(), self.index),
            hostname: HOSTNAME.into(),
            memory: MEMORY_LIMIT,
            pids: PIDS_LIMIT,
            cgroup_parent: self.outer.name.clone(),
            volume_rw: dir.volume_rw.clone(),
            volume_ro: dir.volume_ro.clone(),
            network: network.into(),
            state: dir.state.clone(),
            minibox: self.settings.runtime.minibox.clone(),
            probe_args,
            probe_inside: PathBuf::from("/probe"),
            probe_host: dir.rootfs.join("probe"),
        }
    }

    /// The argv of one run of `template`, writing the bundle if it has one.
    fn argv(&self, template: &Template, values: &Values) -> Result<Vec<OsString>> {
        if template.uses(Placeholder::Bundle) {
            let mut args = vec![values.probe_inside.clone().into_os_string()];
            args.extend(values.probe_args.iter().cloned());
            bundle::write(
                &values.bundle,
                &bundle::Spec {
                    rootfs: &values.rootfs,
                    args: &args,
                    hostname: &values.hostname,
                    cgroups_path: format!("/{}/{}", values.cgroup_parent, values.name),
                    memory: values.memory,
                    pids: values.pids,
                    volume_rw: &values.volume_rw,
                    volume_ro: &values.volume_ro,
                },
            )?;
        }
        template.expand(values)
    }

    fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            (
                "MINIBOX_ROOT",
                self.work.path.join("minibox-state").into_os_string(),
            ),
            ("MINIBOX_CGROUP_PARENT", self.outer.name.clone().into()),
            // Stage 10's remapped root needs a `minibox` range of
            // subordinate ids: a file of the checker's own, never /etc's.
            ("MINIBOX_SUBUID", self.work.subids.clone().into_os_string()),
            ("MINIBOX_SUBGID", self.work.subids.clone().into_os_string()),
        ]
    }

    fn options<'e>(&self, env: &'e [(&'e str, OsString)], background_ok: bool) -> run::Options<'e> {
        run::Options {
            env,
            timeout: self.settings.timeout,
            background_ok,
        }
    }

    fn next_dir(&mut self, scenario: &str) -> Result<RunDir> {
        self.index += 1;
        self.work.run_dir(self.index, scenario)
    }

    /// One foreground run; `sandboxed` runs it in a network namespace of
    /// its own (the bridge scenario).
    fn scenario(
        &mut self,
        scenario: &str,
        probe_args: Vec<OsString>,
        network: &str,
        sandboxed: bool,
    ) -> Result<ScenarioRun> {
        let dir = self.next_dir(scenario)?;
        let values = self.values(&dir, probe_args, network);
        let mut argv = self.argv(&self.settings.runtime.template, &values)?;
        if sandboxed {
            argv = in_network_sandbox(argv);
        }
        let env = self.env();
        let before = host::watched_mounts(&self.work.path.display().to_string());
        let finished = run::run(&argv, &self.options(&env, false), self.outer, None)?;
        Ok(self.finish_run(scenario, &dir, finished, &before))
    }

    fn finish_run(
        &self,
        scenario: &str,
        dir: &RunDir,
        finished: Finished,
        before: &[String],
    ) -> ScenarioRun {
        let after = host::watched_mounts(&self.work.path.display().to_string());
        let work = self.work.path.display().to_string();
        let leaked_mounts = host::added(before, &after)
            .into_iter()
            .map(|m| m.replace(&work, "<work>"))
            .collect();
        let mode = match scenario {
            "hog" => "hog",
            "fork" => "fork",
            _ => "report",
        };
        ScenarioRun {
            scenario: scenario.into(),
            raw: probe::last_object(&finished.stdout, mode),
            finished,
            leaked_mounts,
            token: dir.token.clone(),
            rootfs_written: dir.rootfs.join(WROTE_FILE).exists(),
            volume_rw_written: dir.volume_rw.join("from-container").exists(),
            volume_ro_written: dir.volume_ro.join("from-container").exists(),
            volume_rw_owner: std::fs::metadata(dir.volume_rw.join("from-container"))
                .ok()
                .map(|m| {
                    use std::os::unix::fs::MetadataExt;
                    (m.uid(), m.gid())
                }),
            rootfs: dir.rootfs.clone(),
        }
    }

    /// The probe reports and waits; the host finds it by its PID
    /// namespace, reads its cgroups and their limits, then sends it SIGTERM.
    fn hold(&mut self) -> Result<Held> {
        let dir = self.next_dir("hold")?;
        let values = self.values(
            &dir,
            vec!["hold".into(), self.host.root_arg().into()],
            "none",
        );
        let argv = self.argv(&self.settings.runtime.template, &values)?;
        let env = self.env();
        let before = host::watched_mounts(&self.work.path.display().to_string());
        let mut seen: Option<Held> = None;
        let mut on_line = |line: &[u8]| -> bool {
            let Some(report) = probe::last_object(line, "report")
                .and_then(|v| serde_json::from_value::<Report>(v).ok())
            else {
                return false;
            };
            seen = Some(look_at_held(&report));
            true
        };
        let finished = run::run(
            &argv,
            &self.options(&env, false),
            self.outer,
            Some(&mut on_line),
        )?;
        let run = self.finish_run("hold", &dir, finished, &before);
        let mut held = seen.unwrap_or_else(|| Held {
            run: run.clone(),
            host_pid: None,
            memory: None,
            pids: None,
            host_ids: None,
            problem: Some(format!(
                "the probe never reported ({})",
                run.finished.summary()
            )),
        });
        held.run = run;
        for c in [held.memory.as_mut(), held.pids.as_mut()]
            .into_iter()
            .flatten()
        {
            c.exists_after = c.dir.exists();
        }
        Ok(held)
    }

    fn lifecycle(&mut self) -> Result<LifecycleRun> {
        let Some(lifecycle) = self.settings.runtime.lifecycle.clone() else {
            return Ok(LifecycleRun::default());
        };
        let env = self.env();
        let mut out = LifecycleRun::default();

        // A container that reports and exits: run -d, logs -f, ps -a, rm.
        let dir = self.next_dir("detach-report")?;
        let reported = self.values(&dir, self.report_args("report"), "none");
        let argv = self.argv(&lifecycle.detach, &reported)?;
        let detach = run::run(&argv, &self.options(&env, true), self.outer, None)?;
        out.detach_ok = detach.code == Some(0) && !detach.stdout.is_empty();
        out.detach_output = String::from_utf8_lossy(&detach.stdout).trim().to_string();
        out.steps.push(("run -d".into(), detach));
        let step = |s: &Self, t: &Template, v: &Values| -> Result<Finished> {
            let argv = s.argv_plain(t, v)?;
            run::run(&argv, &s.options(&env, true), s.outer, None)
        };
        let logs = step(self, &lifecycle.logs, &reported)?;
        out.logs_report =
            probe::last_object(&logs.stdout, "report").and_then(|v| serde_json::from_value(v).ok());
        out.steps.push(("logs -f".into(), logs));
        let ps_all = step(self, &lifecycle.ps_all, &reported)?;
        out.ps_all_lists_exited = lists(&ps_all, &reported.name);
        out.steps.push(("ps -a".into(), ps_all));

        // A container that waits: run -d, ps, stop, ps.
        let dir = self.next_dir("detach-hold")?;
        let held = self.values(
            &dir,
            vec!["hold".into(), self.host.root_arg().into()],
            "none",
        );
        let argv = self.argv(&lifecycle.detach, &held)?;
        let detach = run::run(&argv, &self.options(&env, true), self.outer, None)?;
        out.detach_ok &= detach.code == Some(0);
        out.steps.push(("run -d (waiting)".into(), detach));
        let ps = step(self, &lifecycle.ps, &held)?;
        out.ps_lists_running = lists(&ps, &held.name);
        out.steps.push(("ps".into(), ps));
        let stop = step(self, &lifecycle.stop, &held)?;
        out.stop_ok = stop.code == Some(0);
        out.steps.push(("stop".into(), stop));
        let ps = step(self, &lifecycle.ps, &held)?;
        out.ps_after_stop_lists = lists(&ps, &held.name);
        out.steps.push(("ps (after stop)".into(), ps));

        // rm both; nothing may be left.
        let mut rm_ok = true;
        for values in [&reported, &held] {
            let rm = step(self, &lifecycle.rm, values)?;
            rm_ok &= rm.code == Some(0);
            out.steps.push(("rm".into(), rm));
        }
        out.rm_ok = rm_ok;
        let ps_all = step(self, &lifecycle.ps_all, &reported)?;
        out.ps_all_after_rm_lists = lists(&ps_all, &reported.name) || lists(&ps_all, &held.name);
        out.steps.push(("ps -a (after rm)".into(), ps_all));
        out.leftover_cgroups = self
            .outer
            .leftover_dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        out.leftover_processes = self.outer.processes();
        if !out.leftover_processes.is_empty() {
            self.outer.kill_all();
        }
        Ok(out)
    }

    /// The argv of a lifecycle verb (no bundle is written for those).
    fn argv_plain(&self, template: &Template, values: &Values) -> Result<Vec<OsString>> {
        template.expand(values)
    }
}

/// Whether `ps` output lists `name` as a word.
fn lists(ps: &Finished, name: &str) -> bool {
    String::from_utf8_lossy(&ps.stdout)
        .split_whitespace()
        .any(|w| w == name)
}

/// While the held probe runs: find it on the host, read its cgroups and
/// their limits, then end it with SIGTERM.
fn look_at_held(report: &Report) -> Held {
    let mut held = Held {
        run: ScenarioRun::placeholder(),
        host_pid: find_host_pid(report),
        memory: None,
        pids: None,
        host_ids: None,
        problem: None,
    };
    let Some(pid) = held.host_pid else {
        held.problem = Some(
            "the probe's process was not found on the host (by its PID namespace and NSpid)".into(),
        );
        return held;
    };
    held.host_ids = host_ids(pid);
    match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(text) => {
            held.memory = seen_cgroup(&text, "memory", "memory.limit_in_bytes", "memory.max");
            held.pids = seen_cgroup(&text, "pids", "pids.max", "pids.max");
            if held.memory.is_none() || held.pids.is_none() {
                held.problem = Some(format!(
                    "the probe's cgroups ({}) name no memory or pids cgroup",
                    text.trim().replace('\n', ", ")
                ));
            }
        }
        Err(e) => held.problem = Some(format!("cannot read /proc/{pid}/cgroup: {e}")),
    }
    terminate(pid, report);
    held
}

/// A controller's cgroup from /proc/PID/cgroup text, with its limit file
/// read now.
fn seen_cgroup(text: &str, controller: &str, file_v1: &str, file_v2: &str) -> Option<SeenCgroup> {
    let path = cgroup::controller_path(controller, text)?;
    let dir = cgroup::controller_dir(controller, text)?;
    let limit = std::fs::read_to_string(dir.join(file_v1))
        .or_else(|_| std::fs::read_to_string(dir.join(file_v2)))
        .ok()
        .map(|l| l.trim().to_string());
    Some(SeenCgroup {
        path,
        dir,
        limit,
        exists_after: true,
    })
}

/// The probe's host PID: the process whose PID namespace is the probe's
/// and whose innermost NSpid is the PID the probe reported.
fn find_host_pid(report: &Report) -> Option<i32> {
    use std::os::unix::fs::MetadataExt;
    let pid_ns = report.ns.get("pid").copied().flatten()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if std::fs::metadata(format!("/proc/{pid}/ns/pid"))
            .map(|m| m.ino())
            .ok()
            != Some(pid_ns)
        {
            continue;
        }
        if innermost_nspid(pid) == Some(report.pid) {
            return Some(pid);
        }
    }
    None
}

/// The real uid and gid of a host process, from the `Uid:` and `Gid:`
/// lines of its status.
fn host_ids(pid: i32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let real = |field: &str| -> Option<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|ids| ids.split_whitespace().next())
            .and_then(|id| id.parse().ok())
    };
    Some((real("Uid:")?, real("Gid:")?))
}

fn innermost_nspid(pid: i32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|ids| ids.split_whitespace().last())
        .and_then(|id| id.parse().ok())
}

/// SIGTERM the held probe through a pidfd, after checking the pidfd names
/// the same process (not a reused PID).
fn terminate(pid: i32, report: &Report) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return;
    }
    let fd = fd as i32;
    if innermost_nspid(pid) == Some(report.pid) {
        // SAFETY: fd is the pidfd opened above; a null siginfo is allowed.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGTERM,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
    // SAFETY: closing the fd we own.
    unsafe {
        libc::close(fd);
    }
}

/// `unshare --net …`: the runtime in a network namespace of its own with
/// `lo` up, so the bridges, veths and nftables tables it makes vanish with
/// it. (The host's sysfs stays: a fresh one would hide /sys/fs/cgroup,
/// which the runtime needs; the container mounts its own.)
fn in_network_sandbox(argv: Vec<OsString>) -> Vec<OsString> {
    let mut wrapped: Vec<OsString> = [
        "unshare",
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--fork",
        "--",
        "sh",
        "-c",
        "ip link set lo up && exec \"$@\"",
        "sh",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    wrapped.extend(argv);
    wrapped
}

/// Why the network sandbox cannot be made here, if it cannot.
fn network_sandbox_problem() -> Option<String> {
    for tool in ["unshare", "ip", "sh"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "the network scenario runs the runtime under `unshare --net` and needs `{tool}` (util-linux, iproute2)"
            ));
        }
    }
    None
}
