//! Stage 09's defaults beside a real runtime's: runc, driven by a
//! docker-equivalent `config.json` (not `runc spec`'s, which keeps 3
//! capabilities and puts them in the ambient set), on the same busybox
//! rootfs. The capability sets and the masked and read-only paths must be
//! the same; where minibox differs on purpose, the stage 09 chapter says so.
//! And podman (with runc), whose defaults differ from docker's: the same
//! view, given podman's three dropped capabilities as `--cap-drop` flags.

use minibox::security::{caps::Caps, masks};
use minibox_tests::{
    compat_flags, default_rootfs, require_root, stage_command, stderr, stdout, test_env,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What a container's PID 1 sees of itself: its capability sets, and each
/// mount under /proc and /sys with its filesystem type — except
/// /sys/fs/cgroup, where minibox differs on purpose on v1 (the stage 09
/// chapter: no cgroup namespace and no cgroupfs there, as docker on v1
/// keeps the host's namespace; runc binds the container's v1 cgroups).
const SCRIPT: &str = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/1/status; \
    sed -n 's/^[^ ]* [^ ]* [^ ]* [^ ]* \\([^ ]*\\) .* - \\([^ ]*\\) .*/\\1 \\2/p' /proc/1/mountinfo \
    | grep -E '^/(proc|sys)/' | grep -v '^/sys/fs/cgroup' | sort";

fn minibox_view(flags: &[&str]) -> String {
    let out = stage_command("09-hardening")
        .arg("run")
        .args(compat_flags("09-hardening"))
        .args(["--trace", "off"])
        .args(flags)
        .args(["sh", "-c", SCRIPT])
        .timeout(Duration::from_secs(60))
        .output()
        .expect("run 09-hardening");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// runc with docker's defaults: its 14 capabilities in bounding, permitted
/// and effective, nothing inheritable or ambient, docker's masked and
/// read-only paths, a cgroup under this test process's own parent.
fn runc_view(runc: &Path) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bundle = dir.path();
    let spec = Command::new(runc)
        .arg("spec")
        .current_dir(bundle)
        .output()
        .map_err(|e| e.to_string())?;
    if !spec.status.success() {
        return Err(format!("runc spec: {}", stderr(&spec)));
    }
    let text = std::fs::read_to_string(bundle.join("config.json")).map_err(|e| e.to_string())?;
    let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let docker: Vec<&str> = Caps::docker_default().names();
    config["root"] = serde_json::json!({"path": default_rootfs(), "readonly": true});
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sh", "-c", SCRIPT]);
    config["process"]["noNewPrivileges"] = false.into();
    config["process"]["capabilities"] = serde_json::json!({
        "bounding": docker, "permitted": docker, "effective": docker,
    });
    config["linux"]["maskedPaths"] = serde_json::json!(masks::MASKED);
    config["linux"]["readonlyPaths"] = serde_json::json!(masks::READ_ONLY);
    config["linux"]["cgroupsPath"] =
        format!("/{}-runc-{}", test_env().cgroup_parent, std::process::id()).into();
    std::fs::write(bundle.join("config.json"), config.to_string()).map_err(|e| e.to_string())?;
    let state = bundle.join("state");
    let id = format!("minibox-compare-{}", std::process::id());
    let out = Command::new(runc)
        .arg("--root")
        .arg(&state)
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(&id)
        .output()
        .map_err(|e| e.to_string())?;
    let _ = Command::new(runc)
        .arg("--root")
        .arg(&state)
        .args(["delete", "-f", &id])
        .output();
    if !out.status.success() {
        return Err(format!("runc run: {}", stderr(&out).trim()));
    }
    Ok(stdout(&out))
}

#[test]
fn stage_09_matches_runc_with_dockers_defaults() {
    require_root!();
    let Some(runc) = ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        // The qemu VMs carry no runc; CI's host does (.ci/run installs it).
        assert!(
            std::env::var("CI").is_err() || Path::new("/vm.env").exists(),
            "runc is missing: .ci/run installs it"
        );
        eprintln!(
            "SKIPPED stage_09_matches_runc_with_dockers_defaults: runc is not installed here"
        );
        return;
    };
    let theirs = runc_view(runc).expect("runc runs the busybox rootfs with docker's defaults");
    let ours = minibox_view(&[]);
    assert_eq!(
        ours, theirs,
        "stage 09 (left) and runc with docker's defaults (right) differ"
    );
}

/// podman with runc, all of its state in a temporary directory and its
/// cgroup under this test process's own parent; podman's default limits
/// (nofile 1048576) would exceed this process's, so they are given.
fn podman_view(podman: &Path, runc: &Path) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // Under this test process's own cgroup parent, which the next test run
    // removes with the rest of it: podman removes its cgroups only after
    // it has returned.
    let parent = format!("/{}/podman", test_env().cgroup_parent);
    // In a mount namespace of its own with a fresh /run: podman and the
    // runc it drives keep state there (/run/libpod, /run/runc, …), which
    // must not outlive the test on the host.
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .args([
            "sh",
            "-c",
            "mount -t tmpfs -o mode=0755 minibox-test /run && exec \"$@\"",
            "sh",
        ])
        .arg(podman)
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--runroot")
        .arg(dir.path().join("run"))
        .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
        .arg("--runtime")
        .arg(runc)
        .args(["run", "--rm", "--network", "none"])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .arg("--cgroup-parent")
        .arg(&parent)
        .arg("--rootfs")
        // `:O`: an overlay over the rootfs, which podman would otherwise
        // write into (/etc/hosts, /etc/mtab, /run/.containerenv).
        .arg(format!("{}:O", default_rootfs().display()))
        .args(["sh", "-c", SCRIPT])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("podman run: {}", stderr(&out).trim()));
    }
    Ok(stdout(&out))
}

#[test]
fn stage_09_matches_podman_given_podmans_capabilities() {
    require_root!();
    let find = |names: &'static [&'static str]| -> Option<&'static Path> {
        names.iter().map(Path::new).find(|p| p.exists())
    };
    let (Some(podman), Some(runc)) = (
        find(&["/usr/bin/podman"]),
        find(&["/usr/sbin/runc", "/usr/bin/runc"]),
    ) else {
        assert!(
            std::env::var("CI").is_err() || Path::new("/vm.env").exists(),
            "podman or runc is missing: .ci/run installs them"
        );
        eprintln!("SKIPPED stage_09_matches_podman_given_podmans_capabilities: no podman here");
        return;
    };
    let theirs = podman_view(podman, runc).expect("podman runs the busybox rootfs");
    // podman's 11: docker's 14 without NET_RAW, MKNOD and AUDIT_WRITE.
    let ours = minibox_view(&[
        "--cap-drop",
        "NET_RAW",
        "--cap-drop",
        "MKNOD",
        "--cap-drop",
        "AUDIT_WRITE",
    ]);
    assert!(ours.contains("CapBnd:\t00000000800405fb"), "{ours}");
    // The lists differ in two lines, each way round (the chapter): podman
    // masks /sys/dev/block, which docker does not; docker (so minibox)
    // masks /proc/interrupts, which podman 4 does not.
    let without = |text: &str, line: &str| -> Vec<String> {
        let lines: Vec<String> = text.lines().map(String::from).collect();
        assert!(lines.iter().any(|l| l == line), "no {line:?} in {text}");
        lines.into_iter().filter(|l| l != line).collect()
    };
    assert_eq!(
        without(&ours, "/proc/interrupts tmpfs"),
        without(&theirs, "/sys/dev/block tmpfs"),
        "stage 09 with podman's capabilities (left) and podman (right) differ"
    );
}
