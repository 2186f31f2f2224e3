//! What each stage isolates, checked from inside the container.

use minibox_tests::{
    apply, compat_flags, every_stage, number, require_root, rstest, run_stage, stderr, stdout,
    Container,
};
use nix::sys::signal::{kill, Signal};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

#[apply(every_stage)]
fn the_command_is_pid_1(stage: &str) {
    require_root!();
    let out = run_stage(stage, ["sh", "-c", "echo $$"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\n");
}

#[apply(every_stage)]
fn the_hostname_is_the_containers_own(stage: &str) {
    require_root!();
    let host_before = nix::unistd::gethostname().unwrap();
    let out = run_stage(stage, ["--hostname", "box-test", "sh", "-c", "hostname"]);
    assert_eq!(stdout(&out), "box-test\n", "{}", stderr(&out));
    assert_eq!(nix::unistd::gethostname().unwrap(), host_before);

    // Without --hostname: a generated 12-hex-digit container id.
    let out = run_stage(stage, ["sh", "-c", "hostname"]);
    let name = stdout(&out);
    let name = name.trim_end();
    assert!(
        name.len() == 12 && name.bytes().all(|b| b.is_ascii_hexdigit()),
        "unexpected default hostname {name:?}"
    );
}

/// Stage 01 still sees the host's processes through the host's /proc;
/// from stage 02 on, only the container's.
#[apply(every_stage)]
fn which_processes_are_visible(stage: &str) {
    require_root!();
    let sees_host = number(stage) < 2;
    // The host's processes come and go while `ls` reads /proc: an entry
    // that vanished under it is not a failure.
    let out = run_stage(stage, ["sh", "-c", "ls /proc 2>/dev/null; true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pids: Vec<u32> = stdout(&out)
        .split_whitespace()
        .filter_map(|entry| entry.parse().ok())
        .collect();
    let our_pid = std::process::id();
    assert_eq!(
        pids.contains(&our_pid),
        sees_host,
        "test pid {our_pid} in the container's /proc: {pids:?}"
    );
    if !sees_host {
        assert!(pids.contains(&1), "{pids:?}");
        assert!(pids.len() <= 3, "more processes than sh and ls: {pids:?}");
    }
}

/// Every argument arrives byte for byte: through argv (01, 02) and through
/// the command pipe (03+).
#[apply(every_stage)]
fn arguments_arrive_byte_for_byte(stage: &str) {
    require_root!();
    let tricky: Vec<OsString> = vec![
        "a  b".into(),
        "".into(),
        "q'\"$HOME\\".into(),
        "héllo wörld".into(),
        " leading and trailing ".into(),
        "--not-a-flag".into(),
        OsString::from_vec(vec![0xff, b'x', 0xfe]),
    ];
    let mut args: Vec<OsString> = [
        "sh",
        "-c",
        r#"for a in "$@"; do printf '[%s]' "$a"; done"#,
        "sh",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.extend(tricky.iter().cloned());
    let out = run_stage(stage, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut expected = Vec::new();
    for arg in &tricky {
        expected.push(b'[');
        expected.extend_from_slice(arg.as_encoded_bytes());
        expected.push(b']');
    }
    assert_eq!(out.stdout, expected);
}

#[apply(every_stage)]
#[case::success(&["true"], 0, None)]
#[case::failure(&["sh", "-c", "exit 3"], 3, None)]
#[case::not_found(&["no-such-command-xyz"], 127, Some("no-such-command-xyz: command not found"))]
#[case::not_executable(&["/etc/passwd"], 126, Some("/etc/passwd: permission denied"))]
fn exit_codes(
    stage: &str,
    #[case] command: &[&str],
    #[case] code: i32,
    #[case] message: Option<&str>,
) {
    require_root!();
    let out = run_stage(stage, command);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    if let Some(message) = message {
        let last = stderr(&out).lines().last().unwrap_or_default().to_string();
        assert!(
            last == format!("{stage}: {message}")
                || last.starts_with(&format!("{stage}: {message}")),
            "last line: {last:?}"
        );
    }
}

/// SIGTERM to `run` reaches the container; a PID 1 that handles it exits
/// on its own terms.
#[apply(every_stage)]
fn sigterm_to_run_is_forwarded(stage: &str) {
    require_root!();
    let mut args = compat_flags(stage);
    args.extend(
        [
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; sleep 1000 & wait",
        ]
        .map(Into::into),
    );
    let mut container = Container::start(stage, args);
    kill(container.pid(), Signal::SIGTERM).unwrap();
    container.wait_for_forward("SIGTERM");
    assert_eq!(container.wait(), Some(42));
}

/// PID 1 ignores signals it has no handler for, so the first SIGTERM does
/// nothing; the second makes run send SIGKILL: exit 128 + 9.
#[apply(every_stage)]
fn a_second_signal_kills(stage: &str) {
    require_root!();
    let mut args = compat_flags(stage);
    args.extend(["sh", "-c", "echo ready; exec sleep 1000"].map(Into::into));
    let mut container = Container::start(stage, args);
    kill(container.pid(), Signal::SIGTERM).unwrap();
    container.wait_for_forward("SIGTERM");
    kill(container.pid(), Signal::SIGTERM).unwrap();
    container.wait_for_forward("SIGKILL");
    assert_eq!(container.wait(), Some(137));
}

#[apply(every_stage)]
fn the_network_namespace_has_only_lo(stage: &str) {
    require_root!();
    let out = run_stage(stage, ["cat", "/proc/net/dev"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let interfaces: Vec<String> = stdout(&out)
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|name| name.trim().to_string())
        .collect();
    assert_eq!(interfaces, ["lo"]);
}

#[test]
fn host_files_are_invisible_after_pivot_root() {
    require_root!();
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("host-only-marker");
    std::fs::write(&marker, "host").unwrap();
    let marker = marker.to_str().unwrap();
    // Stage 03 (no pivot_root) sees the host file; stage 04 does not.
    let out = run_stage("03-pipe-args", ["cat", marker]);
    assert_eq!(stdout(&out), "host");
    let out = run_stage(
        "04-pivot-root",
        [
            "sh",
            "-c",
            &format!("test -e {marker} && echo visible || echo gone; ls /"),
        ],
    );
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("gone"));
    // `/` is the rootfs: the same entries.
    let mut expected: Vec<String> = std::fs::read_dir(minibox_tests::default_rootfs())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    expected.sort();
    assert_eq!(lines.map(String::from).collect::<Vec<_>>(), expected);
}

#[test]
fn sys_is_read_only_after_pivot_root() {
    require_root!();
    let out = run_stage(
        "04-pivot-root",
        ["sh", "-c", "echo 1 > /sys/kernel/profiling 2>&1; echo $?"],
    );
    assert_ne!(stdout(&out).trim(), "0");
}
