//! The escape battery: the first step of each well-known way out of a
//! container, tried from inside stages 07, 08 and 09. Each step must work in
//! 07 and 08 (root with every capability: the way is open) and fail in 09.
//! A probe the machine itself rules out (this build machine has no
//! `/proc/kcore`, no `/proc/sysrq-trigger`, no loadable modules; the VMs'
//! files are not on ext4) is "not applicable here" and counts for nothing.
//!
//! Nothing here harms the host: files are opened for writing and closed
//! unwritten, mounts are undone at once, the only block device read is a
//! loop device this test made over a file of known content, and the kernel
//! gets arguments it rejects after its permission check
//! (tests/helpers/escape_probe.c).

use minibox_tests::{cgroup_mode, compat_flags, require_root, stage_command, stderr, stdout};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A loop device over a file this test wrote, detached when dropped.
struct LoopDevice {
    path: String,
    major: u32,
    minor: u32,
}

impl LoopDevice {
    fn new(dir: &Path) -> Option<LoopDevice> {
        let image = dir.join("disk.img");
        let mut content = b"minibox-loop-ok!".to_vec();
        content.resize(64 * 1024, 0);
        std::fs::write(&image, content).ok()?;
        let out = Command::new("losetup")
            .args(["--find", "--show", "--read-only"])
            .arg(&image)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&path).ok()?.rdev();
        Some(LoopDevice {
            major: nix::sys::stat::major(rdev) as u32,
            minor: nix::sys::stat::minor(rdev) as u32,
            path,
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.path]).status();
    }
}

/// Why a probe cannot say anything on this machine, if it cannot.
fn not_applicable(probe: &str, probe_dir: &Path, have_loop: bool) -> Option<&'static str> {
    let fs_is_ext = || {
        nix::sys::statfs::statfs(probe_dir)
            .map(|s| s.filesystem_type() == nix::sys::statfs::EXT4_SUPER_MAGIC)
            .unwrap_or(false)
    };
    match probe {
        "sysrq-trigger" if !Path::new("/proc/sysrq-trigger").exists() => {
            Some("the kernel has no /proc/sysrq-trigger")
        }
        "kcore" if !Path::new("/proc/kcore").exists() => Some("the kernel has no /proc/kcore"),
        "init_module" if !Path::new("/proc/modules").exists() => {
            Some("the kernel loads no modules")
        }
        "block-device" if !have_loop => Some("no loop device can be made here"),
        "open_by_handle_at" if !fs_is_ext() => Some("the test's files are not on ext4"),
        _ => None,
    }
}

/// Run every probe in one container of `stage`; the outcome of each.
fn battery(stage: &str) -> BTreeMap<&'static str, String> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let probe = dir.path().join("escape_probe");
    std::fs::write(&probe, minibox_tests::ESCAPE_PROBE).expect("write the probe");
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let loop_device = LoopDevice::new(dir.path());
    let (major, minor) = loop_device.as_ref().map_or((0, 0), |l| (l.major, l.minor));
    let probes: [(&'static str, String); 12] = [
        ("remount /sys rw", "remount-rw /sys".into()),
        (
            "core_pattern",
            "open-write /proc/sys/kernel/core_pattern".into(),
        ),
        ("sysrq-trigger", "open-write /proc/sysrq-trigger".into()),
        ("mount proc", "mount proc /tmp/m1".into()),
        ("mount sysfs", "mount sysfs /tmp/m2".into()),
        ("mount tmpfs", "mount tmpfs /tmp/m3".into()),
        ("release_agent", "release-agent /tmp/m4".into()),
        ("block-device", format!("block {major} {minor}")),
        ("open_by_handle_at", "handle /probe".into()),
        ("init_module", "module".into()),
        ("kcore", "open-read /proc/kcore".into()),
        ("add_key", "add-key".into()),
    ];
    let mut script = String::from("mkdir -p /tmp/m1 /tmp/m2 /tmp/m3 /tmp/m4\n");
    for (name, args) in &probes {
        script.push_str(&format!("echo \"{name}=$(/probe/escape_probe {args})\"\n"));
    }
    let volume = format!("{}:/probe:ro", dir.path().display());
    let out = stage_command(stage)
        .arg("run")
        .args(compat_flags(stage))
        .args(["--trace", "off", "-v", &volume])
        .args(["sh", "-c", &script])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run the battery");
    assert!(out.status.success(), "{stage}: {}", stderr(&out));
    let text = stdout(&out);
    probes
        .iter()
        .map(|(name, _)| {
            let said = text
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{stage}: no answer from {name}:\n{text}"));
            let outcome = match not_applicable(name, dir.path(), loop_device.is_some()) {
                Some(why) => format!("not applicable here ({why})"),
                None if said == "ok empty" => "blocked: masked (reads as empty)".into(),
                None if said.starts_with("ok") => format!("ESCAPED ({said})"),
                None => format!("blocked: {said}"),
            };
            (*name, outcome)
        })
        .collect()
}

fn report(outcomes: &BTreeMap<&str, String>) -> String {
    let text: String = outcomes
        .iter()
        .map(|(name, outcome)| format!("{name:<18} {outcome}\n"))
        .collect();
    // How many entries the host filesystem's root has is the machine's.
    regex::Regex::new(r"root, \d+ entries")
        .expect("a valid regex")
        .replace_all(&text, "root, [N] entries")
        .into_owned()
}

/// Stages 07 and 08 give root every capability: each escape step works.
#[rstest::rstest]
fn the_way_out_is_open_before_stage_09(#[values("07-full", "08-network")] stage: &str) {
    require_root!();
    let outcomes = battery(stage);
    insta::assert_snapshot!(
        format!("escapes_{}_{}", &stage[..2], cgroup_mode()),
        report(&outcomes)
    );
    for (name, outcome) in &outcomes {
        assert!(
            outcome.starts_with("ESCAPED") || outcome.starts_with("not applicable"),
            "{stage}: {name} was not open: {outcome}\n{}",
            report(&outcomes)
        );
    }
}

/// Stage 09 closes every one of them, and stage 10 keeps them closed.
#[rstest::rstest]
fn stage_09_and_later_close_every_way_out(#[values("09-hardening", "10-rootless")] stage: &str) {
    require_root!();
    let outcomes = battery(stage);
    for (name, outcome) in &outcomes {
        assert!(
            !outcome.starts_with("ESCAPED"),
            "{stage}: {name} is still open: {outcome}\n{}",
            report(&outcomes)
        );
    }
    insta::assert_snapshot!(
        format!("escapes_{}_{}", &stage[..2], cgroup_mode()),
        report(&outcomes)
    );
}

/// A throwaway copy of a stage binary and the container it started; the
/// container is removed (by the copy) when this is dropped.
struct CopiedRuntime {
    _dir: tempfile::TempDir,
    binary: std::path::PathBuf,
    container: String,
}

impl CopiedRuntime {
    fn command(&self) -> Command {
        minibox_tests::binary_process(&self.binary)
    }

    fn fingerprint(&self) -> (u64, u64) {
        use std::hash::{Hash, Hasher};
        let bytes = std::fs::read(&self.binary).expect("read the copy");
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        (bytes.len() as u64, hasher.finish())
    }
}

impl Drop for CopiedRuntime {
    fn drop(&mut self) {
        let _ = self.command().args(["rm", "-f", &self.container]).output();
    }
}

/// CVE-2019-5736 on a throwaway copy of `stage`'s binary: a container
/// started by the copy watches its PID namespace; `exec` runs a script
/// `#!/proc/self/exe`, so the kernel starts *the runtime binary* inside the
/// container as the interpreter. Its error message cannot leave (its stderr
/// is a pipe the test filled), which keeps it there while the probe opens
/// its `/proc/PID/exe` and reopens that for writing. The verdict arrives
/// through a FIFO; then the pipe is closed and the copy compared.
fn runtime_binary_probe(stage: &str) -> String {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let binary = dir.path().join(stage);
    std::fs::copy(minibox_tests::stage_bin(stage), &binary).expect("copy the stage binary");
    let probe_dir = dir.path().join("probe");
    std::fs::create_dir(&probe_dir).expect("mkdir");
    let probe = probe_dir.join("escape_probe");
    std::fs::write(&probe, minibox_tests::ESCAPE_PROBE).expect("write the probe");
    let script = probe_dir.join("evil");
    std::fs::write(&script, "#!/proc/self/exe\n").expect("write the script");
    for file in [&probe, &script] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let verdict = probe_dir.join("verdict");
    nix::unistd::mkfifo(&verdict, nix::sys::stat::Mode::from_bits_truncate(0o666)).expect("mkfifo");
    // Past the umask: stage 10's container root is not the host's root.
    std::fs::set_permissions(&verdict, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let runtime = CopiedRuntime {
        binary,
        container: format!("minibox-test-5736-{}-{}", &stage[..2], std::process::id()),
        _dir: dir,
    };
    let before = runtime.fingerprint();

    let mut run = runtime.command();
    run.args(["run", "-d", "--trace", "off", "--name", &runtime.container])
        .arg("--rootfs")
        .arg(minibox_tests::default_rootfs())
        .arg("-v")
        .arg(format!("{}:/probe", probe_dir.display()));
    if minibox_tests::number(stage) >= 8 {
        run.args(["--network", "none"]);
    }
    let started = run
        .args(["/probe/escape_probe", "runtime-binary", "/probe/verdict"])
        .output()
        .expect("start the container");
    assert!(started.status.success(), "{stage}: {}", stderr(&started));

    // A pipe with no room left: whatever writes to it waits.
    let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
    let flags = nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(write_end.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags)).expect("fcntl");
    let chunk = [b'.'; 4096];
    while nix::unistd::write(&write_end, &chunk).is_ok() {}
    nix::fcntl::fcntl(
        write_end.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .expect("fcntl");
    let mut exec = runtime
        .command()
        .args(["exec", "--trace", "off", &runtime.container, "/probe/evil"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(write_end))
        .spawn()
        .expect("start exec");

    // The probe opens the FIFO for writing once it has its verdict.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read_to_string(verdict));
    });
    let said = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("the probe gave no verdict")
        .expect("read the verdict");
    drop(read_end);
    let _ = exec.wait();
    assert_eq!(
        runtime.fingerprint(),
        before,
        "{stage}: the copy of the runtime binary was changed ({said})"
    );
    said.trim().to_string()
}

/// In 07 and 08 the container reaches the runtime's binary through a rw
/// mount: only the kernel's "text busy" (while some minibox process still
/// runs it) stands between it and the host's binary.
#[rstest::rstest]
fn the_runtime_binary_is_reachable_before_stage_09(#[values("07-full", "08-network")] stage: &str) {
    require_root!();
    assert_eq!(runtime_binary_probe(stage), "ok ETXTBSY");
}

/// From 09 on the binary inside the container is a read-only mount of its
/// own (stage 10 run by root too; an ordinary user's is a sealed copy).
#[rstest::rstest]
fn stage_09_and_later_seal_the_runtime_binary(
    #[values("09-hardening", "10-rootless")] stage: &str,
) {
    require_root!();
    assert_eq!(runtime_binary_probe(stage), "EROFS");
}
