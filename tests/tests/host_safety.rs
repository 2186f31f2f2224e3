//! minibox's own host side: private state, any command size, clean `exec`,
//! safe `commit`, lifecycle races, and the small holes. Each test states
//! the hole it closes.

use minibox_tests::{
    apply, compat_flags, default_rootfs, every_stage, require_root, rstest, stage_bin,
    stage_command, stage_process, stderr, stdout, test_env,
};
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const STAGE: &str = "07-full";

fn cli(args: &[&str]) -> Output {
    stage_command(STAGE)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run 07-full")
}

fn ok(args: &[&str]) -> String {
    let out = cli(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// The one-line error of a refused command (exit 125: a bad command line,
/// or a `run` minibox could not do).
fn refused(args: &[&str], message: &str) -> String {
    refused_with(125, args, message)
}

/// The one-line error of a verb whose action failed (docker's exit 1).
fn failed(args: &[&str], message: &str) -> String {
    refused_with(1, args, message)
}

fn refused_with(code: i32, args: &[&str], message: &str) -> String {
    let out = cli(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line:\n{err}");
    assert!(err.contains(message), "{args:?}: {err}");
    err
}

/// A container name unique to this test process; `rm -f` when dropped.
struct Named(String);

impl Named {
    fn new(tag: &str) -> Named {
        Named(format!("{tag}-{}", std::process::id()))
    }
}

impl std::ops::Deref for Named {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = cli(&["rm", "-f", &self.0]);
    }
}

fn container_dir(id: &str) -> PathBuf {
    test_env().root.join("containers").join(id.trim())
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Run `sh -c script` as nobody (65534), with no groups: no user is added
/// to the machine for it.
fn as_nobody(script: &str) -> Output {
    std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("setpriv (util-linux)")
}

// ------------------------------------------------------------ private state

/// moby CVE-2021-41091's class: any local user could read a container's
/// environment (secrets from `-e`) and its log, and walk into its layer.
#[test]
fn state_is_private_to_root() {
    require_root!();
    let c = Named::new("private");
    let id = ok(&[
        "run",
        "-d",
        "--trace",
        "off",
        "--name",
        &c,
        "-e",
        "TOKEN=s3cret",
        "busybox",
        "sh",
        "-c",
        "echo $TOKEN; touch /in-upper; sleep 1000",
    ]);
    let dir = container_dir(&id);
    let root = &test_env().root;
    for (path, expected) in [
        (root.clone(), 0o711),
        (root.join("containers"), 0o700),
        (dir.clone(), 0o700),
        (dir.join("state.json"), 0o600),
        (dir.join("container.log"), 0o600),
        (root.join("run"), 0o711),
        (root.join("run/locks"), 0o700),
    ] {
        assert_eq!(mode(&path), expected, "{}", path.display());
    }
    let paths = [
        dir.join("state.json"),
        dir.join("container.log"),
        dir.join("upper/in-upper"),
        dir.join("merged"),
    ];
    for path in &paths {
        let out = as_nobody(&format!("cat {} || ls {}", path.display(), path.display()));
        assert!(
            !out.status.success() && !stdout(&out).contains("s3cret"),
            "nobody reached {}: {}",
            path.display(),
            stdout(&out)
        );
    }
    let out = as_nobody(&format!("ls {}", root.join("containers").display()));
    assert!(!out.status.success(), "nobody can list the containers");
    // The owner still can: `ps` and `logs` work as root.
    assert_eq!(ok(&["logs", &c]), "s3cret\n");
}

/// A secret passed with `-e` is not in the argv of run, the monitor or
/// init (readable by every user in /proc/PID/cmdline), nor in the
/// environment of run and the monitor.
#[test]
fn env_values_stay_out_of_cmdline_and_environ() {
    require_root!();
    let c = Named::new("argv");
    let secret = format!("hunter2-{}", std::process::id());
    let run = stage_process(STAGE)
        .args(["run", "-d", "--trace", "off", "--name", &c])
        .arg(format!("-eSECRET={secret}"))
        .args(["-e", &format!("OTHER={secret}")])
        .args(["busybox", "sh", "-c", "echo $SECRET > /got; sleep 1000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run -d");
    let run_pid = run.id();
    let out = run.wait_with_output().expect("run -d ends");
    assert!(out.status.success());
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(container_dir(&stdout(&out)).join("state.json")).unwrap(),
    )
    .unwrap();
    let init = state["init"]["pid"].as_i64().unwrap();
    let monitor = parent_of(init as i32);
    assert_ne!(monitor, run_pid as i32);
    // The monitor is a fork of run: its argv is run's, scrubbed.
    let cmdline = std::fs::read(format!("/proc/{monitor}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{monitor}/environ")).unwrap();
    let text = String::from_utf8_lossy(&cmdline);
    assert!(!text.contains(&secret), "the monitor's argv: {text}");
    assert!(text.contains("SECRET=*"), "the key stays: {text}");
    assert!(!String::from_utf8_lossy(&environ).contains(&secret));
    // init's own argv before its exec is `07-full init`: the trace says so.
    let traced = stage_command(STAGE)
        .args(["run", "--rm", "--trace", "json", "-e"])
        .arg(format!("SECRET={secret}"))
        .args(["busybox", "true"])
        .output()
        .unwrap();
    let init_exec = stderr(&traced)
        .lines()
        .find(|l| l.contains("execve(\\\"/proc/self/exe\\\""))
        .map(String::from)
        .expect("init's exec in the trace");
    assert!(init_exec.ends_with(&format!(
        "[\\\"{STAGE}\\\", \\\"init\\\"])\",\"t_us\":{}}}",
        init_exec.rsplit(':').next().unwrap().trim_end_matches('}')
    )));
    assert!(!init_exec.contains(&secret));
    // And the container got it.
    let got = ok(&["exec", "--trace", "off", &c, "cat", "/got"]);
    assert_eq!(got.trim(), secret);
}

fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

// ------------------------------------------------------------ command size

/// Stages 05–07 hung for ever on a command of 64 KiB or more (the pipe
/// filled before init read it). Any command the kernel's exec limits
/// accept works in every stage.
#[apply(every_stage)]
fn commands_of_any_size(stage: &str) {
    require_root!();
    let big = "a".repeat(120 * 1024);
    let out = stage_command(stage)
        .arg("run")
        .args(compat_flags(stage))
        .args(["--trace", "off", "sh", "-c", "echo ${#1}", "x", &big])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(stdout(&out), format!("{}\n", big.len()), "{}", stderr(&out));
    let many: Vec<String> = (0..1000).map(|n| format!("arg{n}")).collect();
    let out = stage_command(stage)
        .arg("run")
        .args(compat_flags(stage))
        .args(["--trace", "off", "sh", "-c", "echo $# ${1000}", "x"])
        .args(&many)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "1000 arg999\n", "{}", stderr(&out));
}

// ------------------------------------------------------------ exec

/// runc CVE-2024-21626's class: `exec` handed the container the caller's
/// fds (a directory fd is a way out), its ignored signals, its PATH/HOME.
#[test]
fn exec_passes_nothing_of_the_caller() {
    require_root!();
    let c = Named::new("exec");
    ok(&[
        "run", "-d", "--trace", "off", "--name", &c, "-e", "WHO=ctr", "busybox", "sleep", "1000",
    ]);
    let host_dir = tempfile::tempdir().unwrap();
    std::fs::write(host_dir.path().join("host-only"), "host").unwrap();
    let dir = std::fs::File::open(host_dir.path()).unwrap();
    let run = |args: &[&str]| {
        let raw = std::os::fd::AsRawFd::as_raw_fd(&dir);
        let mut command = stage_process(STAGE);
        command
            .args(["exec", "--trace", "off"])
            .args(args)
            .env("HOME", "/host-home")
            .env("PATH", "/host-path:/usr/bin:/bin");
        // SAFETY: only async-signal-safe calls between fork and exec: the
        // caller's fd 9 (a host directory, no close-on-exec) and an
        // ignored SIGPIPE, as a careless shell might hand them over.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(raw, 9) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
        command.output().unwrap()
    };
    let out = run(&[
        &c,
        "sh",
        "-c",
        "ls /proc/self/fd | tr '\\n' ' '; echo; grep -E '^Sig(Ign|Blk)' /proc/self/status; echo $PATH $HOME $WHO",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let mut lines = text.lines();
    let fds: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    // 0, 1, 2, and the directory `ls` itself opened.
    assert!(fds.len() <= 4 && !fds.contains(&"9"), "fds: {fds:?}");
    assert_eq!(lines.next(), Some("SigBlk:\t0000000000000000"));
    assert_eq!(lines.next(), Some("SigIgn:\t0000000000000000"));
    assert_eq!(
        lines.next(),
        Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /root ctr")
    );
    // -w through the leaked fd would land on the host: refused.
    let out = run(&["-w", "/proc/self/fd/9", &c, "cat", "host-only"]);
    assert!(!out.status.success(), "escaped: {}", stdout(&out));
    assert!(!stdout(&out).contains("host"));
    // exec -e, -w, -u.
    let out = run(&[
        "-e",
        "WHO=exec",
        "-w",
        "/tmp",
        "-u",
        "65534:65534",
        &c,
        "sh",
        "-c",
        "echo $WHO $(pwd) $(id -u):$(id -g) $(id -G)",
    ]);
    assert_eq!(
        stdout(&out),
        "exec /tmp 65534:65534 65534\n",
        "{}",
        stderr(&out)
    );
}

// ------------------------------------------------------------ commit

/// docker CVE-2018-15664's class (a path swapped for a symlink while it is
/// read), sockets, and a fixed temporary name.
#[test]
fn commit_freezes_reads_safely_and_skips_sockets() {
    require_root!();
    let c = Named::new("commit");
    let image = format!("committed-{}", std::process::id());
    // The container swaps /tmp/x between a directory and a symlink to / as
    // fast as it can.
    let id = ok(&[
        "run",
        "-d",
        "--trace",
        "off",
        "--name",
        &c,
        "busybox",
        "sh",
        "-c",
        "while true; do mkdir /tmp/x; rmdir /tmp/x; ln -s / /tmp/x; rm /tmp/x; done",
    ]);
    ok(&[
        "exec",
        "--trace",
        "off",
        &c,
        "sh",
        "-c",
        "mkdir /keep; echo kept > /keep/file",
    ]);
    let dir = container_dir(&id);
    // A socket in the layer (made from the host: busybox has no unix socket server).
    let socket = dir.join("upper/keep/sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // A planted link where the old code wrote its archive.
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "untouched").unwrap();
    std::os::unix::fs::symlink(victim.path(), dir.join("commit.tar")).unwrap();

    let out = stage_command(STAGE)
        .args(["commit", "--trace", "json", &c, &image])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let trace = stderr(&out);
    let frozen = trace.contains("freezer.state\\\", \\\"FROZEN\\\"")
        || trace.contains("cgroup.freeze\\\", \\\"1\\\"");
    assert!(frozen, "the container was not frozen:\n{trace}");
    assert!(trace.contains("skip \\\"keep/sock\\\""), "{trace}");
    assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "untouched");

    let rootfs = test_env().root.join("images").join(&image).join("rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("keep/file")).unwrap(),
        "kept\n"
    );
    assert!(!rootfs.join("keep/sock").exists());
    // /tmp/x is a directory, a link, or absent: never the host's files.
    let x = rootfs.join("tmp/x");
    if let Ok(meta) = std::fs::symlink_metadata(&x) {
        assert!(meta.is_dir() || meta.file_type().is_symlink());
        if meta.is_dir() {
            assert_eq!(std::fs::read_dir(&x).unwrap().count(), 0);
        }
    }
    // The container runs on after the commit (thawed).
    ok(&["exec", "--trace", "off", &c, "true"]);
    ok(&["rm", "-f", &c]);
    ok(&["image", "rm", &image]);
}

// ------------------------------------------------------------ lifecycle races

/// The step number at which a trial `run` printed a step matching `what`.
fn step_number(args: &[&str], what: &str) -> u64 {
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = stage_command(STAGE)
        .args(["run", "--trace", "off"])
        .args(args)
        .env("MINIBOX_FAILPOINT_LOG", log.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .find(|l| l.contains(what))
        .and_then(|l| l.split('\t').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no step like {what}"))
}

fn wait_stopped(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) == Some("T") {
            return;
        }
        assert!(Instant::now() < deadline, "run never reached its failpoint");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `stop` and `rm` of a container whose run is still starting waited for
/// it or deleted the live run's directory: refused now, while the run
/// (held at a failpoint right after it recorded the container) goes on.
#[test]
fn stop_and_rm_of_a_starting_container_are_refused() {
    require_root!();
    let c = Named::new("starting");
    let n = step_number(&["--rm", "busybox", "true"], "rename(<new state>");
    let run = stage_process(STAGE)
        .args([
            "run", "--trace", "off", "--name", &c, "busybox", "echo", "started",
        ])
        .env("MINIBOX_FAILPOINT", format!("{n}:stop"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_stopped(run.id());
    let row = ok(&["ps", "-a"]);
    assert!(
        row.lines()
            .any(|l| l.contains(&*c) && l.contains("Starting")),
        "{row}"
    );
    for args in [
        ["stop", &c][..].to_vec(),
        vec!["rm", &c],
        vec!["rm", "-f", &c],
    ] {
        failed(&args, "is still starting");
    }
    let id = ok(&["ps", "-a", "-q"]);
    assert!(container_dir(id.lines().next().unwrap()).is_dir());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.id() as i32),
        nix::sys::signal::Signal::SIGCONT,
    )
    .unwrap();
    let out = run.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(stdout(&out), "started\n");
}

/// `rm -f` of a running `--rm` container exited 125 (its monitor removed
/// the record first).
#[test]
fn rm_f_of_a_running_rm_container_succeeds() {
    require_root!();
    let c = Named::new("rmrm");
    let id = ok(&[
        "run", "-d", "--rm", "--trace", "off", "--name", &c, "busybox", "sleep", "1000",
    ]);
    assert_eq!(ok(&["rm", "-f", &c]), format!("{}\n", &*c));
    assert!(!container_dir(&id).exists());
    assert!(ok(&["ps", "-a", "-q"]).lines().all(|l| l != id.trim()));
}

/// `image rm` of an image a container's layer rests on was allowed.
#[test]
fn an_image_in_use_cannot_be_removed() {
    require_root!();
    let c = Named::new("user");
    let image = format!("inuse-{}", std::process::id());
    let tarball = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new("tar")
        .args(["-C"])
        .arg(default_rootfs())
        .args(["-cf"])
        .arg(tarball.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    ok(&["image", "import", &image, tarball.path().to_str().unwrap()]);
    ok(&[
        "run", "-d", "--trace", "off", "--name", &c, &image, "sleep", "1000",
    ]);
    let out = cli(&["image", "rm", &image]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "image rm of an image in use: {}{}\nps -a:\n{}\nimages:\n{}",
        stdout(&out),
        stderr(&out),
        stdout(&cli(&["ps", "-a", "--no-trunc"])),
        stdout(&cli(&["images"])),
    );
    assert!(
        stderr(&out).contains(&format!("is used by container {}", &*c)),
        "{}",
        stderr(&out)
    );
    ok(&["stop", "-t", "0", &c]);
    // A stopped container still rests on it.
    failed(&["image", "rm", &image], "is used by container");
    ok(&["rm", &c]);
    ok(&["image", "rm", &image]);
}

/// Runs and cleanups side by side: a cleanup never takes a live run's
/// cgroup, layer or lock (locks are re-checked after locking, so one
/// unlinked under its holder is not shared).
#[test]
fn runs_and_cleanups_side_by_side() {
    require_root!();
    let mut children = Vec::new();
    for n in 0..12 {
        let mut command = stage_process(STAGE);
        if n % 2 == 0 {
            command.args([
                "run", "--rm", "--trace", "off", "busybox", "sh", "-c", "echo $$",
            ]);
        } else {
            command.arg("cleanup");
        }
        children.push((
            n,
            command
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ));
    }
    for (n, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{n}: {}", stderr(&out));
        if n % 2 == 0 {
            assert_eq!(stdout(&out), "1\n");
        }
    }
}

/// A pid recorded before a reboot can name a stranger after it: the record
/// keeps pid, start time and boot id, and a stranger matches neither.
#[test]
fn a_stranger_with_a_recorded_pid_is_left_alone() {
    require_root!();
    let mut stranger = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = stranger.id() as i32;
    let stamp = minibox::process::ProcessStamp::of(pid).unwrap();
    for (tag, boot_id, start_ticks) in [
        (
            "reboot",
            "00000000-0000-0000-0000-000000000000".to_string(),
            stamp.start_ticks,
        ),
        ("reused", stamp.boot_id.clone(), stamp.start_ticks + 1),
    ] {
        let id = format!(
            "{:0>12}",
            format!("{:x}", pid as u64 * 16 + tag.len() as u64)
        );
        let dir = container_dir(&id);
        // Written beside it and renamed into place: a `cleanup` running
        // meanwhile (another test) would take a directory without a state
        // file for a crashed run's leftover and remove it.
        let staging = dir.with_extension("staging");
        std::fs::create_dir_all(&staging).unwrap();
        let record = serde_json::json!({
            "id": id, "name": format!("stranger-{tag}-{}", std::process::id()), "image": "busybox",
            "command": ["sleep"], "env": [], "hostname": id, "lower": "/", "created": 0.0,
            "status": "running", "init": {"pid": pid, "start_ticks": start_ticks, "boot_id": boot_id},
            "exit_code": null, "finished": null, "oom_killed": false,
            "cgroup_parent": test_env().cgroup_parent, "auto_remove": false
        });
        std::fs::write(staging.join("state.json"), record.to_string()).unwrap();
        std::fs::rename(&staging, &dir).unwrap();
        let ps = ok(&["ps", "-a"]);
        let row = ps
            .lines()
            .find(|l| l.starts_with(&id))
            .unwrap_or_else(|| panic!("{ps}"));
        assert!(row.contains("Dead"), "{tag}: {row}");
        ok(&["stop", "-t", "0", &id]);
        failed(&["exec", &id, "true"], "is not running");
        ok(&["rm", &id]);
        assert!(!dir.exists());
    }
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

// ------------------------------------------------------------ small holes

/// `-v host:ctr:ro` stays read-only for mounts below the host directory,
/// and keeps their nosuid/nodev. The submount lives in this test thread's
/// own mount namespace.
#[test]
fn read_only_volumes_are_read_only_all_the_way_down() {
    require_root!();
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &host.path().join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some("size=1m"),
    )
    .unwrap();
    let out = stage_command(STAGE)
        .args(["run", "--rm", "--trace", "off", "-v"])
        .arg(format!("{}:/data:ro", host.path().display()))
        .args([
            "busybox",
            "sh",
            "-c",
            "touch /data/x 2>/dev/null && echo top-writable; touch /data/sub/x 2>/dev/null && echo sub-writable; grep ' /data/sub ' /proc/self/mountinfo | cut -d' ' -f6",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains("writable"), "{text}");
    let options = text.trim();
    for flag in ["ro", "nosuid", "nodev"] {
        assert!(options.split(',').any(|o| o == flag), "{options}");
    }
}

/// The tar crate release with the 2026 fixes (RUSTSEC-2026-0067/0068) is
/// required by the manifest itself, not only pinned in the lock file.
#[test]
fn the_manifest_requires_a_fixed_tar() {
    // Read at compile time: the VM runs the test without the sources.
    let manifest = include_str!("../../shared/Cargo.toml");
    let requirement = manifest
        .lines()
        .find_map(|l| l.strip_prefix("tar = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("tar in shared/Cargo.toml");
    let parts: Vec<u32> = requirement.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        parts.as_slice() >= [0, 4, 45].as_slice(),
        "tar = {requirement}"
    );
}

/// Exit 125 for `run` (minibox could not do it), 1 for `image import` (a
/// failed action, docker's code).
#[rstest]
#[case::env_key_like_a_flag(125, &["run", "-e", "-x=1", "busybox", "true"], "\"-x\" is not a variable name")]
#[case::env_file_missing(125, &["run", "--env-file", "/nonexistent", "busybox", "true"], "read --env-file /nonexistent: ENOENT (No such file or directory)")]
#[case::tarball_missing(1, &["image", "import", "nothere", "/nonexistent.tar"], "open /nonexistent.tar: ENOENT (No such file or directory)")]
#[case::not_a_tarball(1, &["image", "import", "passwd", "/etc/passwd"], "/etc/passwd is not a tar archive")]
fn bad_input_is_one_line_with_its_cause_once(
    #[case] code: i32,
    #[case] args: &[&str],
    #[case] message: &str,
) {
    require_root!();
    let err = refused_with(code, args, message);
    // The cause appears once, and never the bytes of the input.
    assert_eq!(
        err.matches("ENOENT").count().min(1),
        err.matches("ENOENT").count()
    );
    assert!(!err.contains("root:x:0"), "{err}");
}

/// `--name` equal to another container's id is refused.
#[test]
fn a_name_that_is_another_containers_id_is_refused() {
    require_root!();
    let c = Named::new("first");
    let id = ok(&[
        "run", "-d", "--trace", "off", "--name", &c, "busybox", "sleep", "1000",
    ]);
    refused(
        &["run", "--rm", "--name", id.trim(), "busybox", "true"],
        "is in use by container",
    );
}

/// A killed `image import` leaves a staging directory; `cleanup` removes it.
#[test]
fn cleanup_removes_a_killed_import() {
    require_root!();
    let fifo_dir = tempfile::tempdir().unwrap();
    let fifo = fifo_dir.path().join("tarball");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let name = format!("killed-{}", std::process::id());
    let mut import = stage_process(STAGE)
        .args(["image", "import", &name])
        .arg(&fifo)
        .spawn()
        .unwrap();
    // Feed it one entry and keep the pipe open: the import is half done.
    let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(5);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, "half", &b"hello"[..])
        .unwrap();
    let bytes = builder.into_inner().unwrap();
    std::io::Write::write_all(&mut writer, &bytes[..1024]).unwrap();
    let images = test_env().root.join("images");
    let deadline = Instant::now() + Duration::from_secs(10);
    let staging = loop {
        let found = std::fs::read_dir(&images)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with(&format!(".{name}.importing-")) && !n.ends_with(".lock")
            });
        if let Some(entry) = found {
            break entry.path();
        }
        assert!(Instant::now() < deadline, "the import never started");
        std::thread::sleep(Duration::from_millis(1));
    };
    import.kill().unwrap();
    import.wait().unwrap();
    drop(writer);
    assert!(staging.exists());
    stage_command(STAGE)
        .arg("cleanup")
        .assert()
        .success()
        .stdout(predicate::str::contains("1 unfinished import(s)"));
    assert!(!staging.exists());
    assert!(std::fs::read_dir(&images)
        .unwrap()
        .flatten()
        .all(|e| !e.file_name().to_string_lossy().contains(&name)));
    let _ = stage_bin(STAGE);
}
