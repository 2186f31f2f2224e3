//! Stage 10: a user namespace. As root, container root is host uid
//! 100000 (`--userns=remap`, the test's own subuid file); as an ordinary
//! user — a temporary one that exists only in a private mount namespace
//! with bind-mounted /etc files, never in the machine's /etc — container
//! root is that user.

use minibox_tests::{
    cgroup_mode, default_rootfs, redact_trace, require_root, stage_command, stderr, stdout,
    test_env, REMAP_START,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

const STAGE: &str = "10-rootless";

/// `10-rootless run --rm --network none --rootfs ROOTFS FLAGS… sh -c SCRIPT` as root.
fn run(flags: &[&str], script: &str) -> Output {
    stage_command(STAGE)
        .arg("run")
        .args(["--rm", "--network", "none", "--trace", "off"])
        .arg("--rootfs")
        .arg(default_rootfs())
        .args(flags)
        .args(["sh", "-c", script])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run 10-rootless")
}

fn ok(flags: &[&str], script: &str) -> String {
    let out = run(flags, script);
    assert!(out.status.success(), "{flags:?} {script}: {}", stderr(&out));
    stdout(&out)
}

/// `0 100000 65536` from a map file's padded columns.
fn map_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

fn status_line(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
        .to_string()
}

#[test]
fn root_is_remapped_to_the_subuid_range_with_stage_09s_capabilities() {
    require_root!();
    let out = ok(
        &[],
        "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u; cat /proc/1/status",
    );
    let range = format!("0 {REMAP_START} 65536");
    assert_eq!(
        map_lines(&out)[..4],
        [range.clone(), range, "allow".into(), "0".into()]
    );
    // The same sets as stage 09 — now relative to the user namespace.
    assert_eq!(status_line(&out, "CapEff"), "00000000a80425fb");
    assert_eq!(status_line(&out, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_line(&out, "CapInh"), "0000000000000000");
}

#[test]
fn the_image_is_container_roots_and_a_new_file_is_too() {
    require_root!();
    // The idmapped image: host root's files read as container root's.
    let out = ok(
        &[],
        "stat -c '%u %g' /bin/busybox; touch /new; stat -c '%u' /new",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["0 0", "0"]);
}

#[test]
fn host_sees_the_containers_processes_as_the_mapped_uid() {
    require_root!();
    let name = format!("ns-uid-{}", std::process::id());
    let started = stage_command(STAGE)
        .args([
            "run",
            "-d",
            "--network",
            "none",
            "--trace",
            "off",
            "--name",
            &name,
        ])
        .arg("--rootfs")
        .arg(default_rootfs())
        .args(["sleep", "60"])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run -d");
    assert!(started.status.success(), "{}", stderr(&started));
    let pid = stage_command(STAGE)
        .args(["inspect", "--format", "{{.State.Pid}}", &name])
        .output()
        .expect("inspect");
    let pid = stdout(&pid).trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"));
    // exec joins the user namespace first: container root, not host root.
    let exec = stage_command(STAGE)
        .args(["exec", "--trace", "off", &name, "cat", "/proc/self/uid_map"])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("exec");
    let removed = stage_command(STAGE)
        .args(["rm", "-f", &name])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("rm -f");
    assert!(removed.status.success(), "{}", stderr(&removed));
    let status = status.unwrap_or_else(|e| panic!("pid {pid:?}: {e}"));
    let uids = status_line(&status, "Uid");
    let want = format!("{REMAP_START}\t{REMAP_START}\t{REMAP_START}\t{REMAP_START}");
    assert_eq!(uids, want, "container root, seen from the host");
    assert!(exec.status.success(), "{}", stderr(&exec));
    assert_eq!(
        map_lines(&stdout(&exec)),
        [format!("0 {REMAP_START} 65536")]
    );
}

/// A host directory every user may enter (tempdirs are 0700).
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn a_file_written_to_a_volume_belongs_to_the_mapped_uid() {
    require_root!();
    let dir = open_dir();
    let volume = format!("{}:/data", dir.path().display());
    ok(
        &["-v", &volume],
        "echo hi > /data/f; mkdir /data/d; chown 7:7 /data/d",
    );
    let meta = std::fs::metadata(dir.path().join("f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (REMAP_START, REMAP_START));
    let meta = std::fs::metadata(dir.path().join("d")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (REMAP_START + 7, REMAP_START + 7));
}

#[test]
fn root_inside_cannot_use_what_host_root_owns() {
    require_root!();
    let dir = open_dir();
    std::fs::write(dir.path().join("secret"), "x").unwrap();
    std::fs::set_permissions(
        dir.path().join("secret"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let volume = format!("{}:/host", dir.path().display());
    let out = ok(
        &["-v", &volume],
        "cat /host/secret 2>&1; echo rc=$?; stat -c '%u' /host/secret; \
         mknod /tmp/sda b 8 0 2>&1; echo rc=$?; mount -t tmpfs t /mnt 2>&1; echo rc=$?",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains("Permission denied"), "{out}");
    assert_eq!(lines[1], "rc=1");
    // Host root is not mapped: its files show as the overflow uid.
    assert_eq!(lines[2], "65534");
    assert!(lines[3].contains("not permitted"), "{out}");
    assert_eq!(lines[4], "rc=1");
    assert_ne!(lines[6], "rc=0", "{out}");
}

#[test]
fn supplementary_groups_keep_working_with_setgroups_allowed() {
    require_root!();
    let out = ok(
        &["-u", "nobody:nogroup"],
        "id -u; id -g; cat /proc/self/setgroups",
    );
    assert_eq!(out.lines().collect::<Vec<_>>(), ["65534", "65534", "allow"]);
}

#[test]
fn userns_host_is_stage_09s_root() {
    require_root!();
    let out = ok(&["--userns", "host"], "cat /proc/self/uid_map");
    assert_eq!(map_lines(&out), ["0 0 4294967295"]);
}

#[test]
fn bad_userns_input_is_one_line_exit_125_and_leaves_nothing() {
    require_root!();
    let empty = tempfile::NamedTempFile::new().unwrap();
    // A state root of its own: other tests run containers meanwhile.
    let root = tempfile::tempdir().unwrap();
    for (env, flags, want) in [
        (None, vec!["--userns", "nosuch"], "nosuch"),
        (Some(empty.path()), vec![], "needs a range of 65536 ids"),
    ] {
        let mut cmd = stage_command(STAGE);
        cmd.env("MINIBOX_ROOT", root.path());
        if let Some(file) = env {
            cmd.env("MINIBOX_SUBUID", file);
        }
        let out = cmd
            .arg("run")
            .args(["--rm", "--network", "none", "--trace", "off"])
            .arg("--rootfs")
            .arg(default_rootfs())
            .args(flags)
            .arg("true")
            .timeout(Duration::from_secs(30))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
    let left: Vec<_> = std::fs::read_dir(root.path().join("containers"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "a refused run leaves no container: {left:?}"
    );
}

#[test]
fn trace_of_the_three_processes() {
    require_root!();
    let run = || {
        stage_command(STAGE)
            .arg("run")
            .args(["--rm", "--network", "none", "--trace", "tree"])
            .arg("--rootfs")
            .arg(default_rootfs())
            .args(["true"])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    };
    // Once before: the seccomp cache and the cgroup parent then exist
    // whichever tests ran first, and the snapshot shows the same steps.
    let warm = run();
    assert!(warm.status.success(), "{}", stderr(&warm));
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let trace = redact_trace(&stderr(&out));
    let trace = regex::Regex::new(r#"sethostname\("[0-9a-f]{12}"\)"#)
        .unwrap()
        .replace_all(&trace, r#"sethostname("[ID]")"#)
        .into_owned();
    for who in [
        "run  (pid [PID])",
        "child  (pid [PID])",
        "init  (pid 1, host pid [PID])",
    ] {
        assert!(trace.contains(who), "{who} missing:\n{trace}");
    }
    // The idmapped image, made by run and attached by the child; where the
    // filesystem cannot be idmapped (tmpfs before Linux 6.3: the VMs), a
    // copy with shifted owners, and the trace says why.
    if trace.contains("idmapped mounts unavailable here") {
        assert!(trace.contains("ids shifted by the map"), "{trace}");
    } else {
        assert!(trace.contains("MOUNT_ATTR_IDMAP"), "{trace}");
        assert!(trace.contains("move_mount("), "{trace}");
    }
    insta::assert_snapshot!(format!("trace_10_{}", cgroup_mode()), trace);
}

// ---------------------------------------------------------------------
// Rootless: an ordinary user that exists only in a private mount
// namespace.
// ---------------------------------------------------------------------

const SUB_START: u32 = 200000;

/// The `nth` uid (from 0) no account on this machine has.
fn free_uid(nth: usize) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let taken: Vec<u32> = passwd
        .lines()
        .filter_map(|l| l.split(':').nth(2)?.parse().ok())
        .collect();
    (1500..2000)
        .filter(|u| !taken.contains(u))
        .nth(nth)
        .expect("a free uid")
}

struct User {
    uid: u32,
    etc: tempfile::TempDir,
    home: PathBuf,
    /// A cgroup v2 directory the user's commands start in (as a login
    /// manager puts a session's processes in one).
    cgroup: Option<PathBuf>,
}

impl User {
    /// `minitest` with a 65536-id subordinate range: files for /etc, and a
    /// home (its state root) it owns.
    fn new(subids: bool) -> User {
        User::nth(0, subids)
    }

    /// The `nth` such user (`minitest`, `minitest1`, …): a uid and a
    /// subordinate range of its own, so several can run side by side.
    fn nth(nth: usize, subids: bool) -> User {
        let uid = free_uid(nth);
        let name = match nth {
            0 => "minitest".to_string(),
            n => format!("minitest{n}"),
        };
        let sub_start = SUB_START + 100_000 * nth as u32;
        let etc = tempfile::tempdir().unwrap();
        let e = etc.path();
        let mut passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        passwd.push_str(&format!("{name}:x:{uid}:{uid}::/nonexistent:/bin/sh\n"));
        let mut group = std::fs::read_to_string("/etc/group").unwrap();
        group.push_str(&format!("{name}:x:{uid}:\n"));
        let sub = if subids {
            format!("{name}:{sub_start}:65536\n")
        } else {
            String::new()
        };
        for (name, text) in [
            ("passwd", &passwd),
            ("group", &group),
            ("subuid", &sub),
            ("subgid", &sub),
        ] {
            std::fs::write(e.join(name), text).unwrap();
            std::fs::set_permissions(e.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        std::fs::set_permissions(e, std::fs::Permissions::from_mode(0o755)).unwrap();
        // A home (and state root) per test: tests run side by side.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let home = test_env().root.join(format!("home-{uid}-{n}"));
        std::fs::create_dir_all(&home).unwrap();
        nix::unistd::chown(&home, Some(uid.into()), Some(uid.into())).unwrap();
        User {
            uid,
            etc,
            home,
            cgroup: None,
        }
    }

    /// This user's state root (`MINIBOX_ROOT`).
    fn state(&self) -> PathBuf {
        self.home.join("minibox")
    }

    /// `10-rootless ARGS…` as this user.
    fn stage(&self, args: &[&str]) -> Output {
        self.stage_in(&self.state(), args)
    }

    /// `10-rootless ARGS…` as this user, with `MINIBOX_ROOT` at `root`.
    fn stage_in(&self, root: &Path, args: &[&str]) -> Output {
        let script = r#"set -e
for f in passwd group subuid subgid; do
    [ -e /etc/$f ] || { echo "no /etc/$f to bind over" >&2; exit 99; }
    mount --bind "$ETC/$f" /etc/$f
done
[ -z "$CGROUP" ] || echo $$ > "$CGROUP/cgroup.procs"
exec "$SETPRIV" --reuid="$RUID" --regid="$RUID" --clear-groups -- "$@""#;
        let bin = minibox_tests::stage_bin(STAGE);
        let mut cmd = std::process::Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(bin)
        .args(args)
        .env("ETC", self.etc.path())
        .env("RUID", self.uid.to_string())
        // By path: busybox's sh (the VMs') runs its own applet for a
        // bare `setpriv`, which has no --reuid.
        .env("SETPRIV", in_path("setpriv").expect("setpriv in PATH"))
        .env("CGROUP", self.cgroup.as_deref().unwrap_or(Path::new("")))
        .env("HOME", &self.home)
        .env("MINIBOX_ROOT", root)
        .env("NO_COLOR", "1")
        // Its runtime directory in its home too (a login session would
        // give one): the /tmp/minibox-UID fallback would outlive the test.
        .env("XDG_RUNTIME_DIR", &self.home)
        .env_remove("MINIBOX_SUBUID");
        // As for root's runs: the fds of whoever started `cargo test` would
        // shift the numbers the trace shows.
        minibox_tests::without_inherited_fds(&mut cmd);
        // A hung run fails its test rather than the whole (VM) run.
        assert_cmd::Command::from_std(cmd)
            .timeout(Duration::from_secs(120))
            .output()
            .expect("run unshare")
    }

    fn run(&self, flags: &[&str], script: &str) -> Output {
        let rootfs = default_rootfs().display().to_string();
        let mut args = vec!["run", "--rm", "--trace", "off", "--rootfs", rootfs.as_str()];
        args.extend(flags);
        args.extend(["sh", "-c", script]);
        self.stage(&args)
    }
}

/// Where `tool` is in PATH.
fn in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|file| file.is_file())
}

/// The tools a test needs to become an ordinary user and map its ids:
/// util-linux's setpriv (busybox's has no --reuid) and uidmap's
/// newuidmap/newgidmap. Missing is a skip said out loud — in the qemu VMs,
/// which carry busybox's tools; on a CI host it is a failure.
fn have_rootless_tools() -> bool {
    let setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("util-linux"));
    // Looked up in PATH, as minibox runs them: the VMs carry them in /bin.
    let uidmap = in_path("newuidmap").is_some() && in_path("newgidmap").is_some();
    if setpriv && uidmap {
        return true;
    }
    assert!(
        std::env::var("CI").is_err() || Path::new("/vm.env").exists(),
        "util-linux's setpriv and newuidmap/newgidmap are missing: .ci/run installs them"
    );
    eprintln!("skipped: util-linux setpriv or newuidmap/newgidmap (package uidmap) missing here");
    false
}

#[test]
fn rootless_root_is_the_user_and_the_rest_its_subordinate_range() {
    require_root!();
    if !have_rootless_tools() {
        return;
    }
    let user = User::new(true);
    let out = user.run(
        &[],
        "id -u; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; grep CapEff /proc/1/status",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let uid = user.uid;
    assert_eq!(
        map_lines(&stdout(&out)),
        [
            "0".to_string(),
            format!("0 {uid} 1"),
            format!("1 {SUB_START} 65535"),
            format!("0 {uid} 1"),
            format!("1 {SUB_START} 65535"),
            // newgidmap with a subgid range: setgroups stays allowed.
            "allow".to_string(),
            "CapEff: 00000000a80425fb".to_string(),
        ]
    );
}

#[test]
fn rootless_single_id_map_denies_setgroups() {
    require_root!();
    if !have_rootless_tools() {
        return;
    }
    let user = User::new(false);
    let out = user.run(
        &["--userns", "single"],
        "cat /proc/self/uid_map /proc/self/setgroups",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let uid = user.uid;
    assert_eq!(
        map_lines(&stdout(&out)),
        [format!("0 {uid} 1"), "deny".to_string()]
    );
}

#[test]
fn rootless_refusals_are_one_line_exit_125() {
    require_root!();
    if !have_rootless_tools() {
        return;
    }
    let without = User::new(false);
    let with = User::new(true);
    let mut cases = vec![
        (&without, vec![], "no range of at least 65535 ids"),
        (&with, vec!["--network", "bridge"], "needs root"),
        (&with, vec!["--userns", "host"], "needs root"),
    ];
    // Limits: never silently dropped where no cgroup is the user's.
    if cgroup_mode() != "v2" {
        cases.push((&with, vec!["--memory", "64m"], "limits are unavailable"));
    }
    for (user, flags, want) in cases {
        let out = user.run(&flags, "true");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{flags:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    // Refused before anything was made: no container, no layer.
    for user in [&without, &with] {
        let left: Vec<_> = std::fs::read_dir(user.state().join("containers"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "a refused run left {left:?}");
    }
}

#[test]
fn rootless_import_run_and_remove_files_of_other_container_users() {
    require_root!();
    if !have_rootless_tools() {
        return;
    }
    let user = User::new(true);
    // A tarball of the default rootfs, readable by the user.
    let dir = open_dir();
    let tar = dir.path().join("busybox.tar");
    let made = std::process::Command::new("tar")
        .arg("-C")
        .arg(default_rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = user.stage(&["image", "import", &tar.display().to_string(), "mybox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = user.stage(&[
        "run",
        "--rm",
        "--trace",
        "off",
        "mybox",
        "sh",
        "-c",
        "stat -c %u /bin/busybox; mkdir /tmp/d; touch /tmp/d/f; chown -R 1000:1000 /tmp/d; chmod 700 /tmp/d; stat -c %u /tmp/d",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), ["0", "1000"]);
    // --rm removed the layer, though its files belonged to host uid 201000.
    let containers = user.home.join("minibox/containers");
    let left: Vec<_> = std::fs::read_dir(&containers)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `ps -a` as `user`: the names it lists.
fn names_seen_by(user: &User) -> Vec<String> {
    let out = user.stage(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(out.status.success(), "ps -a: {}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn a_user_sees_and_controls_only_their_own_containers() {
    require_root!();
    if !have_rootless_tools() {
        return;
    }
    let alice = User::nth(0, true);
    let bob = User::nth(1, true);
    let tag = std::process::id();
    let (a_name, b_name, r_name) = (
        format!("alice-{tag}"),
        format!("bob-{tag}"),
        format!("root-{tag}"),
    );
    let rootfs = default_rootfs().display().to_string();
    let detached = |name: &str| {
        [
            "run", "-d", "--name", name, "--trace", "off", "--rootfs", &rootfs, "sleep", "1000",
        ]
        .map(str::to_string)
    };
    let started = stage_command(STAGE)
        .args(["run", "-d", "--network", "none", "--name", &r_name])
        .args(["--trace", "off", "--rootfs", &rootfs, "sleep", "1000"])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run -d as root");
    assert!(started.status.success(), "root: {}", stderr(&started));
    for (user, name) in [(&alice, &a_name), (&bob, &b_name)] {
        let args = detached(name);
        let out = user.stage(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{name}: {}", stderr(&out));
    }

    let seen = (names_seen_by(&alice), names_seen_by(&bob));
    // Every verb that names bob's container, as alice: not hers to find.
    let mut refused = Vec::new();
    for verb in [
        vec!["stop", "-t", "1"],
        vec!["rm", "-f"],
        vec!["exec"],
        vec!["logs"],
        vec!["kill"],
    ] {
        let mut args = verb.clone();
        args.push(&b_name);
        if verb == ["exec"] {
            args.push("true");
        }
        refused.push((verb.join(" "), alice.stage(&args)));
    }
    // MINIBOX_ROOT pointed at bob's state, or at root's: refused before
    // anything is read.
    let bob_root = bob.state();
    let pointed_at_bob = [
        alice.stage_in(&bob_root, &["ps", "-a"]),
        alice.stage_in(&bob_root, &["stop", "-t", "1", &b_name]),
        alice.stage_in(&bob_root, &["rm", "-f", &b_name]),
    ];
    let pointed_at_root = alice.stage_in(&test_env().root, &["rm", "-f", &r_name]);
    let run_in_bobs = alice.stage_in(
        &bob_root,
        &["run", "--rm", "--trace", "off", "--rootfs", &rootfs, "true"],
    );
    // bob's and root's containers are still up after all that.
    let bob_after = bob.stage(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    let root_after = stage_command(STAGE)
        .args(["ps", "--format", "{{.Names}}"])
        .output()
        .expect("ps as root");

    // Clean up before asserting: a failed assertion leaves nothing running.
    for (user, name) in [(&alice, &a_name), (&bob, &b_name)] {
        let out = user.stage(&["rm", "-f", name]);
        assert!(out.status.success(), "rm -f {name}: {}", stderr(&out));
    }
    let removed = stage_command(STAGE)
        .args(["rm", "-f", &r_name])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("rm -f as root");
    assert!(removed.status.success(), "{}", stderr(&removed));

    assert_eq!(seen.0, [a_name.as_str()], "alice's ps -a");
    assert_eq!(seen.1, [b_name.as_str()], "bob's ps -a");
    for (verb, out) in refused {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "alice: {verb} {b_name}: {err}");
        assert_eq!(
            err.trim(),
            format!("10-rootless: no such container: {b_name}"),
            "alice: {verb}"
        );
    }
    let not_yours = format!(
        "10-rootless: {} belongs to uid {}, not to you: each user's containers are theirs alone: unset MINIBOX_ROOT or point it at a directory of yours",
        bob_root.display(),
        bob.uid
    );
    for out in &pointed_at_bob {
        assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
        assert_eq!(stderr(out).trim(), not_yours);
    }
    assert_eq!(
        run_in_bobs.status.code(),
        Some(125),
        "{}",
        stderr(&run_in_bobs)
    );
    assert_eq!(stderr(&run_in_bobs).trim(), not_yours);
    let err = stderr(&pointed_at_root);
    assert_eq!(pointed_at_root.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("belongs to uid 0, not to you"), "{err}");
    let bob_after = stdout(&bob_after);
    assert!(
        bob_after.starts_with(&format!("{b_name} Up")),
        "bob's container survived alice: {bob_after}"
    );
    assert!(
        stdout(&root_after).lines().any(|l| l == r_name),
        "root's container survived alice: {}",
        stdout(&root_after)
    );
    // Nothing of alice's attempts landed in bob's state.
    let left: Vec<_> = std::fs::read_dir(bob_root.join("containers"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "bob's state after rm: {left:?}");
}

/// What systemd does for `user@UID.service` (`Delegate=yes`): a cgroup
/// the user owns, with its `cgroup.procs`, `cgroup.subtree_control` and
/// `cgroup.threads`, below this test's own parent, and a leaf in it where
/// the user's commands start. The controllers are the ones systemd
/// delegates by default (memory and pids; cpu too where offered).
fn delegate_to(user: &mut User) -> PathBuf {
    let base = Path::new("/sys/fs/cgroup").join(&test_env().cgroup_parent);
    std::fs::create_dir_all(&base).expect("mkdir the test's cgroup parent");
    let write = |file: PathBuf, text: &str| {
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("write {}: {e}", file.display()))
    };
    write(base.join("cgroup.subtree_control"), "+memory +pids");
    let top = base.join(format!("delegated-{}", user.uid));
    let leaf = top.join("session");
    for dir in [&top, &leaf] {
        match std::fs::create_dir(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                panic!("mkdir {}: {e}", dir.display())
            }
            _ => {}
        }
    }
    let own = |path: &Path| {
        nix::unistd::chown(path, Some(user.uid.into()), Some(user.uid.into()))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()))
    };
    for path in [
        top.clone(),
        top.join("cgroup.procs"),
        top.join("cgroup.subtree_control"),
        top.join("cgroup.threads"),
        leaf.clone(),
        leaf.join("cgroup.procs"),
        leaf.join("cgroup.threads"),
    ] {
        own(&path);
    }
    user.cgroup = Some(leaf);
    top
}

#[test]
fn rootless_limits_apply_in_a_delegated_cgroup_v2_subtree() {
    require_root!();
    let mode = cgroup_mode();
    if mode != "v2" {
        // Refused here instead: rootless_refusals_are_one_line_exit_125.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "not applicable here: cgroup {mode} has no delegated v2 subtree to give a user; \
             the cgroup v2 VM runs this test (tests/vm/run.sh --cgroup v2)"
        );
        return;
    }
    if !have_rootless_tools() {
        return;
    }
    let mut user = User::new(true);
    let top = delegate_to(&mut user);
    let name = format!("limited-{}", std::process::id());
    let rootfs = default_rootfs().display().to_string();
    let started = user.stage(&[
        "run",
        "-d",
        "--name",
        &name,
        "--trace",
        "off",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "--rootfs",
        &rootfs,
        "sleep",
        "1000",
    ]);
    let pid = user.stage(&["inspect", "--format", "{{.State.Pid}}", &name]);
    let pid = stdout(&pid).trim().to_string();
    let host_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    // exec's process joins the same cgroup: the container's processes,
    // as its own cgroup namespace shows them (PID 1 and the exec'd cat).
    let inside = user.stage(&[
        "exec",
        "--trace",
        "off",
        &name,
        "cat",
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/pids.max",
        "/sys/fs/cgroup/cgroup.procs",
    ]);
    let leaf = host_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::/"))
        .map(|rel| Path::new("/sys/fs/cgroup").join(rel));
    let limits = leaf.as_ref().map(|dir| {
        ["memory.max", "pids.max"].map(|f| {
            std::fs::read_to_string(dir.join(f)).map_or_else(|e| e.to_string(), |t| t.trim().into())
        })
    });
    let removed = user.stage(&["rm", "-f", &name]);
    assert!(started.status.success(), "{}", stderr(&started));
    assert!(removed.status.success(), "{}", stderr(&removed));

    let leaf = leaf.unwrap_or_else(|| panic!("pid {pid:?}: no cgroup v2 line in {host_cgroup:?}"));
    assert_eq!(
        leaf.parent(),
        Some(top.join("minibox").as_path()),
        "the container's cgroup is below the delegated top"
    );
    assert_eq!(
        limits,
        Some(["67108864".to_string(), "20".to_string()]),
        "memory.max and pids.max of {}",
        leaf.display()
    );
    assert!(inside.status.success(), "{}", stderr(&inside));
    let inside = stdout(&inside);
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(lines[..2], ["67108864", "20"], "{inside}");
    // PID 1, exec's cat, and exec's own minibox process, which joined the
    // cgroup from outside the container's PID namespace (so it reads as 0).
    let mut procs = lines[2..].to_vec();
    procs.sort_unstable();
    assert_eq!(procs.len(), 3, "{inside}");
    assert_eq!(procs[..2], ["0", "1"], "{inside}");
    assert!(!leaf.exists(), "rm -f removed {}", leaf.display());
    // The delegated cgroup itself holds no process of the container.
    let procs = std::fs::read_to_string(top.join("cgroup.procs")).unwrap_or_default();
    assert!(
        procs.trim().is_empty(),
        "processes in {}: {procs}",
        top.display()
    );
}

#[test]
fn trace_of_a_rootless_run() {
    require_root!();
    if !have_rootless_tools() {
        return;
    }
    let user = User::new(true);
    let rootfs = default_rootfs().display().to_string();
    let run = || {
        user.stage(&[
            "run", "--rm", "--trace", "tree", "--rootfs", &rootfs, "true",
        ])
    };
    // Once before, as for root's trace: the seccomp cache then exists.
    let warm = run();
    assert!(warm.status.success(), "{}", stderr(&warm));
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    // The user's state root and uid differ from run to run and machine to
    // machine; the subordinate range is the test's own.
    let trace = stderr(&out).replace(&user.state().display().to_string(), "[STATE]");
    let trace = redact_trace(&trace);
    let trace = regex::Regex::new(&format!(r"\b{}\b", user.uid))
        .unwrap()
        .replace_all(&trace, "[UID]")
        .into_owned();
    let trace = regex::Regex::new(r#"sethostname\("[0-9a-f]{12}"\)"#)
        .unwrap()
        .replace_all(&trace, r#"sethostname("[ID]")"#)
        .into_owned();
    let trace = regex::Regex::new(r"(new[ug]idmap) \d+")
        .unwrap()
        .replace_all(&trace, "$1 [PID]")
        .into_owned();
    // The same three processes as root's; the maps written by the setuid
    // helpers, since only they may grant the subordinate range.
    for who in [
        "run  (pid [PID])",
        "child  (pid [PID])",
        "init  (pid 1, host pid [PID])",
        "newuidmap",
        "newgidmap",
    ] {
        assert!(trace.contains(who), "{who} missing:\n{trace}");
    }
    insta::assert_snapshot!(format!("trace_10_rootless_{}", cgroup_mode()), trace);
}
