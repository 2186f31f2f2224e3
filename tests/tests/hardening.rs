//! Stage 09's defaults and flags, one at a time, from inside the container:
//! what `/proc/1/status` says, what the flags change, and that bad flags are
//! one line, exit 125, and leave nothing behind. (The escapes these close
//! are in escapes.rs.)

use minibox_tests::{
    cgroup_mode, compat_flags, require_root, stage_command, stderr, stdout, test_env,
};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

const STAGE: &str = "09-hardening";

/// `09-hardening run --rm --network none FLAGS… busybox sh -c SCRIPT`.
fn run(flags: &[&str], script: &str) -> Output {
    run_in(&test_env().root, flags, script)
}

/// The same with its own state root.
fn run_in(root: &std::path::Path, flags: &[&str], script: &str) -> Output {
    // Another state root needs another cgroup parent: a run removes the
    // cgroups under its parent that its state root does not know.
    let mut parent = test_env().cgroup_parent.clone();
    if root != test_env().root {
        parent.push_str("-own-root");
    }
    stage_command(STAGE)
        .env("MINIBOX_ROOT", root)
        .env("MINIBOX_CGROUP_PARENT", parent)
        .arg("run")
        .args(compat_flags(STAGE))
        .args(["--trace", "off"])
        .args(flags)
        .args(["sh", "-c", script])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run 09-hardening")
}

fn ok(flags: &[&str], script: &str) -> String {
    let out = run(flags, script);
    assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
    stdout(&out)
}

fn status_line(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
        .to_string()
}

#[test]
fn the_defaults_are_dockers() {
    require_root!();
    let status = ok(&[], "cat /proc/1/status");
    assert_eq!(status_line(&status, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_line(&status, "CapEff"), "00000000a80425fb");
    assert_eq!(status_line(&status, "CapPrm"), "00000000a80425fb");
    assert_eq!(status_line(&status, "CapInh"), "0000000000000000");
    assert_eq!(status_line(&status, "CapAmb"), "0000000000000000");
    assert_eq!(status_line(&status, "Seccomp"), "2");
    assert_eq!(status_line(&status, "NoNewPrivs"), "0");
    // clone3 is ENOSYS (glibc falls back), a namespace is EPERM.
    let out = ok(&[], "unshare -u true 2>&1; echo rc=$?");
    assert!(
        out.contains("rc=1") && out.contains("Operation not permitted"),
        "{out}"
    );
    let mounts = ok(&[], "cat /proc/self/mountinfo");
    for path in [
        " /dev/shm ",
        " /dev/mqueue ",
        " /proc/sys ",
        " /sys/firmware ",
    ] {
        assert!(mounts.contains(path), "{path} is not mounted: {mounts}");
    }
}

#[test]
fn cap_add_and_cap_drop_change_the_bounding_set() {
    require_root!();
    let out = ok(
        &["--cap-add", "SYS_ADMIN"],
        "grep CapBnd /proc/1/status; mkdir -p /m; mount -t tmpfs t /m && echo mounted",
    );
    assert!(out.contains("00000000a82425fb"), "{out}");
    assert!(out.contains("mounted"), "{out}");
    let out = ok(
        &["--cap-drop", "ALL"],
        "grep CapBnd /proc/1/status; chown 1 /tmp 2>&1 || echo refused",
    );
    assert!(
        out.contains("0000000000000000") && out.contains("refused"),
        "{out}"
    );
}

#[test]
fn privileged_keeps_everything_and_says_so() {
    require_root!();
    let status = ok(&["--privileged"], "cat /proc/1/status");
    assert_eq!(status_line(&status, "Seccomp"), "0");
    assert_ne!(status_line(&status, "CapBnd"), "00000000a80425fb");
    let mounts = ok(&["--privileged"], "cat /proc/self/mountinfo");
    assert!(
        !mounts.contains(" /proc/sys "),
        "masked with --privileged: {mounts}"
    );
}

#[test]
fn users_come_from_the_image_and_lose_capabilities() {
    require_root!();
    let out = ok(&["-u", "nobody"], "id; grep CapEff /proc/self/status");
    assert!(out.contains("uid=65534(nobody) gid=65534"), "{out}");
    assert!(out.contains("0000000000000000"), "{out}");
    let out = ok(&["-u", "1234:5678"], "id -u; id -g");
    assert_eq!(out, "1234\n5678\n");
}

#[test]
fn no_new_privileges_makes_a_setuid_binary_gain_nothing() {
    require_root!();
    // A setuid-root copy of the probe, in a volume: `euid` prints the
    // effective uid it runs with.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let probe = dir.path().join("suid_probe");
    std::fs::write(&probe, minibox_tests::ESCAPE_PROBE).expect("write");
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let volume = format!("{}:/p:ro", dir.path().display());
    let plain = ok(&["-u", "nobody", "-v", &volume], "/p/suid_probe euid");
    assert_eq!(
        plain.trim(),
        "euid 0",
        "setuid works without no-new-privileges"
    );
    let nnp = ok(
        &[
            "-u",
            "nobody",
            "-v",
            &volume,
            "--security-opt",
            "no-new-privileges",
        ],
        "/p/suid_probe euid; grep NoNewPrivs /proc/self/status",
    );
    assert!(nnp.starts_with("euid 65534"), "{nnp}");
    assert!(nnp.contains("NoNewPrivs:\t1"), "{nnp}");
}

#[test]
fn read_only_oom_score_and_sysctls() {
    require_root!();
    let out = ok(
        &["--read-only"],
        "touch /x 2>&1; touch /dev/shm/x && echo shm-ok",
    );
    assert!(
        out.contains("Read-only file system") && out.contains("shm-ok"),
        "{out}"
    );
    let out = ok(&["--oom-score-adj", "500"], "cat /proc/1/oom_score_adj");
    assert_eq!(out.trim(), "500");
    let out = ok(
        &["--sysctl", "net.ipv4.ip_forward=1"],
        "cat /proc/sys/net/ipv4/ip_forward",
    );
    assert_eq!(out.trim(), "1");
}

#[test]
fn the_cgroup_namespace_is_private_on_v2_only() {
    require_root!();
    let out = ok(&[], "cat /proc/self/cgroup");
    if cgroup_mode() == "v2" {
        assert_eq!(out.trim(), "0::/", "{out}");
    } else {
        // docker keeps the host's cgroup namespace on v1: the paths show.
        assert!(out.contains(&test_env().cgroup_parent), "{out}");
    }
}

#[test]
fn seccomp_profiles_from_docker_json() {
    require_root!();
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Allows everything but making directories.
    let profile = dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .expect("write");
    let opt = format!("seccomp={}", profile.display());
    let out = ok(
        &["--security-opt", &opt],
        "mkdir /tmp/d 2>&1; echo rc=$?; touch /tmp/f && echo touched",
    );
    assert!(
        out.contains("Operation not permitted") && out.contains("rc=1"),
        "{out}"
    );
    assert!(out.contains("touched"), "only mkdir is denied: {out}");
    let out = ok(
        &["--security-opt", "seccomp=unconfined"],
        "grep Seccomp: /proc/1/status",
    );
    assert!(out.contains("Seccomp:\t0"), "{out}");
}

/// Bad flags: one line naming the problem, exit 125, nothing created.
#[test]
fn bad_hardening_flags_are_one_line_and_leave_nothing() {
    require_root!();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let malformed = dir.path().join("bad.json");
    std::fs::write(&malformed, "{ \"defaultAction\": ").expect("write");
    let malformed = format!("seccomp={}", malformed.display());
    let cases: [(&[&str], &str); 7] = [
        (&["--cap-add", "NOPE"], "unknown capability \"NOPE\""),
        (
            &["--security-opt", "seccomp=/nonexistent/profile.json"],
            "/nonexistent/profile.json",
        ),
        (&["--security-opt", &malformed], "line 1"),
        (&["--security-opt", "apparmor=x"], "apparmor=x"),
        (
            &["--sysctl", "kernel.panic=1"],
            "kernel.panic is not a namespaced sysctl",
        ),
        (&["--oom-score-adj", "5000"], "-1000 to 1000"),
        (&["-u", "mallory"], "no user \"mallory\""),
    ];
    // A state root of its own: other tests' containers come and go.
    let root = tempfile::tempdir().expect("a state root");
    let containers = root.path().join("containers");
    for (flags, message) in cases {
        let out = run_in(root.path(), flags, "true");
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{flags:?}: not one line:\n{err}");
        assert!(err.contains(message), "{flags:?}: {err}");
    }
    let left: Vec<_> = std::fs::read_dir(&containers)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a refused run left {left:?}");
}

/// `exec` into a hardened container: the process gets the container's
/// privileges (capabilities, seccomp, no_new_privs, its user unless `-u`
/// says otherwise), as with docker, not the full set of the host's root.
#[test]
fn exec_gets_the_containers_privileges() {
    require_root!();
    let name = format!("minibox-test-exec-priv-{}", std::process::id());
    let started = stage_command(STAGE)
        .args(["run", "-d", "--trace", "off", "--name", &name])
        .args(compat_flags(STAGE).iter().filter(|f| *f != "--rm"))
        .args([
            "--cap-drop",
            "NET_RAW",
            "--security-opt",
            "no-new-privileges",
        ])
        .args(["-u", "nobody", "sleep", "1000"])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run -d");
    assert!(started.status.success(), "{}", stderr(&started));
    let exec = |args: &[&str]| {
        stage_command(STAGE)
            .args(["exec", "--trace", "off"])
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
            .expect("exec")
    };
    let own = exec(&[&name, "sh", "-c", "id -u; cat /proc/self/status"]);
    let as_root = exec(&[
        "-u",
        "root",
        &name,
        "sh",
        "-c",
        "id -u; cat /proc/self/status",
    ]);
    let by_name = exec(&["-u", "nobody:nogroup", &name, "id"]);
    let _ = stage_command(STAGE).args(["rm", "-f", &name]).output();
    for out in [&own, &as_root, &by_name] {
        assert!(out.status.success(), "{}", stderr(out));
    }
    let own = stdout(&own);
    assert!(own.starts_with("65534\n"), "{own}");
    assert_eq!(status_line(&own, "CapEff"), "0000000000000000");
    let as_root = stdout(&as_root);
    assert!(as_root.starts_with("0\n"), "{as_root}");
    // docker's 14 without NET_RAW (bit 13).
    assert_eq!(status_line(&as_root, "CapBnd"), "00000000a80405fb");
    assert_eq!(status_line(&as_root, "CapEff"), "00000000a80405fb");
    assert_eq!(status_line(&as_root, "Seccomp"), "2");
    assert_eq!(status_line(&as_root, "NoNewPrivs"), "1");
    assert!(
        stdout(&by_name).contains("uid=65534(nobody) gid=65534(nogroup)"),
        "{}",
        stdout(&by_name)
    );
}

/// The compiled seccomp filter is cached under the state root, private,
/// and a damaged cache file is compiled again and replaced, never loaded.
#[test]
fn the_seccomp_cache_is_private_and_a_damaged_entry_is_replaced() {
    require_root!();
    let root = tempfile::tempdir().expect("a state root");
    // Its own state root, so its own cgroup parent too: a run removes the
    // cgroups under its parent that its state root does not know.
    let parent = format!("{}-seccache", test_env().cgroup_parent);
    let traced = |what: &str| {
        let out = stage_command(STAGE)
            .env("MINIBOX_ROOT", root.path())
            .env("MINIBOX_CGROUP_PARENT", &parent)
            .arg("run")
            .args(compat_flags(STAGE))
            .args(["--trace", "tree", "true"])
            .timeout(Duration::from_secs(60))
            .output()
            .expect("run 09-hardening");
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        stderr(&out)
    };
    let first = traced("first run");
    assert!(
        first.contains("libseccomp: compile the builtin default profile"),
        "{first}"
    );
    let dir = root.path().join("seccomp");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("the cache")
        .flatten()
        .collect();
    assert_eq!(entries.len(), 1, "one profile, one entry");
    let entry = entries[0].path();
    assert_eq!(mode(&entry), 0o600);

    let second = traced("second run");
    assert!(second.contains("the filter compiled before"), "{second}");

    std::fs::write(&entry, b"{\"program\": [").expect("damage the entry");
    let third = traced("run with a damaged cache");
    assert!(third.contains("libseccomp: compile"), "{third}");
    let repaired = std::fs::read_to_string(&entry).expect("read the entry");
    assert!(serde_json::from_str::<serde_json::Value>(&repaired).is_ok());
}
