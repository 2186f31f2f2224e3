//! Fault injection: `run` dies by SIGKILL right after each step of its
//! trace, one run per step, and `cleanup` must leave nothing; `run` gets
//! SIGTERM at each step before the container starts, and must clean up by
//! itself and exit 143.
//!
//! The failpoints are the debug build's `MINIBOX_FAILPOINT=N[:kill|:stop]`
//! (see `shared/src/trace/mod.rs`); `MINIBOX_FAILPOINT_LOG` lists them.
//! Everything runs in a private mount namespace of the test's own thread,
//! so a cleanup bug cannot leave a mount in the machine's namespace, and
//! the mount table is compared byte for byte before and after.

use minibox_tests::{require_root, stage_bin, stderr, stdout};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One way of running a stage whose every step is an injection point.
struct Scenario {
    stage: &'static str,
    args: Vec<String>,
}

impl Scenario {
    /// A name for the scenario's sandbox: tests run side by side, and each
    /// must own its cgroup parent alone.
    fn tag(&self) -> String {
        let detached = if self.args.iter().any(|a| a == "-d") {
            "d"
        } else {
            ""
        };
        format!("{}{detached}", &self.stage[..2])
    }
}

/// Where a scenario keeps its state: fresh for each test, so that nothing
/// else the suite runs at the same time can be mistaken for a leftover.
struct Sandbox {
    root: tempfile::TempDir,
    parent: String,
}

impl Sandbox {
    fn new(tag: &str) -> Sandbox {
        Sandbox {
            root: tempfile::Builder::new()
                .prefix("minibox-faults-")
                .tempdir()
                .expect("a state root"),
            parent: format!("minibox-test-{}-faults-{tag}", std::process::id()),
        }
    }

    fn command(&self, stage: &str) -> Command {
        let mut command = Command::new(stage_bin(stage));
        command
            .env("NO_COLOR", "1")
            .env_remove("MINIBOX_TRACE")
            .env_remove("MINIBOX_FAILPOINT")
            .env("MINIBOX_ROOT", self.root.path())
            .env("MINIBOX_CGROUP_PARENT", &self.parent)
            .stdin(Stdio::null());
        minibox_tests::without_inherited_fds(&mut command);
        command
    }

    /// Every directory of this sandbox's cgroup parent, in every tree.
    fn cgroup_parents(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let candidate = entry.path().join(&self.parent);
            if candidate.is_dir() {
                dirs.push(candidate);
            }
        }
        let unified = Path::new("/sys/fs/cgroup").join(&self.parent);
        if unified.is_dir() && !dirs.contains(&unified) {
            dirs.push(unified);
        }
        dirs
    }

    /// Whatever the sandbox still holds: container directories, locks,
    /// cgroups (with `parents`, the parent cgroup itself, which runs keep
    /// for the next run and only `cleanup` removes).
    fn leftovers(&self, parents: bool) -> Vec<String> {
        let mut left = Vec::new();
        for sub in ["containers", "run/locks"] {
            let dir = self.root.path().join(sub);
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                left.push(entry.path().display().to_string());
            }
        }
        for dir in self.cgroup_parents() {
            if parents {
                left.push(dir.display().to_string());
            }
            for leaf in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if leaf.path().is_dir() {
                    left.push(leaf.path().display().to_string());
                }
            }
        }
        left
    }

    /// Wait until no run or monitor of this sandbox is alive: each holds
    /// its container's lock for as long as it lives (`run -d` returns while
    /// its monitor goes on).
    fn wait_until_no_run(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let held = || {
            std::fs::read_dir(self.root.path().join("run/locks"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|lock| {
                    std::fs::File::open(lock.path()).is_ok_and(|file| {
                        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
                            .is_err()
                    })
                })
        };
        while held() {
            assert!(Instant::now() < deadline, "a run or monitor never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The processes still in this sandbox's cgroups (a dying init).
    fn members(&self) -> usize {
        let mut count = 0;
        for parent in self.cgroup_parents() {
            for entry in walk(&parent) {
                count += std::fs::read_to_string(entry.join("cgroup.procs"))
                    .map(|p| p.lines().count())
                    .unwrap_or(0);
            }
        }
        count
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            all.extend(walk(&entry.path()));
        }
    }
    all
}

/// This thread's own mount namespace, all of it private: what the stage
/// binaries it starts do to mounts stays here.
fn private_mount_namespace() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare(CLONE_NEWNS)");
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
}

/// This thread's own network namespace, with `lo` up: stage 08's bridge,
/// veths and rules are made only there (a rule of the machines minibox is
/// developed on), and vanish with the thread.
fn private_network_namespace() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    minibox::network::netlink::Netlink::open()
        .and_then(|mut nl| nl.set_up("lo", None))
        .expect("lo up");
}

/// What stage 08 can leave in the network namespace: links but `lo`, an
/// nftables ruleset, forwarding left on.
fn network_leftovers() -> Vec<String> {
    let mut left = Vec::new();
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip");
    for line in stdout(&links).lines() {
        if !line.contains(": lo:") {
            left.push(line.to_string());
        }
    }
    let rules = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .expect("nft");
    if !stdout(&rules).trim().is_empty() {
        left.push(stdout(&rules));
    }
    let forwarding = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    if forwarding.trim() != "0" {
        left.push(format!("ip_forward {}", forwarding.trim()));
    }
    left
}

/// The mount table of this thread's namespace.
fn mountinfo() -> String {
    std::fs::read_to_string("/proc/thread-self/mountinfo").expect("read mountinfo")
}

/// The injection points: run's own steps, as the failpoint log lists them,
/// with their times (CLOCK_MONOTONIC, µs) and whether the container had
/// started by then.
fn points(sandbox: &Sandbox, scenario: &Scenario) -> Vec<(u64, String, bool)> {
    let log = sandbox.root.path().join("failpoints.log");
    let out = sandbox
        .command(scenario.stage)
        .args(["run", "--trace", "json"])
        .args(&scenario.args)
        .env("MINIBOX_FAILPOINT_LOG", &log)
        .output()
        .expect("run the stage");
    assert!(out.status.success(), "{}", stderr(&out));
    sandbox.wait_until_no_run();
    // init's final execve: the container starts right after run's go.
    let started_at = stderr(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["actor"] == "init"
                && e["step"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("execve(") && !s.contains("/proc/self/exe"))
        })
        .filter_map(|e| e["t_us"].as_u64())
        .next_back()
        .expect("init's exec in the trace");
    let text = std::fs::read_to_string(&log).expect("the failpoint log");
    std::fs::remove_file(&log).expect("remove the log");
    wait_until_empty(sandbox);
    let _ = sandbox.command(scenario.stage).arg("cleanup").output();
    text.lines()
        .map(|line| {
            let mut fields = line.splitn(3, '\t');
            let n = fields
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a step number");
            let t: u64 = fields.next().and_then(|t| t.parse().ok()).expect("a time");
            let step = fields.next().unwrap_or_default().to_string();
            (n, step, t > started_at)
        })
        .collect()
}

fn wait_until_empty(sandbox: &Sandbox) {
    // init dies by PR_SET_PDEATHSIG when run dies; the kernel takes it out
    // of its cgroup a moment later. A bounded wait on that state.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sandbox.members() > 0 {
        assert!(Instant::now() < deadline, "a container outlived its run");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `ps -a` rows: none may claim a container is being created or starting
/// once its run is dead.
fn assert_ps_is_honest(sandbox: &Sandbox, scenario: &Scenario, point: &str) {
    if scenario.stage != "07-full" {
        return;
    }
    let out = sandbox
        .command(scenario.stage)
        .args(["ps", "-a"])
        .output()
        .expect("ps");
    for row in stdout(&out).lines().skip(1) {
        assert!(
            row.contains("Dead") || row.contains("Exited"),
            "after a SIGKILL {point}, ps -a says: {row}"
        );
    }
}

fn kill_at_every_step(scenario: Scenario) {
    require_root!();
    let sandbox = Sandbox::new(&scenario.tag());
    private_mount_namespace();
    let networked = scenario.stage == "08-network";
    if networked {
        private_network_namespace();
    }
    let before = mountinfo();
    let points = points(&sandbox, &scenario);
    assert!(points.len() > 10, "too few steps: {points:?}");
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, step, started) in &points {
        let point = format!("after step {n} ({step})");
        let out = sandbox
            .command(scenario.stage)
            .args(["run", "--trace", "off"])
            .args(&scenario.args)
            .env("MINIBOX_FAILPOINT", n.to_string())
            .output()
            .expect("run the stage");
        // run itself died, or (run -d) the monitor did: before the start
        // the caller reports its death as 128 + 9; after it, the caller had
        // already returned the id.
        let detached_and_started = *started && scenario.args.iter().any(|a| a == "-d");
        assert!(
            out.status.signal() == Some(9)
                || out.status.code() == Some(137)
                || (detached_and_started && out.status.success()),
            "{point}: run was not killed: {:?} {}",
            out.status,
            stderr(&out)
        );
        sandbox.wait_until_no_run();
        wait_until_empty(&sandbox);
        assert_ps_is_honest(&sandbox, &scenario, &point);
        let cleaned = sandbox
            .command(scenario.stage)
            .arg("cleanup")
            .output()
            .expect("cleanup");
        assert!(cleaned.status.success(), "{point}: {}", stderr(&cleaned));
        assert_eq!(
            sandbox.leftovers(true),
            Vec::<String>::new(),
            "{point}: cleanup left these"
        );
        assert_eq!(before, mountinfo(), "{point}: the mount table changed");
        if networked {
            assert_eq!(
                network_leftovers(),
                Vec::<String>::new(),
                "{point}: cleanup left these in the network namespace"
            );
        }
        *outcomes
            .entry(if *started {
                "after start"
            } else {
                "before start"
            })
            .or_default() += 1;
    }
    // How many points were covered, for the log of the test run.
    eprintln!(
        "{} {:?}: SIGKILL at {} points {outcomes:?}",
        scenario.stage,
        scenario.args,
        points.len()
    );
}

/// SIGTERM at every step before the container starts: run removes what it
/// made and exits 143 by itself (no `cleanup`).
fn interrupt_at_every_step_before_start(scenario: Scenario) {
    require_root!();
    let sandbox = Sandbox::new(&format!("{}i", scenario.tag()));
    private_mount_namespace();
    let networked = scenario.stage == "08-network";
    if networked {
        private_network_namespace();
    }
    let before = mountinfo();
    let points = points(&sandbox, &scenario);
    let mut covered = 0;
    for (n, step, started) in &points {
        if *started {
            continue;
        }
        let point = format!("SIGTERM after step {n} ({step})");
        let child = sandbox
            .command(scenario.stage)
            .args(["run", "--trace", "off"])
            .args(&scenario.args)
            .env("MINIBOX_FAILPOINT", format!("{n}:stop"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the stage");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let stopped = wait_stopped(pid, scenario.args.iter().any(|a| a == "-d"));
        let target = stopped.unwrap_or(pid);
        nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGCONT).expect("SIGCONT");
        let out = child.wait_with_output().expect("wait for run");
        assert_eq!(
            out.status.code(),
            Some(143),
            "{point}: {:?} {}",
            out.status,
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("interrupted by SIGTERM before the container started"),
            "{point}: {}",
            stderr(&out)
        );
        wait_until_empty(&sandbox);
        assert_eq!(
            sandbox.leftovers(false),
            Vec::<String>::new(),
            "{point}: run left these"
        );
        assert_eq!(before, mountinfo(), "{point}: the mount table changed");
        // The parent cgroup (and stage 08's bridge) stays for the next run;
        // remove it, so the next run makes it again and takes the same
        // steps as the trial.
        let _ = sandbox.command(scenario.stage).arg("cleanup").output();
        if networked {
            assert_eq!(network_leftovers(), Vec::<String>::new(), "{point}");
        }
        covered += 1;
    }
    eprintln!(
        "{} {:?}: SIGTERM at {covered} points before the start",
        scenario.stage, scenario.args
    );
    assert!(covered > 5, "too few points before the start");
}

/// Wait until run (or, with -d, its monitor: the stopped process may be
/// the child that `run -d` forked) has stopped itself at the failpoint.
/// Returns the stopped process.
fn wait_stopped(run: nix::unistd::Pid, detached: bool) -> Option<nix::unistd::Pid> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut candidates = vec![run];
        if detached {
            candidates.extend(children_of(run));
        }
        for pid in candidates {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rfind(')')
                .and_then(|i| stat.get(i + 2..i + 3))
                .unwrap_or("");
            if state == "T" {
                return Some(pid);
            }
        }
        assert!(Instant::now() < deadline, "run never reached its failpoint");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn children_of(pid: nix::unistd::Pid) -> Vec<nix::unistd::Pid> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .map(nix::unistd::Pid::from_raw)
        .collect()
}

fn busybox_rootfs() -> String {
    minibox_tests::default_rootfs().display().to_string()
}

fn stage_05() -> Scenario {
    Scenario {
        stage: "05-cgroups",
        args: ["-m", "32m", "--pids-limit", "50", "true"]
            .map(String::from)
            .to_vec(),
    }
}

fn stage_06(volume: &Path) -> Scenario {
    // Made beforehand: `run` creates a missing volume directory, once, and
    // every run must take the same steps for the step numbers to match.
    std::fs::create_dir_all(volume.join("data")).expect("the volume directory");
    Scenario {
        stage: "06-volumes",
        args: vec![
            "-v".into(),
            format!("{}/data:/data", volume.display()),
            "--rootfs".into(),
            busybox_rootfs(),
            "true".into(),
        ],
    }
}

fn stage_07(detach: bool) -> Scenario {
    let mut args: Vec<String> = ["--rm", "-e", "SECRET=x"].map(String::from).to_vec();
    if detach {
        args.insert(0, "-d".into());
    }
    args.extend(["busybox", "true"].map(String::from));
    Scenario {
        stage: "07-full",
        args,
    }
}

fn stage_08() -> Scenario {
    Scenario {
        stage: "08-network",
        args: ["--rm", "-p", "8080:80", "busybox", "true"]
            .map(String::from)
            .to_vec(),
    }
}

#[test]
fn sigkill_at_every_step_of_stage_08() {
    kill_at_every_step(stage_08());
}

#[test]
fn sigterm_at_every_step_before_start_of_stage_08() {
    interrupt_at_every_step_before_start(stage_08());
}

#[test]
fn sigkill_at_every_step_of_stage_05() {
    kill_at_every_step(stage_05());
}

#[test]
fn sigkill_at_every_step_of_stage_06() {
    let volume = tempfile::tempdir().unwrap();
    kill_at_every_step(stage_06(volume.path()));
}

#[test]
fn sigkill_at_every_step_of_stage_07() {
    kill_at_every_step(stage_07(false));
}

#[test]
fn sigkill_at_every_step_of_stage_07_detached() {
    kill_at_every_step(stage_07(true));
}

#[test]
fn sigterm_at_every_step_before_start_of_stage_05() {
    interrupt_at_every_step_before_start(stage_05());
}

#[test]
fn sigterm_at_every_step_before_start_of_stage_06() {
    let volume = tempfile::tempdir().unwrap();
    interrupt_at_every_step_before_start(stage_06(volume.path()));
}

#[test]
fn sigterm_at_every_step_before_start_of_stage_07() {
    interrupt_at_every_step_before_start(stage_07(false));
    interrupt_at_every_step_before_start(stage_07(true));
}
