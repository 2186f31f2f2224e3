//! Stage 07: detached containers and their lifecycle, as docker's.

use minibox_tests::{
    redact_trace, require_root, stage_command, stage_process, stderr, stdout, test_env,
};
use predicates::prelude::*;
use rstest::rstest;
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};

const STAGE: &str = "07-full";

fn cli(args: &[&str]) -> Output {
    stage_command(STAGE)
        .args(args)
        .output()
        .expect("run 07-full")
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// A unique container name for this test, removed (`rm -f`) when the test
/// ends, pass or fail: a failing test must not leave a container running.
fn name(tag: &str) -> Named {
    Named(format!("{tag}-{}", std::process::id()))
}

struct Named(String);

impl std::ops::Deref for Named {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = cli(&["rm", "-f", &self.0]);
    }
}

/// `ps -a` rows of the container named `name`.
fn ps_row(name: &str) -> Option<String> {
    ok(&["ps", "-a"])
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .map(String::from)
}

fn assert_nothing_left(id: &str) {
    assert!(
        !test_env().root.join("containers").join(id).exists(),
        "container dir of {id} left"
    );
    for tree in ["", "cpu", "cpuset", "memory", "pids"] {
        let dir = std::path::Path::new("/sys/fs/cgroup")
            .join(tree)
            .join(&test_env().cgroup_parent)
            .join(id);
        assert!(!dir.exists(), "{} left", dir.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id), "a mount of {id} is left");
}

#[test]
fn the_full_lifecycle() {
    require_root!();
    let web = name("web");
    let script = "trap 'exit 3' TERM; echo started $GREETING; sleep 1000 & wait";
    let id = ok(&[
        "run",
        "-d",
        "--trace",
        "off",
        "--name",
        &web,
        "-e",
        "GREETING=hi",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 12, "run -d prints the id: {id:?}");

    // ps shows it Up, with its image and PID.
    let row = ps_row(&web).expect("ps -a lists it");
    assert!(
        row.starts_with(&id) && row.contains("busybox") && row.contains(" Up "),
        "{row}"
    );
    assert!(ok(&["ps", "-q"]).lines().any(|l| l == id));

    // logs -f shows the output as it comes.
    let mut logs = stage_process(STAGE)
        .args(["logs", "-f", &web])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(logs.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "started hi\n");

    // exec is in the same PID namespace (PID 1 is the container's sh), the
    // same UTS namespace, and has the container's environment.
    let seen = ok(&[
        "exec",
        "--trace",
        "off",
        &web,
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname; echo $GREETING",
    ]);
    let lines: Vec<&str> = seen.lines().collect();
    assert!(lines[0].starts_with("sh -c trap"), "{seen}");
    assert_eq!(lines[1], id);
    assert_eq!(lines[2], "hi");

    // stop: the container handles SIGTERM and exits 3; logs -f ends with it.
    assert_eq!(ok(&["stop", "--trace", "off", &web]), format!("{web}\n"));
    assert!(logs.wait().unwrap().success());
    let row = ps_row(&web).unwrap();
    assert!(row.contains("Exited (3)"), "{row}");
    assert!(
        !ok(&["ps", "-q"]).lines().any(|l| l == id),
        "ps without -a lists only running containers"
    );
    assert_eq!(ok(&["logs", &web]), "started hi\n");

    // rm leaves nothing.
    assert_eq!(ok(&["rm", &web]), format!("{web}\n"));
    assert!(ps_row(&web).is_none());
    assert_nothing_left(&id);
}

/// PID 1 ignores SIGTERM when it has no handler: `stop -t 1` falls back to
/// SIGKILL (137); one that handles it exits on its own terms.
#[rstest]
#[case::ignores_sigterm("exec sleep 1000", "Exited (137)")]
#[case::handles_sigterm("trap 'exit 0' TERM; : > /trap-set; sleep 1000 & wait", "Exited (0)")]
fn stop_falls_back_to_sigkill(#[case] script: &str, #[case] status: &str) {
    require_root!();
    let c = name(if status.contains("137") {
        "stubborn"
    } else {
        "polite"
    });
    ok(&[
        "run", "-d", "--trace", "off", "--name", &c, "busybox", "sh", "-c", script,
    ]);
    if script.contains("trap") {
        // run -d returns as the shell starts, maybe before it has set its
        // trap: a TERM then would meet no handler. Wait for the shell's word.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !cli(&["exec", &c, "test", "-e", "/trap-set"])
            .status
            .success()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the trap was never set"
            );
        }
    }
    let out = cli(&["stop", "-t", "1", "--trace", "json", &c]);
    assert!(out.status.success());
    let killed = stderr(&out).contains("SIGKILL");
    assert_eq!(killed, status.contains("137"), "{}", stderr(&out));
    assert!(ps_row(&c).unwrap().contains(status));
    ok(&["rm", &c]);
}

/// Twenty containers started at once from parallel threads: all listed,
/// all stopped, all removed, the state consistent throughout.
#[test]
fn twenty_concurrent_containers() {
    require_root!();
    let names: Vec<Named> = (0..20).map(|i| name(&format!("many{i}"))).collect();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                s.spawn(move || {
                    ok(&[
                        "run", "-d", "--trace", "off", "--name", n, "busybox", "sleep", "1000",
                    ])
                    .trim()
                    .to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let running = ok(&["ps", "-q"]);
    for id in &ids {
        assert!(running.lines().any(|l| l == id), "{id} missing from ps");
    }
    std::thread::scope(|s| {
        for n in &names {
            s.spawn(move || ok(&["stop", "-t", "0", "--trace", "off", n]));
        }
    });
    for n in &names {
        assert!(ps_row(n).unwrap().contains("Exited (137)"));
    }
    std::thread::scope(|s| {
        for n in &names {
            s.spawn(move || ok(&["rm", n]));
        }
    });
    for id in &ids {
        assert_nothing_left(id);
    }
}

#[test]
fn env_flags_and_env_files_reach_the_container_and_exec() {
    require_root!();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "# a comment\nFROM_FILE=file\nBOTH=file\n\n").unwrap();
    let out = ok(&[
        "run",
        "--rm",
        "--trace",
        "off",
        "-e",
        "BOTH=flag",
        "-e",
        "EMPTY=",
        "--env-file",
        file.path().to_str().unwrap(),
        "busybox",
        "sh",
        "-c",
        "echo $FROM_FILE $BOTH [$EMPTY] $HOME",
    ]);
    assert_eq!(out, "file flag [] /root\n");
}

#[test]
fn commit_then_run_sees_the_change() {
    require_root!();
    let c = name("committed");
    let image = format!("img-{}", std::process::id());
    ok(&[
        "run",
        "--trace",
        "off",
        "--name",
        &c,
        "busybox",
        "sh",
        "-c",
        "echo kept > /etc/motd; rm /bin/vi",
    ]);
    assert_eq!(ok(&["commit", &c, &image]), format!("{image}\n"));
    // `images` is docker's table: REPOSITORY first.
    assert!(ok(&["images"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(image.as_str())));
    let out = ok(&[
        "run",
        "--rm",
        "--trace",
        "off",
        &image,
        "sh",
        "-c",
        "cat /etc/motd; test -e /bin/vi || echo no-vi",
    ]);
    assert_eq!(out, "kept\nno-vi\n");
    ok(&["rm", &c]);
    ok(&["image", "rm", &image]);
}

/// A run whose monitor was SIGKILLed (a crash): `ps -a` says so, `rm`
/// removes it, cgroup included.
#[test]
fn a_crashed_monitor_is_reported_and_removable() {
    require_root!();
    let c = name("orphan");
    let id = ok(&[
        "run", "-d", "--trace", "off", "--name", &c, "-m", "32m", "busybox", "sleep", "1000",
    ])
    .trim()
    .to_string();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            test_env()
                .root
                .join("containers")
                .join(&id)
                .join("state.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let init = state["init"]["pid"].as_i64().unwrap();
    // The monitor is init's parent.
    let stat = std::fs::read_to_string(format!("/proc/{init}/stat")).unwrap();
    let ppid: i32 = stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let pidfd = rustix_pidfd(ppid);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ppid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_exit(pidfd);
    let init_fd = rustix_pidfd(init as i32);
    wait_exit(init_fd); // init dies with its monitor (PR_SET_PDEATHSIG)
    let row = ps_row(&c).unwrap();
    assert!(row.contains("Dead"), "{row}");
    ok(&["rm", &c]);
    assert_nothing_left(&id);

    // A directory without any state at all (killed mid-start), in a state
    // root of its own: any `run` beside this test would sweep it away.
    let root = tempfile::tempdir().unwrap();
    let in_root = |args: &[&str]| {
        let out = stage_command(STAGE)
            .env("MINIBOX_ROOT", root.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let broken = "0123456789ab";
    std::fs::create_dir_all(root.path().join("containers").join(broken)).unwrap();
    assert!(in_root(&["ps", "-a"])
        .lines()
        .any(|l| l.starts_with(broken) && l.contains("Dead")));
    in_root(&["rm", broken]);
    assert!(!root.path().join("containers").join(broken).exists());
}

/// A pidfd (or None if the process is already gone).
fn rustix_pidfd(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags only.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: the kernel just returned this fd.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Block until the pidfd's process has exited (poll: readable at exit).
fn wait_exit(pidfd: Option<std::os::fd::OwnedFd>) {
    use std::os::fd::AsFd;
    if let Some(fd) = pidfd {
        let mut fds = [nix::poll::PollFd::new(
            fd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE).unwrap();
    }
}

/// Bad input: one line naming the problem, exit 125 (`run`, and a command
/// line docker would reject); a verb whose action fails: one line, exit 1
/// (docker's code for `logs`, `stop`, `exec`, `rm` that could not act).
#[test]
fn bad_input_gets_one_line_and_125() {
    require_root!();
    let c = name("busy");
    ok(&[
        "run", "-d", "--trace", "off", "--name", &c, "busybox", "sleep", "1000",
    ]);
    let stopped = name("stopped");
    ok(&[
        "run", "--trace", "off", "--name", &stopped, "busybox", "true",
    ]);
    let nobody = "no such container: no-such-box".to_string();
    for (code, args, message) in [
        (1, vec!["logs", "no-such-box"], nobody.clone()),
        (1, vec!["stop", "no-such-box"], nobody.clone()),
        (1, vec!["exec", "no-such-box", "true"], nobody.clone()),
        (1, vec!["rm", "no-such-box"], nobody.clone()),
        (
            1,
            vec!["commit", "no-such-box", "someimage"],
            nobody.clone(),
        ),
        (
            1,
            vec!["exec", &stopped, "true"],
            format!("container {stopped} is not running"),
        ),
        (1, vec!["rm", &c], format!("container {c} is running")),
        (1, vec!["logs", &stopped], "has no log".into()),
        (
            125,
            vec!["commit", &stopped, "Bad Name"],
            "invalid image name".into(),
        ),
        (
            125,
            vec!["run", "-d", "--name", &c, "busybox", "true"],
            format!("the name \"{c}\" is in use"),
        ),
        (
            125,
            vec!["run", "-d", "-i", "busybox", "true"],
            "does not mix".into(),
        ),
        (
            125,
            vec!["run", "-e", "NOEQUALS", "busybox", "true"],
            "expected KEY=VALUE".into(),
        ),
        (
            125,
            vec!["run", "--name", "bad name!", "busybox", "true"],
            "invalid value".into(),
        ),
    ] {
        let out = stage_command(STAGE)
            .args(&args)
            .assert()
            .code(code)
            .stderr(predicate::str::contains(message.as_str()));
        let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    // exec passes on the command's own codes: 127 for one not found.
    stage_command(STAGE)
        .args(["exec", "--trace", "off", &c, "no-such-command"])
        .assert()
        .code(127)
        .stderr(predicate::str::contains("command not found"));
    ok(&["rm", "-f", &c]);
    ok(&["rm", &stopped]);
}

/// The traces of `run -d`, `exec` and `stop`, ids and pids redacted.
#[test]
fn lifecycle_traces() {
    require_root!();
    let c = name("traced");
    let parent = format!("{}-trace07", test_env().cgroup_parent);
    let out = stage_command(STAGE)
        .args([
            "run",
            "-d",
            "--hostname",
            "snapbox",
            "--cgroup-parent",
            &parent,
            "--name",
            &c,
            "busybox",
            "sleep",
            "1000",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    let redact = |text: &str| {
        redact_trace(text)
            .replace(&*c, "[NAME]")
            .replace(&id, "[ID]")
    };
    let run_trace = redact(&stderr(&out));
    let out = cli(&["exec", &c, "true"]);
    assert!(out.status.success());
    let exec_trace = redact(&stderr(&out));
    let out = cli(&["stop", "-t", "1", &c]);
    let stop_trace = redact(&stderr(&out));
    ok(&["rm", &c]);
    let mode = minibox_tests::cgroup_mode();
    insta::assert_snapshot!(format!("trace_07_run_detached_{mode}"), run_trace);
    insta::assert_snapshot!(format!("trace_07_exec_{mode}"), exec_trace);
    insta::assert_snapshot!("trace_07_stop", stop_trace);
}
