//! Stage 05: limits written into cgroups, and enforced by the kernel.

use minibox_tests::{
    apply, cgroup_leaf_dirs, cgroup_mode, init_host_pid, json_events, limited_stages, require_root,
    run_stage, stage_command, stderr, stdout, test_env, Container,
};
use predicates::prelude::*;
use rstest::rstest;
use std::path::{Path, PathBuf};

const STAGE: &str = "05-cgroups";

fn start(flags: &[&str], script: &str) -> Container {
    Container::script(STAGE, flags, script)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn assert_removed(dirs: &[PathBuf]) {
    assert!(!dirs.is_empty(), "the trace shows no cgroup being made");
    for dir in dirs {
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }
}

/// The files that hold each limit, per tree (v1) or in the one dir (v2).
fn limit_files(dir: &Path) -> &'static [&'static str] {
    // v1: the tree is named by its controllers (`cpu,cpuacct` where co-mounted).
    let tree = dir
        .parent()
        .and_then(|p| p.parent())
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let has = |c: &str| tree.split(',').any(|t| t == c);
    if has("memory") {
        &["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    } else if has("cpu") {
        &["cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"]
    } else if has("cpuset") {
        &["cpuset.cpus", "cpuset.mems"]
    } else if has("pids") {
        &["pids.max"]
    } else {
        &[
            "memory.max",
            "memory.swap.max",
            "memory.oom.group",
            "cpu.max",
            "cpu.weight",
            "cpuset.cpus",
            "pids.max",
        ]
    }
}

/// init is a member of the container's cgroup in every tree, and sees it
/// from inside; the limit files hold the flags' values. Snapshot per mode.
#[test]
fn membership_and_limits() {
    require_root!();
    let running = start(
        &[
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--pids-limit",
            "20",
            "--cpuset-cpus",
            "0",
        ],
        "cat /proc/self/cgroup",
    );
    let host_pid = running.init_pid();
    let dirs = running.cgroup_dirs();
    let parent = &test_env().cgroup_parent;
    let mut report = String::from("inside, /proc/self/cgroup:\n");
    for line in running.said.lines() {
        // hierarchy-id:controllers:path — ids differ between machines.
        let (_, rest) = line.split_once(':').unwrap();
        let (controllers, path) = rest.split_once(':').unwrap();
        let ours = path.contains(parent.as_str());
        let controllers = if controllers.is_empty() {
            "(unified)"
        } else {
            controllers
        };
        if ours || controllers == "(unified)" {
            report.push_str(&format!("  {controllers}:{path}\n"));
        }
    }
    report.push_str("on the host:\n");
    for dir in &dirs {
        let procs = read(&dir.join("cgroup.procs"));
        assert!(
            procs.lines().any(|p| p.trim() == host_pid.to_string()),
            "init (host pid {host_pid}) is not in {}: {procs:?}",
            dir.display()
        );
        report.push_str(&format!("  {}\n    cgroup.procs: [init]\n", dir.display()));
        for file in limit_files(dir) {
            let path = dir.join(file);
            if path.exists() {
                report.push_str(&format!("    {file}: {}\n", read(&path).trim()));
            }
        }
    }
    let (code, _) = running.finish();
    assert_eq!(code, Some(0));
    assert_removed(&dirs);
    let report = report.replace(parent.as_str(), "[PARENT]").replace(
        &format!("/{}", dirs[0].file_name().unwrap().to_string_lossy()),
        "/[ID]",
    );
    insta::assert_snapshot!(format!("cgroup_membership_{}", cgroup_mode()), report);
}

/// `-m 64m` is enforced: stress asking for 200M is OOM-killed, run says so
/// in one line and exits 137; the same command without a limit succeeds.
#[test]
fn memory_limit_ooms() {
    require_root!();
    let stress = [
        "stress",
        "--vm",
        "1",
        "--vm-bytes",
        "200M",
        "--vm-keep",
        "--timeout",
        "60",
    ];
    let out = stage_command(STAGE)
        .args(["run", "--trace", "json", "-m", "64m"])
        .args(stress)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert!(
        err.lines().last().unwrap().starts_with(
            "05-cgroups: the container hit its memory limit (64 MiB): the kernel OOM-killed"
        ),
        "{err}"
    );
    assert_removed(&cgroup_leaf_dirs(&json_events(&err)));

    let out = run_stage(
        STAGE,
        [
            "stress",
            "--vm",
            "1",
            "--vm-bytes",
            "200M",
            "--timeout",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A fork loop stops at `--pids-limit`.
#[test]
fn pids_limit_stops_a_fork_loop() {
    require_root!();
    // An inner shell forks `sleep`s until fork fails (busybox sh then
    // gives up: "can't fork"); its sleeps stay. The outer shell counts the
    // processes with a glob over /proc, which needs no fork of its own.
    let script =
        r#"sh -c 'for i in $(seq 30); do sleep 1000 & done'; set -- /proc/[0-9]*; echo $#"#;
    let out = run_stage(STAGE, ["--pids-limit", "10", "sh", "-c", script]);
    let count: usize = stdout(&out)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", stderr(&out)));
    assert!(
        (2..=10).contains(&count),
        "{count} processes under a limit of 10"
    );
    assert!(stderr(&out).contains("can't fork"), "{}", stderr(&out));

    let out = run_stage(STAGE, ["sh", "-c", script]);
    let count: usize = stdout(&out).trim().parse().unwrap();
    assert_eq!(count, 31, "without a limit all 30 start");
}

/// `--cpus 0.2` throttles a busy loop: the kernel's own counters say so.
#[test]
fn cpus_throttle_a_busy_loop() {
    require_root!();
    let running = start(
        &["--cpus", "0.2"],
        "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done",
    );
    let dir = running
        .cgroup_dirs()
        .into_iter()
        .find(|d| d.join("cpu.stat").exists())
        .expect("a cgroup with cpu.stat");
    let stat = read(&dir.join("cpu.stat"));
    let field = |name: &str| -> u64 {
        stat.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in {stat}"))
    };
    assert!(field("nr_throttled ") > 0, "not throttled: {stat}");
    let (code, _) = running.finish();
    assert_eq!(code, Some(0));
}

/// `--cpuset-cpus 0` pins the container to CPU 0.
#[test]
fn cpuset_pins() {
    require_root!();
    let out = run_stage(
        STAGE,
        [
            "--cpuset-cpus",
            "0",
            "grep",
            "Cpus_allowed_list",
            "/proc/self/status",
        ],
    );
    assert_eq!(stdout(&out), "Cpus_allowed_list:\t0\n", "{}", stderr(&out));
}

/// Nothing is left after any way a container can end.
#[rstest]
#[case::normal_exit(&["true"], 0)]
#[case::non_zero_exit(&["sh", "-c", "exit 7"], 7)]
#[case::command_not_found(&["no-such-command"], 127)]
fn nothing_left_after_exit(#[case] command: &[&str], #[case] code: i32) {
    require_root!();
    let out = stage_command(STAGE)
        .args(["run", "--trace", "json", "-m", "32m", "--pids-limit", "50"])
        .args(command)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    assert_removed(&cgroup_leaf_dirs(&json_events(&stderr(&out))));
}

#[test]
fn nothing_left_after_sigkill_of_the_container() {
    require_root!();
    let running = start(&["-m", "32m"], "true");
    let init = init_host_pid(&running.events).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(init),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let dirs = running.cgroup_dirs();
    let (code, _) = running.ended_from_outside();
    assert_eq!(code, Some(137));
    assert_removed(&dirs);
}

#[test]
fn nothing_left_after_sigterm_to_run() {
    require_root!();
    let running = start(&["-m", "32m"], "trap 'exit 143' TERM");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let dirs = running.cgroup_dirs();
    let (code, _) = running.ended_from_outside();
    assert_eq!(code, Some(143));
    assert_removed(&dirs);
}

/// run itself killed with SIGKILL cannot clean up: the container dies with
/// it (PR_SET_PDEATHSIG) and `cleanup` removes the cgroup it left.
#[test]
fn cleanup_removes_what_a_killed_run_left() {
    require_root!();
    let running = start(&["-m", "32m"], "true");
    let dirs = running.cgroup_dirs();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(running.child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let (code, _) = running.ended_from_outside();
    assert_eq!(code, None, "run was killed by a signal");
    assert!(
        dirs.iter().all(|d| d.exists()),
        "a killed run cannot have cleaned up"
    );
    stage_command(STAGE)
        .args(["cleanup"])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed"));
    assert_removed(&dirs);
}

/// Malformed values: one line naming the problem, exit 125, no cgroup made.
#[rstest]
#[case::bad_unit(&["-m", "100x"], "invalid value '100x'")]
#[case::below_minimum(&["-m", "1k"], "below the minimum")]
#[case::negative_cpus(&["--cpus", "-1"], "invalid value '-1'")]
#[case::too_many_cpus(&["--cpus", "999"], "must be between 0.01")]
#[case::backwards_range(&["--cpuset-cpus", "9-3"], "runs backwards")]
#[case::missing_cpu(&["--cpuset-cpus", "999"], "CPU 999 is not online")]
#[case::zero_pids(&["--pids-limit", "0"], "positive whole number")]
#[case::shares_out_of_range(&["--cpu-shares", "1"], "between 2 and 262144")]
#[case::swap_without_memory(&["--memory-swap", "64m"], "--memory-swap needs --memory")]
#[case::swap_below_memory(&["-m", "64m", "--memory-swap", "32m"], "below --memory")]
#[case::escaping_parent(&["--cgroup-parent", "../elsewhere"], "relative path of names")]
fn bad_limits_are_refused_before_anything_is_made(#[case] flags: &[&str], #[case] message: &str) {
    let parent = format!("{}-bad", test_env().cgroup_parent);
    let out = stage_command(STAGE)
        .env("MINIBOX_CGROUP_PARENT", &parent)
        .arg("run")
        .args(flags)
        .arg("true")
        .assert()
        .code(125)
        .stderr(predicate::str::contains(message));
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    for tree in ["", "memory", "cpu", "cpuset", "pids"] {
        let dir = Path::new("/sys/fs/cgroup").join(tree).join(&parent);
        assert!(!dir.exists(), "{} was made", dir.display());
    }
}

/// init's own setup runs inside the container's limits (on v2 it is born
/// in its cgroup, `clone3(CLONE_INTO_CGROUP)`): the smallest limits docker
/// accepts, 6 MiB and one process, must still start the command.
#[apply(limited_stages)]
fn the_smallest_limits_still_start_the_container(stage: &str) {
    require_root!();
    let out = run_stage(stage, ["-m", "6m", "--pids-limit", "1", "echo", "started"]);
    assert_eq!(stdout(&out), "started\n", "{}", stderr(&out));
}
