//! Issue 16: the docker verbs and run flags a docker user types, with
//! docker's documented behaviour as each test's expectation. The verbs are
//! the library's (`container::Verb`), so stage 07 and every later stage
//! have them; the tests run on 07 and, where a later stage could differ,
//! on 08 and 09 too (with `--network none`: no bridge on the host).
//!
//! Exit codes, docker's rule: 125 for a command line rejected before
//! acting, 1 for an action that failed (every verb but `run`), the
//! container's own code where docker passes it through (`wait`, `start -a`).

use minibox_tests::{require_root, stage_command, stage_process, stderr, stdout};
use rstest::rstest;
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

const STAGE: &str = "07-full";

fn cli_on(stage: &str, args: &[&str]) -> Output {
    stage_command(stage)
        .args(args)
        .output()
        .expect("run the stage binary")
}

fn cli(args: &[&str]) -> Output {
    cli_on(STAGE, args)
}

fn ok_on(stage: &str, args: &[&str]) -> String {
    let out = cli_on(stage, args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

fn ok(args: &[&str]) -> String {
    ok_on(STAGE, args)
}

/// A failed command: its exit code, one line of stderr containing `message`.
fn fails(args: &[&str], code: i32, message: &str) {
    let out = cli(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line:\n{err}");
    assert!(err.contains(message), "{args:?}: {err}");
}

/// A container name unique to this test process, `rm -f`'d when dropped
/// (pass or fail: a failing test must not leave a container running).
struct Named {
    name: String,
    stage: &'static str,
}

fn name(tag: &str) -> Named {
    name_on(STAGE, tag)
}

fn name_on(stage: &'static str, tag: &str) -> Named {
    Named {
        name: format!("{tag}-{}", std::process::id()),
        stage,
    }
}

impl std::ops::Deref for Named {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = cli_on(self.stage, &["rm", "-f", &self.name]);
    }
}

/// The flags `run -d` needs on `stage` besides the image (no bridge on 08+).
fn detached(stage: &str, name: &str) -> Vec<String> {
    let mut args: Vec<String> = ["run", "-d", "--trace", "off", "--name", name]
        .map(String::from)
        .to_vec();
    if minibox_tests::number(stage) >= 8 {
        args.extend(["--network".into(), "none".into()]);
    }
    args
}

/// `run -d --name NAME [FLAGS] busybox COMMAND…` on `stage`: the id.
fn start_on(stage: &str, name: &str, flags: &[&str], command: &[&str]) -> String {
    let mut args = detached(stage, name);
    args.extend(flags.iter().map(|s| s.to_string()));
    args.push("busybox".into());
    args.extend(command.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok_on(stage, &args).trim().to_string()
}

fn start(name: &str, flags: &[&str], command: &[&str]) -> String {
    start_on(STAGE, name, flags, command)
}

/// Follow the container's log until it prints a line `ready` (the container's
/// own word that it is set up); the `logs -f` process, which ends with it.
// The caller waits for the returned child (it ends with the container).
#[allow(clippy::zombie_processes)]
fn said_ready(name: &str) -> std::process::Child {
    said_ready_on(STAGE, name)
}

#[allow(clippy::zombie_processes)]
fn said_ready_on(stage: &str, name: &str) -> std::process::Child {
    let mut logs = stage_process(stage)
        .args(["logs", "-f", name])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(logs.stdout.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = logs.wait();
            panic!("{name} ended before it said ready: {said}");
        }
        if line == "ready\n" {
            return logs;
        }
        said.push_str(&line);
    }
}

/// A shell line that starts `sleep 1000` in the background and says
/// `ready` once it runs (a child's comm changes at its exec).
const SLEEPER_READY: &str =
    "sleep 1000 & until grep -qx sleep /proc/$!/comm; do :; done; echo ready";

fn inspect(name: &str) -> serde_json::Value {
    inspect_on(STAGE, name)
}

fn inspect_on(stage: &str, name: &str) -> serde_json::Value {
    let out = ok_on(stage, &["inspect", name]);
    let all: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{out}");
    all[0].clone()
}

/// `ps -a`'s row of the container named `name`.
fn ps_row(name: &str) -> Option<String> {
    ok(&["ps", "-a"])
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .map(String::from)
}

/// The command line of host process `pid`, arguments joined by spaces.
fn cmdline(pid: i64) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .trim_end_matches('\0')
        .replace('\0', " ")
}

/// `inspect` prints docker's JSON: the fields docker users read, with
/// docker's names; `-f '{{.State.Pid}}'` is the container's PID 1 on the
/// host, on stage 07 and every later stage.
#[rstest]
#[case::stage_07("07-full")]
#[case::stage_08("08-network")]
#[case::stage_09("09-hardening")]
fn inspect_shows_dockers_fields_and_format_paths(#[case] stage: &'static str) {
    require_root!();
    let c = name_on(stage, &format!("inspected{}", minibox_tests::number(stage)));
    let volume = tempfile::tempdir().unwrap();
    let bind = format!("{}:/data:ro", volume.path().display());
    let id = start_on(
        stage,
        &c,
        &[
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "-e",
            "GREETING=hi",
            "-v",
            &bind,
        ],
        &["sleep", "1000"],
    );
    let pid: i64 = ok_on(stage, &["inspect", "-f", "{{.State.Pid}}", &c])
        .trim()
        .parse()
        .expect("-f '{{.State.Pid}}' prints a number");
    assert_eq!(
        cmdline(pid),
        "sleep 1000",
        "the pid is the container's PID 1"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.ends_with("\t1"), "PID 1 in its namespace: {nspid}");

    let json = inspect_on(stage, &c);
    assert_eq!(json["Id"], id.as_str());
    assert_eq!(json["Name"], format!("/{}", &*c));
    assert_eq!(json["State"]["Status"], "running");
    assert_eq!(json["State"]["Running"], true);
    assert_eq!(json["State"]["Paused"], false);
    assert_eq!(json["State"]["Pid"], pid);
    assert_eq!(json["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    assert!(json["State"]["StartedAt"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z') && t.len() == 30));
    assert_eq!(json["Config"]["Cmd"], serde_json::json!(["sleep", "1000"]));
    assert_eq!(json["Config"]["Image"], "busybox");
    assert!(json["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&"GREETING=hi".into()));
    assert_eq!(json["HostConfig"]["Memory"], 64 << 20);
    assert_eq!(json["HostConfig"]["PidsLimit"], 50);
    assert_eq!(json["Mounts"][0]["Type"], "bind");
    assert_eq!(json["Mounts"][0]["Destination"], "/data");
    assert_eq!(json["Mounts"][0]["RW"], false);
    assert_eq!(
        ok_on(
            stage,
            &["inspect", "--format", "{{.Name}} {{json .Config.Cmd}}", &c]
        ),
        format!("/{} [\"sleep\",\"1000\"]\n", &*c)
    );

    // Once stopped: exited, its code, no pid.
    ok_on(stage, &["stop", "-t", "0", "--trace", "off", &c]);
    let json = inspect_on(stage, &c);
    assert_eq!(json["State"]["Status"], "exited");
    assert_eq!(json["State"]["Running"], false);
    assert_eq!(json["State"]["ExitCode"], 137);
    assert_eq!(json["State"]["Pid"], 0);
    assert_ne!(json["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
}

/// docker: `inspect` of an unknown container fails (1) after printing what
/// it found; a template it cannot read is a bad command line (125); a path
/// that is not there is a failed action (1).
#[test]
fn inspect_reports_unknown_containers_and_bad_templates() {
    require_root!();
    let c = name("found");
    start(&c, &[], &["sleep", "1000"]);
    let out = cli(&["inspect", &c, "no-such-box"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let found: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(found[0]["Name"], format!("/{}", &*c));
    assert_eq!(
        stderr(&out).trim(),
        "07-full: no such container: no-such-box"
    );
    fails(
        &["inspect", "-f", "{{.State.Pid", &c],
        125,
        "unclosed action",
    );
    fails(&["inspect", "-f", "{{.State.Nope}}", &c], 1, "Nope");
}

/// `wait` blocks until the container exits and prints its exit code
/// (docker passes the code through on stdout; `wait` itself exits 0).
#[test]
fn wait_prints_the_exit_code() {
    require_root!();
    let c = name("waited");
    start(
        &c,
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 3' TERM; echo ready; sleep 1000 & wait",
        ],
    );
    // Its handler is in place once it says ready.
    let mut logs = said_ready(&c);
    let mut waiter = stage_process(STAGE)
        .args(["wait", &c])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(
        ps_row(&c).map(|r| r.contains(" Up ")),
        Some(true),
        "still running while wait waits"
    );
    ok(&["kill", "-s", "TERM", &c]);
    let mut line = String::new();
    BufReader::new(waiter.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "3\n");
    assert!(waiter.wait().unwrap().success());
    assert!(logs.wait().unwrap().success());
    // Waiting on a container that has exited answers at once.
    assert_eq!(ok(&["wait", &c]), "3\n");
    fails(
        &["wait", "no-such-box"],
        1,
        "no such container: no-such-box",
    );
}

/// The files process `pid` has open (the targets of /proc/PID/fd).
fn open_files(pid: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .collect()
}

/// `wait` on a `--rm` container prints its exit code, as docker's does,
/// although the container's record goes as it exits. (`wait` holds the
/// file the code is written to before it waits: the test kills the
/// container once `wait` has it open.)
#[test]
fn wait_on_an_rm_container_prints_its_exit_code() {
    require_root!();
    let c = name("waitrm");
    let id = start(&c, &["--rm"], &["sleep", "1000"]);
    let mut waiter = stage_process(STAGE)
        .args(["wait", &c])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let code_file = minibox_tests::test_env()
        .root
        .join("containers")
        .join(&id)
        .join("exit-code");
    while !open_files(waiter.id()).contains(&code_file) {
        assert!(
            waiter.try_wait().unwrap().is_none(),
            "wait ended before the container did"
        );
    }
    ok(&["kill", &c]);
    let mut line = String::new();
    BufReader::new(waiter.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "137\n");
    assert!(waiter.wait().unwrap().success());
    assert!(!code_file.parent().unwrap().exists(), "--rm removed it");
    fails(&["wait", &c], 1, "no such container");
}

/// `kill` sends SIGKILL unless `-s` names another signal; signals are
/// taken as docker takes them (USR1, SIGUSR1, 10). A stopped container
/// cannot be killed (1); a signal that does not exist is a bad value (125).
#[test]
fn kill_sends_the_signal_asked_for() {
    require_root!();
    let polite = name("usr1");
    start(
        &polite,
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 10' USR1; echo ready; sleep 1000 & wait",
        ],
    );
    // Its handler is in place once it says ready.
    let mut logs = said_ready(&polite);
    assert_eq!(
        ok(&["kill", "-s", "SIGUSR1", &polite]),
        format!("{}\n", &*polite)
    );
    assert_eq!(ok(&["wait", &polite]), "10\n");
    assert!(logs.wait().unwrap().success());
    assert!(ps_row(&polite).unwrap().contains("Exited (10)"));

    let plain = name("plain");
    start(&plain, &[], &["sleep", "1000"]);
    ok(&["kill", &plain]);
    assert_eq!(ok(&["wait", &plain]), "137\n", "SIGKILL by default");

    fails(&["kill", &plain], 1, "is not running");
    fails(&["kill", "no-such-box"], 1, "no such container");
    fails(&["kill", "-s", "NOPE", &plain], 125, "not a signal");
}

/// `rename` changes the name `ps`, `inspect` and every verb know it by; a
/// name in use is refused (1), a malformed one too (125). A running
/// container keeps its new name when it exits (its monitor does not write
/// the old one back).
#[test]
fn rename_changes_the_name_everywhere() {
    require_root!();
    let old = name("before");
    let new = name("after");
    let other = name("taken");
    let id = start(&old, &[], &["sleep", "1000"]);
    start(&other, &[], &["sleep", "1000"]);
    assert_eq!(ok(&["rename", &old, &new]), "");
    assert!(ps_row(&old).is_none());
    assert!(ps_row(&new).unwrap().starts_with(&id));
    assert_eq!(inspect(&new)["Name"], format!("/{}", &*new));
    fails(&["inspect", &old], 1, "no such container");
    fails(&["rename", &new, &other], 1, "is in use");
    fails(&["rename", &new, "bad name!"], 125, "invalid value");
    ok(&["stop", "-t", "0", "--trace", "off", &new]);
    assert!(ps_row(&new).unwrap().contains("Exited (137)"));
}

/// `top` lists the container's processes: host pids (PID, PPID) and pids
/// inside (CONTAINER PID), an `exec`'d one too.
#[test]
fn top_lists_host_and_container_pids() {
    require_root!();
    let c = name("topped");
    // It says ready once its child has become `sleep` (its comm changes at exec).
    start(&c, &[], &["sh", "-c", &format!("{SLEEPER_READY}; wait")]);
    let mut logs = said_ready(&c);
    let pid = inspect(&c)["State"]["Pid"].as_i64().unwrap();
    let out = ok(&["top", &c]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "CONTAINER PID", "TIME", "CMD"],
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    let init = rows
        .iter()
        .find(|r| r[1] == pid.to_string())
        .unwrap_or_else(|| panic!("PID 1's host pid {pid} missing:\n{out}"));
    assert_eq!(init[0], "root");
    assert_eq!(init[3], "1");
    let sleeper = rows
        .iter()
        .find(|r| r[5..] == ["sleep", "1000"])
        .unwrap_or_else(|| panic!("the sleep missing:\n{out}"));
    assert_eq!(sleeper[2], pid.to_string(), "its parent is PID 1");
    assert_ne!(sleeper[3], "1");
    assert_eq!(rows.len(), 2, "{out}");
    ok(&["stop", "-t", "0", "--trace", "off", &c]);
    assert!(logs.wait().unwrap().success());
    fails(&["top", &c], 1, "is not running");
}

/// `container prune -f` removes every stopped container and only those,
/// saying which, as docker does. In a state root and cgroup parent of its
/// own: the other tests' stopped containers are theirs, and a run sweeps
/// the empty cgroups of its parent that its own root has no lock for.
#[test]
fn container_prune_removes_stopped_containers_only() {
    require_root!();
    let root = tempfile::tempdir().unwrap();
    let parent = format!("{}-prune", minibox_tests::test_env().cgroup_parent);
    let command = |args: &[&str]| {
        stage_command(STAGE)
            .env("MINIBOX_ROOT", root.path())
            .env("MINIBOX_CGROUP_PARENT", &parent)
            .args(args)
            .output()
            .unwrap()
    };
    let in_root = |args: &[&str]| {
        let out = command(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let running = in_root(&["run", "-d", "--trace", "off", "busybox", "sleep", "1000"])
        .trim()
        .to_string();
    in_root(&[
        "run", "--trace", "off", "--name", "done1", "busybox", "true",
    ]);
    let failed = command(&[
        "run", "--trace", "off", "--name", "done2", "busybox", "false",
    ]);
    assert_eq!(failed.status.code(), Some(1));
    let ids = in_root(&["ps", "-a", "-q"]);
    assert_eq!(ids.lines().count(), 3, "{ids}");
    let out = in_root(&["container", "prune", "-f"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("Deleted Containers:"));
    let deleted: Vec<&str> = lines.by_ref().take_while(|l| !l.is_empty()).collect();
    assert_eq!(deleted.len(), 2, "{out}");
    assert!(!deleted.contains(&running.as_str()));
    assert!(lines.next().unwrap().starts_with("Total reclaimed space: "));
    assert_eq!(in_root(&["ps", "-a", "-q"]), format!("{running}\n"));
    // Without -f it asks; anything but y keeps them.
    in_root(&["run", "--trace", "off", "busybox", "true"]);
    let out = stage_command(STAGE)
        .env("MINIBOX_ROOT", root.path())
        .env("MINIBOX_CGROUP_PARENT", &parent)
        .args(["container", "prune"])
        .write_stdin("n\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stderr(&out).contains("Are you sure"));
    assert_eq!(in_root(&["ps", "-a", "-q"]).lines().count(), 2);
    in_root(&["rm", "-f", &running]);
    in_root(&["container", "prune", "-f"]);
    assert_eq!(in_root(&["ps", "-a", "-q"]), "");
    in_root(&["cleanup", "--cgroup-parent", &parent]);
}

/// The file that says whether a container's cgroup is frozen, and the
/// line it holds when it is: the freezer on v1, `cgroup.events` on v2.
fn freezer_of(id: &str) -> (std::path::PathBuf, &'static str) {
    let parent = &minibox_tests::test_env().cgroup_parent;
    match minibox_tests::cgroup_mode() {
        "v2" => (
            std::path::Path::new("/sys/fs/cgroup")
                .join(parent)
                .join(id)
                .join("cgroup.events"),
            "frozen 1",
        ),
        _ => (
            std::path::Path::new("/sys/fs/cgroup/freezer")
                .join(parent)
                .join(id)
                .join("freezer.state"),
            "FROZEN",
        ),
    }
}

fn is_frozen(id: &str) -> bool {
    let (file, frozen) = freezer_of(id);
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .any(|l| l == frozen)
}

/// `pause` freezes the container's cgroup: `ps` says `(Paused)`, `inspect`
/// says paused, `exec` is refused, a second `pause` fails (1); `unpause`
/// thaws it. `stop` of a paused container delivers its signal (the
/// container's TERM handler runs: exit 5, not 137).
#[test]
fn pause_freezes_and_unpause_thaws() {
    require_root!();
    let c = name("paused");
    let id = start(
        &c,
        &[],
        &[
            "sh",
            "-c",
            "trap 'exit 5' TERM; echo ready; sleep 1000 & wait",
        ],
    );
    // Its handler is in place once it says ready.
    let mut logs = said_ready(&c);
    assert!(!is_frozen(&id));
    assert_eq!(ok(&["pause", &c]), format!("{}\n", &*c));
    assert!(is_frozen(&id), "the cgroup is frozen");
    assert!(ps_row(&c).unwrap().contains("(Paused)"), "{:?}", ps_row(&c));
    let state = &inspect(&c)["State"];
    assert_eq!(state["Status"], "paused");
    assert_eq!(state["Paused"], true);
    assert_eq!(state["Running"], true);
    fails(&["exec", &c, "true"], 1, "is paused");
    fails(&["pause", &c], 1, "already paused");
    // commit of a paused container leaves it paused (commit thaws only
    // what it froze itself).
    let image = format!("pausedimage{}", std::process::id());
    ok(&["commit", "--trace", "off", &c, &image]);
    assert!(is_frozen(&id), "still paused after commit");
    ok(&["image", "rm", &image]);

    assert_eq!(ok(&["unpause", &c]), format!("{}\n", &*c));
    assert!(!is_frozen(&id));
    assert!(!ps_row(&c).unwrap().contains("Paused"));
    assert_eq!(
        ok(&["exec", "--trace", "off", &c, "echo", "thawed"]),
        "thawed\n"
    );
    fails(&["unpause", &c], 1, "is not paused");

    ok(&["pause", &c]);
    ok(&["stop", "-t", "5", "--trace", "off", &c]);
    assert!(
        ps_row(&c).unwrap().contains("Exited (5)"),
        "{:?}",
        ps_row(&c)
    );
    assert!(logs.wait().unwrap().success());
    assert_eq!(inspect(&c)["State"]["Paused"], false);
    fails(&["pause", &c], 1, "is not running");
}

/// An OOM kill reads as docker shows it: `Exited (137)` in `ps`,
/// `OOMKilled: true` in `inspect`; a container whose command exits 137
/// of its own accord is not marked.
#[test]
fn an_oom_kill_is_recorded_as_docker_records_it() {
    require_root!();
    let hog = name("oomed");
    let out = cli(&[
        "run",
        "--trace",
        "off",
        "--name",
        &hog,
        "-m",
        "32m",
        "busybox",
        "stress",
        "--vm",
        "1",
        "--vm-bytes",
        "200M",
        "--vm-keep",
        "--timeout",
        "60",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    let state = &inspect(&hog)["State"];
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137, "{state}");
    assert!(ps_row(&hog).unwrap().contains("Exited (137)"));

    let killed = name("selfkilled");
    let out = cli(&[
        "run", "--trace", "off", "--name", &killed, "-m", "32m", "busybox", "sh", "-c", "exit 137",
    ]);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    assert_eq!(inspect(&killed)["State"]["OOMKilled"], false);
}

/// `stats --no-stream` prints one table from the container's cgroup: a
/// busy container's CPU %, its memory against its `-m` limit, its PIDs.
#[test]
fn stats_no_stream_reads_the_cgroup() {
    require_root!();
    let c = name("busy");
    start(
        &c,
        &["-m", "64m"],
        &["sh", "-c", &format!("{SLEEPER_READY}; while :; do :; done")],
    );
    let mut logs = said_ready(&c);
    let out = ok(&["stats", "--no-stream", &c]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    let header: Vec<&str> = lines[0]
        .split("  ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "PIDS"
        ]
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[1], &*c);
    let cpu: f64 = row[2].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 1.0, "a busy loop uses CPU: {out}");
    assert_eq!(row[4], "/");
    assert_eq!(row[5], "64MiB", "the -m limit: {out}");
    assert_eq!(row[7], "2", "sh and its sleep: {out}");
    ok(&["kill", &c]);
    assert!(logs.wait().unwrap().success());
    fails(
        &["stats", "--no-stream", "no-such-box"],
        1,
        "no such container",
    );
}

/// `run --rm --trace off [--network none] FLAGS… busybox COMMAND…` on `stage`.
fn run_on(stage: &str, flags: &[&str], command: &[&str]) -> Output {
    let mut args = vec!["run", "--rm", "--trace", "off"];
    if minibox_tests::number(stage) >= 8 {
        args.extend(["--network", "none"]);
    }
    args.extend(flags);
    args.push("busybox");
    args.extend(command);
    cli_on(stage, &args)
}

fn run_ok(stage: &str, flags: &[&str], command: &[&str]) -> String {
    let out = run_on(stage, flags, command);
    assert!(
        out.status.success(),
        "{flags:?} {command:?}: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// `-w DIR`: the command starts there, made if missing (docker's rule),
/// also under stage 09's `--read-only` root; `inspect` shows it.
#[rstest]
#[case::stage_07("07-full", &[])]
#[case::stage_09_read_only("09-hardening", &["--read-only"])]
fn workdir_is_made_and_entered(#[case] stage: &str, #[case] extra: &[&str]) {
    require_root!();
    let mut flags = vec!["-w", "/made/for/it"];
    flags.extend(extra);
    assert_eq!(
        run_ok(
            stage,
            &flags,
            &["sh", "-c", "pwd; test -d /made/for/it && echo dir"]
        ),
        "/made/for/it\ndir\n"
    );
    let c = name(&format!("workdir{}", minibox_tests::number(stage)));
    start(&c, &["--workdir", "/srv"], &["sleep", "1000"]);
    assert_eq!(inspect(&c)["Config"]["WorkingDir"], "/srv");
    fails(
        &["run", "-w", "relative", "busybox", "true"],
        125,
        "not an absolute path",
    );
}

/// `--entrypoint PROGRAM`: the arguments after the image go to PROGRAM;
/// with none, PROGRAM alone runs (not `sh`).
#[test]
fn entrypoint_takes_the_commands_arguments() {
    require_root!();
    assert_eq!(
        run_ok(STAGE, &["--entrypoint", "echo"], &["hello", "world"]),
        "hello world\n"
    );
    assert_eq!(run_ok(STAGE, &["--entrypoint", "pwd"], &[]), "/\n");
    let c = name("entry");
    start(&c, &["--entrypoint", "sleep"], &["1000"]);
    let config = &inspect(&c)["Config"];
    assert_eq!(config["Entrypoint"], serde_json::json!(["sleep"]));
    assert_eq!(config["Cmd"], serde_json::json!(["1000"]));
}

/// `--stop-signal`: what `stop` sends first (the container's handler for
/// it decides the exit code); `--stop-timeout`: how long `stop` waits
/// before SIGKILL when `-t` is not given.
#[test]
fn stop_signal_and_stop_timeout_shape_stop() {
    require_root!();
    let c = name("usr1stop");
    start(
        &c,
        &["--stop-signal", "USR1"],
        &[
            "sh",
            "-c",
            "trap 'exit 12' USR1; echo ready; sleep 1000 & wait",
        ],
    );
    // Its handler is in place once it says ready.
    let mut logs = said_ready(&c);
    assert_eq!(inspect(&c)["Config"]["StopSignal"], "SIGUSR1");
    ok(&["stop", "--trace", "off", &c]);
    assert!(
        ps_row(&c).unwrap().contains("Exited (12)"),
        "{:?}",
        ps_row(&c)
    );
    assert!(logs.wait().unwrap().success());

    // PID 1 `sleep` has no TERM handler: stop waits its timeout, then kills.
    let stubborn = name("timeout");
    start(&stubborn, &["--stop-timeout", "1"], &["sleep", "1000"]);
    assert_eq!(inspect(&stubborn)["Config"]["StopTimeout"], 1);
    let out = cli(&["stop", "--trace", "tree", &stubborn]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("wait 1s for exit"),
        "{}",
        stderr(&out)
    );
    assert!(ps_row(&stubborn).unwrap().contains("Exited (137)"));
    fails(
        &["run", "--stop-signal", "NOPE", "busybox", "true"],
        125,
        "not a signal",
    );
}

/// `--label`: shown by `inspect`, selected by `ps --filter label=KEY` or
/// `label=KEY=VALUE` (several label filters must all match).
#[test]
fn labels_are_shown_and_filtered() {
    require_root!();
    let key = format!("tier{}", std::process::id());
    let web = name("labelweb");
    let db = name("labeldb");
    let web_id = start(
        &web,
        &["--label", &format!("{key}=web"), "-l", "solo"],
        &["sleep", "1000"],
    );
    let db_id = start(&db, &["--label", &format!("{key}=db")], &["sleep", "1000"]);
    assert_eq!(
        inspect(&web)["Config"]["Labels"],
        serde_json::json!({ key.clone(): "web", "solo": "" })
    );
    let ids = |filters: &[&str]| {
        let mut args = vec!["ps", "-a", "-q"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let mut ids: Vec<String> = ok(&args).lines().map(String::from).collect();
        ids.retain(|id| *id == web_id || *id == db_id);
        ids.sort();
        ids
    };
    let mut both = vec![web_id.clone(), db_id.clone()];
    both.sort();
    assert_eq!(ids(&[&format!("label={key}")]), both);
    assert_eq!(ids(&[&format!("label={key}=db")]), vec![db_id.clone()]);
    assert_eq!(
        ids(&[&format!("label={key}"), "label=solo"]),
        vec![web_id.clone()]
    );
    assert!(ids(&[&format!("label={key}=none")]).is_empty());
    ok(&["stop", "-t", "0", "--trace", "off", &db]);
    assert_eq!(
        ids(&[&format!("label={key}"), "status=exited"]),
        vec![db_id.clone()]
    );
    assert_eq!(
        ids(&[&format!("label={key}"), "status=running"]),
        vec![web_id.clone()]
    );
    fails(&["ps", "--filter", "colour=red"], 125, "unknown filter");
}

/// `--tmpfs PATH[:OPTIONS]`: a tmpfs with docker's default options
/// (noexec, nosuid, nodev), its size= honoured, `exec` turning noexec off;
/// on stage 07 and under stage 09's hardening.
#[rstest]
#[case::stage_07("07-full")]
#[case::stage_09("09-hardening")]
fn tmpfs_mounts_with_dockers_options(#[case] stage: &str) {
    require_root!();
    let script = "grep ' /scratch ' /proc/mounts; \
                  dd if=/dev/zero of=/scratch/big bs=1k count=2048 2>/dev/null || echo full";
    let out = run_ok(
        stage,
        &["--tmpfs", "/scratch:size=1m"],
        &["sh", "-c", script],
    );
    let mut lines = out.lines();
    let mount: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
    assert_eq!(mount[..3], ["tmpfs", "/scratch", "tmpfs"], "{out}");
    let options: Vec<&str> = mount[3].split(',').collect();
    for want in ["rw", "nosuid", "nodev", "noexec", "size=1024k"] {
        assert!(options.contains(&want), "{want} missing: {out}");
    }
    assert_eq!(lines.next(), Some("full"), "size=1m is a limit: {out}");
    let out = run_ok(
        stage,
        &["--tmpfs", "/scratch:exec"],
        &["sh", "-c", "grep ' /scratch ' /proc/mounts"],
    );
    assert!(!out.contains("noexec"), "{out}");
    fails(
        &["run", "--tmpfs", "scratch", "busybox", "true"],
        125,
        "absolute",
    );
}

/// `--ulimit NAME=SOFT[:HARD]`: set before the command starts (on stage
/// 09 too, before init gives up CAP_SYS_RESOURCE); `inspect` shows it.
#[rstest]
#[case::stage_07("07-full")]
#[case::stage_09("09-hardening")]
fn ulimit_sets_the_commands_limits(#[case] stage: &str) {
    require_root!();
    let out = run_ok(
        stage,
        &["--ulimit", "nofile=100:200", "--ulimit", "core=-1"],
        &["cat", "/proc/self/limits"],
    );
    let row = |name: &str| -> Vec<String> {
        let line = out
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}: {out}"));
        line[name.len()..]
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("Max open files")[..2], ["100", "200"]);
    assert_eq!(row("Max core file size")[..2], ["unlimited", "unlimited"]);
    let c = name(&format!("ulimited{}", minibox_tests::number(stage)));
    start(&c, &["--ulimit", "nproc=50"], &["sleep", "1000"]);
    assert_eq!(
        inspect(&c)["HostConfig"]["Ulimits"],
        serde_json::json!([{"Name": "nproc", "Soft": 50, "Hard": 50}])
    );
    fails(
        &["run", "--ulimit", "nofile=200:100", "busybox", "true"],
        125,
        "above the hard limit",
    );
}

/// `logs --tail N` (`-n N`): only the last N lines; with `-f`, those and
/// then what comes. `--tail all` is every line.
#[test]
fn logs_tail_prints_the_last_lines() {
    require_root!();
    let c = name("tailed");
    start(
        &c,
        &[],
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line$i; done; echo ready; sleep 1000",
        ],
    );
    let mut follower = said_ready(&c);
    assert_eq!(ok(&["logs", "--tail", "2", &c]), "line5\nready\n");
    assert_eq!(ok(&["logs", "-n", "1", &c]), "ready\n");
    assert_eq!(ok(&["logs", "--tail", "0", &c]), "");
    assert_eq!(ok(&["logs", "--tail", "all", &c]).lines().count(), 6);
    let mut tail_follow = stage_process(STAGE)
        .args(["logs", "-f", "--tail", "1", &c])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(tail_follow.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    ok(&["kill", &c]);
    line.clear();
    assert_eq!(
        reader.read_line(&mut line).unwrap(),
        0,
        "ends with the container"
    );
    assert!(tail_follow.wait().unwrap().success());
    assert!(follower.wait().unwrap().success());
    fails(&["logs", "--tail", "some", &c], 125, "expected a number");
}

/// Seconds since the epoch of an RFC 3339 UTC time `logs -t` printed.
fn epoch_of(stamp: &str) -> f64 {
    let ok = stamp.len() == 30 && stamp.ends_with('Z') && &stamp[10..11] == "T";
    assert!(ok, "not an RFC 3339 time: {stamp:?}");
    let number = |range: std::ops::Range<usize>| -> i64 { stamp[range].parse().unwrap() };
    let (y, m, d) = (number(0..4), number(5..7), number(8..10));
    // Days from civil (Howard Hinnant), as the library's inverse.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + number(11..13) * 3600 + number(14..16) * 60 + number(17..19);
    seconds as f64 + stamp[19..29].parse::<f64>().unwrap()
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `logs -t`: each line with the time it was printed (RFC 3339, UTC, as
/// docker), kept when the line was written, not when `logs` reads it: a
/// line printed after a moment the test marks carries a later time than
/// one printed before it. Plain `logs` is unchanged.
#[test]
fn logs_timestamps_are_the_times_lines_were_printed() {
    require_root!();
    let sync = tempfile::tempdir().unwrap();
    let volume = format!("{}:/sync", sync.path().display());
    let c = name("stamped");
    let before = now();
    start(
        &c,
        &["-v", &volume],
        &[
            "sh",
            "-c",
            "echo first; echo ready; until [ -e /sync/go ]; do :; done; echo second; sleep 1000",
        ],
    );
    let mut follower = said_ready(&c);
    let marked = now();
    std::fs::write(sync.path().join("go"), "").unwrap();
    let mut stamped = stage_process(STAGE)
        .args(["logs", "-f", "-t", &c])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(stamped.stdout.take().unwrap());
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        lines.push(line);
    }
    ok(&["kill", &c]);
    assert!(stamped.wait().unwrap().success());
    // Its reader is gone: the line after `ready` made it fail (EPIPE).
    let _ = follower.wait();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let split: Vec<(f64, &str)> = lines
        .iter()
        .map(|l| {
            let (stamp, text) = l.split_once(' ').unwrap();
            (epoch_of(stamp), text)
        })
        .collect();
    assert_eq!(
        split.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
        ["first\n", "ready\n", "second\n"]
    );
    assert!(before <= split[0].0 && split[0].0 <= marked, "{lines:?}");
    assert!(split[1].0 <= marked, "{lines:?}");
    assert!(marked <= split[2].0 && split[2].0 <= now(), "{lines:?}");
    assert_eq!(ok(&["logs", &c]), "first\nready\nsecond\n");
    let last = ok(&["logs", "-t", "--tail", "1", &c]);
    assert_eq!(last, lines[2], "the tail keeps its time");
}

/// `start` runs a stopped container again, on its own layer (what its
/// first run wrote is still there), with its flags (`-e`, `-w`) and its
/// current name, in the background (`logs`, `wait`); `start -a` in the
/// foreground, the container's exit code passed through. On stage 07 and
/// every later stage: each stage's own `run` does the work.
#[rstest]
#[case::stage_07("07-full")]
#[case::stage_08("08-network")]
#[case::stage_09("09-hardening")]
fn start_runs_a_stopped_container_again_on_its_layer(#[case] stage: &'static str) {
    require_root!();
    let first = name_on(stage, &format!("startme{}", minibox_tests::number(stage)));
    let renamed = name_on(stage, &format!("started{}", minibox_tests::number(stage)));
    let script = "echo run $X $(pwd) $(cat /count 2>/dev/null); echo x >> /count; exit 3";
    let mut args = vec!["run", "--trace", "off", "--name", &first];
    if minibox_tests::number(stage) >= 8 {
        args.extend(["--network", "none"]);
    }
    args.extend(["-e", "X=1", "-w", "/srv", "busybox", "sh", "-c", script]);
    let out = cli_on(stage, &args);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "run 1 /srv\n");
    let created = inspect_on(stage, &first)["Created"].clone();
    ok_on(stage, &["rename", &first, &renamed]);

    assert_eq!(
        ok_on(stage, &["start", "--trace", "off", &renamed]),
        format!("{}\n", &*renamed)
    );
    assert_eq!(ok_on(stage, &["wait", &renamed]), "3\n");
    assert_eq!(ok_on(stage, &["logs", &renamed]), "run 1 /srv x\n");

    let out = cli_on(stage, &["start", "-a", "--trace", "off", &renamed]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "run 1 /srv x x\n");
    let json = inspect_on(stage, &renamed);
    assert_eq!(json["Name"], format!("/{}", &*renamed));
    assert_eq!(json["Created"], created, "the same container");
    assert_eq!(json["State"]["ExitCode"], 3);
}

/// `restart` stops a running container and starts it again: a new PID 1,
/// running, the name printed. `start` of an unknown container fails (1);
/// `start -a` of two at once is refused (125).
#[test]
fn restart_stops_and_starts_again() {
    require_root!();
    let c = name("restarted");
    start(&c, &[], &["sleep", "1000"]);
    let before = inspect(&c)["State"]["Pid"].as_i64().unwrap();
    assert_eq!(
        ok(&["restart", "-t", "0", "--trace", "off", &c]),
        format!("{}\n", &*c)
    );
    let state = inspect(&c)["State"].clone();
    assert_eq!(state["Status"], "running");
    let after = state["Pid"].as_i64().unwrap();
    assert_ne!(after, before, "a new PID 1");
    assert_eq!(cmdline(after), "sleep 1000");
    assert!(ps_row(&c).unwrap().contains(" Up "));
    // start of a running container leaves it as it is.
    assert_eq!(ok(&["start", "--trace", "off", &c]), format!("{}\n", &*c));
    assert_eq!(inspect(&c)["State"]["Pid"], after);
    fails(&["start", "no-such-box"], 1, "no such container");
    fails(&["start", "-a", &c, &c], 125, "one container at a time");
}

/// `start` of a container that cannot run again is one line and exit 1:
/// one whose `-v` host directory has become a file (the reason is run's,
/// and `start -a` exits with run's 125), and one recorded by a minibox
/// older than `start` (its record has no run flags).
#[test]
fn start_that_cannot_run_says_why_in_one_line() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("vol");
    let c = name("cannotstart");
    let bind = format!("{}:/data", volume.display());
    ok(&[
        "run", "--trace", "off", "--name", &c, "-v", &bind, "busybox", "true",
    ]);
    std::fs::remove_dir(&volume).unwrap();
    std::fs::write(&volume, "now a file").unwrap();
    fails(
        &["start", "--trace", "off", &c],
        1,
        &format!("container {} did not start: volume {bind}: ", &*c),
    );
    let out = cli(&["start", "-a", "--trace", "off", &c]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a directory"));

    // A record as minibox wrote it before `start` (no run flags, no image
    // as typed), renamed into place whole.
    let old = name("oldrecord");
    let id = format!("{:0>12x}", std::process::id());
    let containers = minibox_tests::test_env().root.join("containers");
    let staging = containers.join(format!("{id}.staging"));
    std::fs::create_dir_all(&staging).unwrap();
    let record = serde_json::json!({
        "id": id, "name": &*old, "image": "busybox", "command": ["true"],
        "env": [], "hostname": id, "lower": minibox_tests::default_rootfs(),
        "created": 0.0, "status": "exited", "init": null, "exit_code": 0,
        "finished": 1.0, "oom_killed": false,
        "cgroup_parent": minibox_tests::test_env().cgroup_parent, "auto_remove": false
    });
    std::fs::write(staging.join("state.json"), record.to_string()).unwrap();
    std::fs::rename(&staging, containers.join(&id)).unwrap();
    assert!(ps_row(&old).unwrap().contains("Exited (0)"));
    fails(
        &["start", &old],
        1,
        "was made before minibox kept its run flags: it cannot be started again",
    );
    assert_eq!(inspect(&old)["State"]["Status"], "exited", "left as it was");
}

/// The busybox rootfs as a tarball (what `docker export` would give).
fn busybox_tarball() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut builder = tar::Builder::new(std::fs::File::create(file.path()).unwrap());
    builder.follow_symlinks(false);
    builder
        .append_dir_all(".", minibox_tests::default_rootfs())
        .unwrap();
    builder.finish().unwrap();
    file
}

/// `images`' row for REPOSITORY and TAG: [repository, tag, id, …].
fn image_row(repository: &str, tag: &str) -> Option<Vec<String>> {
    ok(&["images"]).lines().find_map(|l| {
        let cells: Vec<String> = l.split_whitespace().map(String::from).collect();
        (cells.first().map(String::as_str) == Some(repository)
            && cells.get(1).map(String::as_str) == Some(tag))
        .then_some(cells)
    })
}

/// `image import FILE|- [REPOSITORY[:TAG]]` in docker's order (stdin too,
/// printing the new id), the older NAME TARBALL order still; `images` is
/// docker's table; `image tag` gives an image another name, `image rm` of
/// one name leaves the others working; an image runs by name:tag or id.
#[test]
fn images_have_tags_and_import_takes_dockers_order() {
    require_root!();
    let tarball = busybox_tarball();
    let file = tarball.path().to_str().unwrap();
    let repo = format!("tagged{}", std::process::id());
    let v1 = format!("{repo}:v1");
    let out = ok(&["image", "import", file, &v1]);
    let id = out.trim().to_string();
    assert!(
        id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "import prints the id: {out:?}"
    );
    let header = ok(&["images"]).lines().next().unwrap().to_string();
    for column in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(column), "{header}");
    }
    assert_eq!(image_row(&repo, "v1").unwrap()[2], id);
    assert!(image_row(&repo, "latest").is_none(), "no tag but v1");

    let from_stdin = stage_command(STAGE)
        .args(["image", "import", "-", &format!("{repo}:v2")])
        .write_stdin(std::fs::read(tarball.path()).unwrap())
        .output()
        .unwrap();
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    assert!(image_row(&repo, "v2").is_some());

    let run_image = |image: &str| {
        let out = cli(&["run", "--rm", "--trace", "off", image, "echo", "ran"]);
        assert!(out.status.success(), "{image}: {}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(run_image(&v1), "ran\n");
    assert_eq!(run_image(&id), "ran\n", "by id");
    fails(&["run", "--rm", &repo, "true"], 125, "not found");

    let other = format!("other{}", std::process::id());
    assert_eq!(ok(&["image", "tag", &v1, &other]), "");
    assert_eq!(
        image_row(&other, "latest").unwrap()[2],
        id,
        "the same image"
    );
    assert_eq!(ok(&["image", "rm", &v1]), format!("Untagged: {v1}\n"));
    assert!(image_row(&repo, "v1").is_none());
    assert_eq!(run_image(&other), "ran\n", "its other name still runs");
    fails(&["image", "tag", "nosuchimage", "x"], 1, "not found");

    // Without a name: <none>, removed by its id.
    let unnamed = ok(&["image", "import", file]).trim().to_string();
    let row = ok(&["images"])
        .lines()
        .find(|l| l.contains(&unnamed))
        .map(String::from)
        .unwrap();
    assert!(row.starts_with("<none>"), "{row}");
    ok(&["image", "rm", &unnamed]);

    // minibox's older order still works.
    let old = format!("old{}", std::process::id());
    assert!(ok(&["image", "import", &old, file]).starts_with(&format!("imported {old}: ")));

    // Not a tarball on stdin: one line, once.
    let out = stage_command(STAGE)
        .args(["image", "import", "-", "junk"])
        .write_stdin("not a tarball, just text\n".repeat(40))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a failed import, docker's code");
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("stdin is not a tar archive"));
    fails(
        &["image", "import", file, "Bad:Name"],
        125,
        "invalid image name",
    );
    fails(&["image", "rm", "nosuchimage"], 1, "not found");
    for image in [other, old, format!("{repo}:v2")] {
        ok(&["image", "rm", &image]);
    }
}

/// `start` gives `run` its flags again from the directory `run` was typed
/// in: a relative `--env-file` means the same file.
#[test]
fn start_reads_relative_paths_where_run_did() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vars"), "FROM_FILE=here\n").unwrap();
    let c = name("relative");
    let out = stage_command(STAGE)
        .current_dir(dir.path())
        .args([
            "run",
            "--trace",
            "off",
            "--name",
            &c,
            "--env-file",
            "vars",
            "busybox",
            "sh",
            "-c",
            "echo $FROM_FILE",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "here\n");
    let out = cli(&["start", "-a", "--trace", "off", &c]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "here\n");
}

/// `exec --trace off NAME COMMAND…` on `stage`: its stdout.
fn exec_on(stage: &str, name: &str, command: &[&str]) -> String {
    let mut args = vec!["exec", "--trace", "off", name];
    args.extend(command);
    ok_on(stage, &args)
}

/// The names in a tar archive (`./` and trailing `/` dropped).
fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .expect("a tar archive")
        .map(|e| {
            let path = e.unwrap().path().unwrap().display().to_string();
            path.trim_start_matches("./")
                .trim_end_matches('/')
                .to_string()
        })
        .collect()
}

/// A tar archive of `entries`: (name, Some(content)) is a file,
/// (name, None) with `link` a symlink to it.
fn tar_of(entries: &[(&str, &str, Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, content, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match link {
            Some(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, name, target).unwrap();
            }
            None => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(content.len() as u64);
                // Set by hand: append_data refuses names with `..`, which
                // a hostile archive may well have.
                header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                builder.append(&header, content.as_bytes()).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// A container whose `/srv` holds a tree to copy and links that point at
/// the host if followed on the host: `/srv/evil -> /etc` (absolute) and
/// `/srv/up -> ../../../../../etc` (climbing).
const HOSTILE_TREE: &str = "mkdir -p /srv/d/sub /srv/in; echo one > /srv/d/a; \
    echo two > /srv/d/sub/b; chmod 640 /srv/d/sub/b; ln -s /etc/passwd /srv/d/pw; \
    ln -s /etc /srv/evil; ln -s ../../../../../etc /srv/up; echo ready; sleep 1000";

/// `cp` copies both ways, by docker's rules for DEST (into an existing
/// directory under SRC's name, `dir/.` its contents, a new name, `-` a tar
/// archive on stdout or stdin), links as links; every container path is
/// resolved inside the container's root, so the container's symlinks
/// (absolute or climbing with `..`), and those in an archive, lead to the
/// container's files and never to the host's. On stage 07 and 09.
#[rstest]
#[case::stage_07("07-full")]
#[case::stage_09("09-hardening")]
fn cp_copies_both_ways_inside_the_containers_root(#[case] stage: &'static str) {
    require_root!();
    let c = name_on(stage, &format!("copied{}", minibox_tests::number(stage)));
    start_on(stage, &c, &[], &["sh", "-c", HOSTILE_TREE]);
    let mut logs = said_ready_on(stage, &c);
    let host = tempfile::tempdir().unwrap();
    let at = |p: &str| host.path().join(p);
    let at_str = |p: &str| at(p).display().to_string();
    let marker = format!("minibox-cp-{}", std::process::id());

    // Out: a directory to a new name, links kept as links, modes kept.
    ok_on(stage, &["cp", &format!("{}:/srv/d", &*c), &at_str("out")]);
    assert_eq!(std::fs::read_to_string(at("out/a")).unwrap(), "one\n");
    assert_eq!(std::fs::read_to_string(at("out/sub/b")).unwrap(), "two\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(at("out/sub/b"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert_eq!(
        std::fs::read_link(at("out/pw")).unwrap(),
        std::path::Path::new("/etc/passwd"),
        "a link is copied as a link, not followed"
    );
    // Into an existing directory: under its own name; `dir/.`: contents.
    std::fs::create_dir(at("into")).unwrap();
    ok_on(stage, &["cp", &format!("{}:srv/d", &*c), &at_str("into")]);
    assert!(at("into/d/sub/b").is_file(), "a relative path is from /");
    std::fs::create_dir(at("contents")).unwrap();
    ok_on(
        stage,
        &["cp", &format!("{}:/srv/d/.", &*c), &at_str("contents")],
    );
    assert!(at("contents/a").is_file() && !at("contents/d").exists());

    // Through the container's symlinks: the container's /etc, not ours.
    let container_hostname = exec_on(stage, &c, &["cat", "/etc/hostname"]);
    for link in ["evil", "up"] {
        let copy = at_str(&format!("hostname-{link}"));
        ok_on(
            stage,
            &["cp", &format!("{}:/srv/{link}/hostname", &*c), &copy],
        );
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            container_hostname,
            "/srv/{link}/hostname"
        );
    }
    std::fs::write(at("planted"), "from the host\n").unwrap();
    for link in ["evil", "up"] {
        let dest = format!("{}:/srv/{link}/{marker}-{link}", &*c);
        ok_on(stage, &["cp", &at_str("planted"), &dest]);
        let host_etc = std::path::Path::new("/etc").join(format!("{marker}-{link}"));
        assert!(
            !host_etc.exists(),
            "{} was written on the host",
            host_etc.display()
        );
        assert_eq!(
            exec_on(stage, &c, &["cat", &format!("/etc/{marker}-{link}")]),
            "from the host\n"
        );
    }

    // `-`: a tar archive on stdout, of SRC under its own name.
    let out = cli_on(stage, &["cp", &format!("{}:/srv/d", &*c), "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names = tar_names(&out.stdout);
    names.sort();
    assert_eq!(names, ["d", "d/a", "d/pw", "d/sub", "d/sub/b"]);
    // … and from stdin, into a directory. A hostile archive's link to `/`
    // leads to the container's root, not the host's.
    let archive = tar_of(&[
        ("given", "by tar\n", None),
        ("root", "", Some("/")),
        (&format!("root/etc/{marker}-tar"), "through a link\n", None),
    ]);
    let out = stage_command(stage)
        .args(["cp", "-", &format!("{}:/srv/in", &*c)])
        .write_stdin(archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(exec_on(stage, &c, &["cat", "/srv/in/given"]), "by tar\n");
    assert_eq!(
        exec_on(stage, &c, &["cat", &format!("/etc/{marker}-tar")]),
        "through a link\n"
    );
    assert!(!std::path::Path::new("/etc")
        .join(format!("{marker}-tar"))
        .exists());
    // An entry that climbs out with `..` is refused (1).
    let out = stage_command(stage)
        .args(["cp", "-", &format!("{}:/srv/in", &*c)])
        .write_stdin(tar_of(&[(&format!("../../{marker}-climb"), "x", None)]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("climbs out"), "{}", stderr(&out));

    // Bad command lines (125) and failed copies (1).
    let two = [format!("{}:/a", &*c), format!("{}:/b", &*c)];
    let out = cli_on(stage, &["cp", &two[0], &two[1]]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("copying between containers is not supported"));
    let out = cli_on(stage, &["cp", &at_str("planted"), &at_str("elsewhere")]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("at least one container"));
    for (args, message) in [
        (
            vec![
                "cp".to_string(),
                format!("{}:/nonexistent", &*c),
                at_str("x"),
            ],
            "no such file or directory",
        ),
        (
            vec!["cp".into(), format!("{}:/srv/d", &*c), at_str("planted")],
            "cannot copy a directory to a file",
        ),
        (
            vec!["cp".into(), "no-such-box:/etc".into(), at_str("x")],
            "no such container",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = cli_on(stage, &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
    ok_on(stage, &["kill", &c]);
    assert!(logs.wait().unwrap().success());
}

/// `cp` out onto the host replaces what is at the destination, never
/// writes through it: a symlink there (to a host file) is replaced by the
/// container's file, and the host file it pointed at is left as it was.
#[test]
fn cp_to_the_host_replaces_links_it_finds_there() {
    require_root!();
    let c = name("replaced");
    start(
        &c,
        &[],
        &[
            "sh",
            "-c",
            "mkdir -p /srv/f; echo container > /srv/f/x; echo ready; sleep 1000",
        ],
    );
    let mut logs = said_ready(&c);
    let host = tempfile::tempdir().unwrap();
    let victim = host.path().join("victim");
    std::fs::write(&victim, "host file\n").unwrap();
    std::fs::create_dir_all(host.path().join("out/f")).unwrap();
    std::os::unix::fs::symlink(&victim, host.path().join("out/f/x")).unwrap();
    ok(&[
        "cp",
        &format!("{}:/srv/f", &*c),
        host.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file\n");
    let copied = host.path().join("out/f/x");
    assert!(!copied.is_symlink());
    assert_eq!(std::fs::read_to_string(copied).unwrap(), "container\n");
    ok(&["kill", &c]);
    assert!(logs.wait().unwrap().success());
}

/// `cp` of a stopped container works on its layer: a file copied in is
/// there when it runs again, and one it wrote can be copied out.
#[test]
fn cp_works_on_a_stopped_containers_layer() {
    require_root!();
    let c = name("stoppedcp");
    let out = cli(&[
        "run",
        "--trace",
        "off",
        "--name",
        &c,
        "busybox",
        "sh",
        "-c",
        "echo made > /made; cat /given 2>/dev/null || echo none",
    ]);
    assert_eq!(stdout(&out), "none\n");
    let host = tempfile::tempdir().unwrap();
    let given = host.path().join("given");
    std::fs::write(&given, "given\n").unwrap();
    ok(&["cp", given.to_str().unwrap(), &format!("{}:/", &*c)]);
    let made = host.path().join("made");
    ok(&["cp", &format!("{}:/made", &*c), made.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&made).unwrap(), "made\n");
    let out = cli(&["start", "-a", "--trace", "off", &c]);
    assert_eq!(stdout(&out), "given\n");
    // Nothing of the copies is left mounted on the host.
    let id = inspect(&c)["Id"].as_str().unwrap().to_string();
    assert!(!minibox_tests::host_mountinfo().contains(&id));
}

/// docker's `cp` sees a stopped container's volumes: a file copied to a
/// path under `-v HOST:/data` lands in HOST, and one the container wrote
/// there is copied out of it — not out of (or into) the layer beneath.
#[test]
fn cp_of_a_stopped_container_goes_through_its_volumes() {
    require_root!();
    let c = name("stoppedvol");
    let volume = tempfile::tempdir().unwrap();
    let bind = format!("{}:/data", volume.path().display());
    let out = cli(&[
        "run",
        "--trace",
        "off",
        "--name",
        &c,
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo written > /data/out",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let host = tempfile::tempdir().unwrap();
    let given = host.path().join("given");
    std::fs::write(&given, "given\n").unwrap();
    ok(&["cp", given.to_str().unwrap(), &format!("{}:/data/", &*c)]);
    assert_eq!(
        std::fs::read_to_string(volume.path().join("given")).unwrap(),
        "given\n",
        "cp into a stopped container's volume must land in the volume"
    );
    let copied = host.path().join("out");
    ok(&[
        "cp",
        &format!("{}:/data/out", &*c),
        copied.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&copied).unwrap(), "written\n");
    let id = inspect(&c)["Id"].as_str().unwrap().to_string();
    assert!(!minibox_tests::host_mountinfo().contains(&id));
}

/// `export` writes the container's filesystem as a tar archive, to stdout
/// or `-o FILE`: the image with the container's changes (a file it made
/// is there, one it deleted is not), without its volumes, as docker's.
/// A running container is frozen only while it is packed.
#[test]
fn export_writes_the_containers_filesystem() {
    require_root!();
    let c = name("exported");
    let volume = tempfile::tempdir().unwrap();
    std::fs::write(volume.path().join("in-volume"), "v").unwrap();
    let bind = format!("{}:/vol", volume.path().display());
    let id = start(
        &c,
        &["-v", &bind],
        &[
            "sh",
            "-c",
            "echo new > /made; rm /bin/vi; echo ready; sleep 1000",
        ],
    );
    let mut logs = said_ready(&c);
    let out = cli(&["export", &c]);
    assert!(out.status.success(), "{}", stderr(&out));
    let names = tar_names(&out.stdout);
    for want in ["made", "bin/busybox", "etc/passwd", "vol"] {
        assert!(names.iter().any(|n| n == want), "{want} missing");
    }
    assert!(
        !names.iter().any(|n| n == "bin/vi"),
        "a deleted file came back"
    );
    assert!(
        !names.iter().any(|n| n == "vol/in-volume"),
        "a volume's file"
    );
    assert!(!is_frozen(&id), "thawed after");
    assert_eq!(inspect(&c)["State"]["Status"], "running");

    ok(&["stop", "-t", "0", "--trace", "off", &c]);
    assert!(logs.wait().unwrap().success());
    let file = tempfile::NamedTempFile::new().unwrap();
    assert_eq!(ok(&["export", "-o", file.path().to_str().unwrap(), &c]), "");
    let from_file = tar_names(&std::fs::read(file.path()).unwrap());
    assert!(from_file.iter().any(|n| n == "made"));
    assert!(!from_file.iter().any(|n| n == "bin/vi"));
    fails(&["export", "no-such-box"], 1, "no such container");
}

/// `ps` takes docker's switches: `--format` (a template of docker's
/// fields, `table TEMPLATE` with docker's headers, `json`), `-n N` and
/// `-l` (the last created, whatever their state), `--no-trunc` (the whole
/// COMMAND), `-s` (SIZE: what the container wrote, and with its image).
#[test]
fn ps_takes_format_last_latest_no_trunc_and_size() {
    require_root!();
    let key = format!("psflags{}", std::process::id());
    let label = format!("{key}=yes");
    let filter = format!("label={key}");
    let older = name("psolder");
    let newer = name("psnewer");
    ok(&[
        "run", "--trace", "off", "--name", &older, "-l", &label, "busybox", "true",
    ]);
    let long = "dd if=/dev/zero of=/big bs=1k count=100 2>/dev/null; echo ready; sleep 1000";
    let newer_id = start(&newer, &["-l", &label], &["sh", "-c", long]);
    let mut logs = said_ready(&newer);
    let older_id = inspect(&older)["Id"].as_str().unwrap().to_string();

    let out = ok(&[
        "ps",
        "-a",
        "--filter",
        &filter,
        "--format",
        "{{.ID}} {{.Names}} {{.State}} {{.Labels}}",
    ]);
    assert_eq!(
        out,
        format!(
            "{newer_id} {} running {label}\n{older_id} {} exited {label}\n",
            &*newer, &*older
        )
    );
    let table = ok(&[
        "ps",
        "--filter",
        &filter,
        "--format",
        "table {{.ID}}\\t{{.Names}}",
    ]);
    assert_eq!(
        table,
        format!("CONTAINER ID   NAMES\n{newer_id}   {}\n", &*newer)
    );
    let json = ok(&["ps", "-a", "--filter", &filter, "--format", "json"]);
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 2, "{json}");
    assert_eq!(lines[1]["Names"], &*older);
    assert_eq!(
        lines[1]["Status"]
            .as_str()
            .map(|s| s.starts_with("Exited (0)")),
        Some(true)
    );

    // -n and -l: the newest, stopped ones included, without -a.
    assert_eq!(
        ok(&["ps", "-q", "-n", "2", "--filter", &filter]),
        format!("{newer_id}\n{older_id}\n")
    );
    assert_eq!(
        ok(&["ps", "-q", "-n", "1", "--filter", &filter]),
        format!("{newer_id}\n")
    );
    ok(&["stop", "-t", "0", "--trace", "off", &newer]);
    assert!(logs.wait().unwrap().success());
    let latest = ok(&["ps", "-l", "--filter", &filter]);
    assert_eq!(latest.lines().count(), 2, "{latest}");
    assert!(latest.lines().nth(1).unwrap().starts_with(&newer_id));

    // The COMMAND column is cut to 24 characters unless --no-trunc.
    let full = format!("\"sh -c {long}\"");
    let cut = ok(&["ps", "-l", "--filter", &filter]);
    assert!(!cut.contains(&full) && cut.contains('…'), "{cut}");
    let whole = ok(&["ps", "-l", "--no-trunc", "--filter", &filter]);
    assert!(whole.contains(&full), "{whole}");

    // -s: 102400 bytes written, in docker's units, then with the image.
    let sized = ok(&["ps", "-l", "-s", "--filter", &filter]);
    let mut lines = sized.lines();
    assert!(lines.next().unwrap().ends_with("SIZE"), "{sized}");
    let row = lines.next().unwrap();
    let size = &row[row.rfind("102kB").unwrap_or_else(|| panic!("{sized}"))..];
    assert!(
        size.starts_with("102kB (virtual ") && size.ends_with("MB)"),
        "{size}"
    );

    fails(&["ps", "--format", "{{.ID"], 125, "unclosed action");
    fails(&["ps", "-a", "--format", "{{.Nope}}"], 1, "Nope");
}

/// `-u UID[:GID]` on stages 07 and 08 (numbers; stage 09 takes names):
/// the command runs as that user, in group 0 when none is given (docker's
/// default for a user the image does not name), with no supplementary
/// groups; `exec` runs as the container's user unless its own `-u` says.
#[rstest]
#[case::stage_07("07-full")]
#[case::stage_08("08-network")]
fn user_runs_the_command_as_uid_and_gid(#[case] stage: &'static str) {
    require_root!();
    let ids = "id -u; id -g; id -G";
    assert_eq!(
        run_ok(stage, &["-u", "1000"], &["sh", "-c", ids]),
        "1000\n0\n0\n"
    );
    assert_eq!(
        run_ok(stage, &["-u", "1000:100"], &["sh", "-c", ids]),
        "1000\n100\n100\n"
    );
    let c = name_on(stage, &format!("user{}", minibox_tests::number(stage)));
    start_on(stage, &c, &["-u", "1000:100"], &["sleep", "1000"]);
    assert_eq!(inspect_on(stage, &c)["Config"]["User"], "1000:100");
    assert_eq!(exec_on(stage, &c, &["sh", "-c", ids]), "1000\n100\n100\n");
    assert_eq!(
        ok_on(
            stage,
            &["exec", "--trace", "off", "-u", "0", &c, "id", "-u"]
        ),
        "0\n"
    );
    let out = cli_on(stage, &["run", "-u", "nobody", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(stderr(&out).contains("expected UID"), "{}", stderr(&out));
}

/// `--init`: minibox's init stays PID 1 (`minibox-init`) and the command
/// is its child, as with docker's tini: an orphan re-parented to PID 1 is
/// reaped (no zombie is left), signals sent to the container reach the
/// command (a `sleep`-like command that is not PID 1 dies of `stop`'s
/// SIGTERM: 143, at once, not after the grace period), on stage 07 and
/// under stage 09's hardening.
#[rstest]
#[case::stage_07("07-full")]
#[case::stage_09("09-hardening")]
fn init_reaps_orphans_and_passes_signals_on(#[case] stage: &'static str) {
    require_root!();
    let c = name_on(stage, &format!("tini{}", minibox_tests::number(stage)));
    // The orphan: a subshell starts it in the background and exits, so it
    // is re-parented to PID 1. It prints its pid in the container.
    let script = "trap 'echo winched' WINCH; (sh -c 'echo orphan $$' &); echo ready; \
                  while :; do sleep 1000 & wait; done";
    start_on(stage, &c, &["--init"], &["sh", "-c", script]);
    assert_eq!(inspect_on(stage, &c)["HostConfig"]["Init"], true);
    let mut logs = stage_process(stage)
        .args(["logs", "-f", &c])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(logs.stdout.take().unwrap());
    let mut next_line = || {
        let mut line = String::new();
        assert_ne!(reader.read_line(&mut line).unwrap(), 0, "the log ended");
        line.trim_end().to_string()
    };
    let (mut ready, mut orphan) = (false, None);
    while !ready || orphan.is_none() {
        let line = next_line();
        ready |= line == "ready";
        if let Some(pid) = line.strip_prefix("orphan ") {
            orphan = Some(pid.to_string());
        }
    }
    let orphan = orphan.unwrap();
    let rows = |out: String| -> Vec<Vec<String>> {
        out.lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    // Wait (on a pidfd) until the orphan has exited, if it has not.
    let found = rows(ok_on(stage, &["top", &c]))
        .into_iter()
        .find(|r| r[3] == orphan);
    if let Some(row) = found {
        let pid: i32 = row[1].parse().unwrap();
        // SAFETY: pidfd_open takes a pid and flags only.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd >= 0 {
            use std::os::fd::{AsFd, FromRawFd};
            // SAFETY: the kernel just returned this fd.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
            let mut fds = [nix::poll::PollFd::new(
                fd.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE).unwrap();
        }
    }
    // PID 1 takes the lowest pending signal first: once the command has
    // the SIGWINCH (28) sent after the orphan's end, PID 1 has handled the
    // SIGCHLD (17) of that end.
    ok_on(stage, &["kill", "-s", "WINCH", &c]);
    while next_line() != "winched" {}
    // A zombie has left its cgroup (so `top`), not its parent's children.
    let processes = rows(ok_on(stage, &["top", &c]));
    let pid1 = processes.iter().find(|r| r[3] == "1").unwrap();
    let sh = processes.iter().find(|r| r[3] == "2").unwrap();
    assert_eq!(
        sh[5..7],
        ["sh", "-c"],
        "the command is PID 2: {processes:?}"
    );
    let children =
        std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", pid1[1])).unwrap();
    assert_eq!(
        children.split_whitespace().collect::<Vec<_>>(),
        [sh[1].as_str()],
        "PID 1's children: the command, and no zombie"
    );
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", pid1[1])).unwrap();
    assert_eq!(comm, "minibox-init\n", "{processes:?}");

    ok_on(stage, &["stop", "-t", "60", "--trace", "off", &c]);
    assert_eq!(ok_on(stage, &["wait", &c]), "143\n", "SIGTERM reached sh");
    assert!(logs.wait().unwrap().success());
}
