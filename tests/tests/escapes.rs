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

/// Stage 09 closes every one of them.
#[test]
fn stage_09_closes_every_way_out() {
    require_root!();
    let outcomes = battery("09-hardening");
    for (name, outcome) in &outcomes {
        assert!(
            !outcome.starts_with("ESCAPED"),
            "09: {name} is still open: {outcome}\n{}",
            report(&outcomes)
        );
    }
    insta::assert_snapshot!(format!("escapes_09_{}", cgroup_mode()), report(&outcomes));
}
