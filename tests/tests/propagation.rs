//! On a systemd host `/` is a shared mount, and a new mount namespace made
//! from it stays a peer: mounts made inside propagate back out. This host's
//! `/` may be private, so the test builds a systemd-like world first: a
//! mount namespace whose whole tree is made shared, in which it runs the
//! stage. Stage 01, which never makes its tree private, is the control:
//! its mount does leak out, so the world really is a shared one.

use minibox_tests::{normalize_mounts, require_root, stage_bin};
use rstest::rstest;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Run `script` with `sh` in a new mount namespace whose mounts are all
/// shared, with `$STAGE`, `$STAGE01` and `$OUT` set.
fn in_shared_world(stage: &str, script: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let mut command = Command::new("sh");
    command
        .args(["-euc", script])
        .env("STAGE", stage_bin(stage))
        .env("STAGE01", stage_bin("01-namespaces"))
        .env("OUT", out.path())
        .env("NO_COLOR", "1");
    // SAFETY: runs in the forked child before exec, and only makes
    // syscalls, which allocate nothing and take no locks.
    unsafe {
        command.pre_exec(|| {
            use nix::mount::{mount, MsFlags};
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            // Private first: where the test runs on a shared / (the VM),
            // this namespace must not be a peer of the test runner's, or the
            // control below would cover the runner's own /proc. Then shared
            // again, in peer groups of its own.
            for flags in [MsFlags::MS_PRIVATE, MsFlags::MS_SHARED] {
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | flags,
                    None::<&str>,
                )?;
            }
            Ok(())
        });
    }
    let status = command.status().expect("start sh");
    assert!(status.success());
    out
}

fn read(dir: &tempfile::TempDir, name: &str) -> String {
    std::fs::read_to_string(dir.path().join(name)).unwrap()
}

#[rstest]
fn container_mounts_stay_in_the_container(
    #[values("02-proc-mount", "03-pipe-args", "04-pivot-root")] stage: &str,
) {
    require_root!();
    let world = in_shared_world(
        stage,
        r#"cat /proc/self/mountinfo > "$OUT/before"
           "$STAGE" run --trace off cat /proc/self/mountinfo > "$OUT/inside"
           cat /proc/self/mountinfo > "$OUT/after"
           # Control: stage 01 mounts proc without making its tree private.
           # The mount propagates out and covers this namespace's /proc with
           # the container's, where our own pid does not exist.
           "$STAGE01" run --trace off mount -t proc proc /proc
           if [ -e /proc/self/mountinfo ]; then echo intact; else echo covered; fi > "$OUT/control""#,
    );
    let before = read(&world, "before");
    let root_line = before
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap();
    assert!(
        root_line.contains("shared:"),
        "the outer / is not shared: {root_line}"
    );

    // The container did mount its own /proc ...
    let proc_mounts = |table: &str| {
        normalize_mounts(table)
            .iter()
            .filter(|l| l.starts_with("/proc proc"))
            .count()
    };
    assert!(proc_mounts(&read(&world, "inside")) >= 1);
    // ... and the outer mount table did not change at all.
    assert_eq!(before, read(&world, "after"));
    // While the unprotected stage 01 mount replaced the outer /proc.
    assert_eq!(read(&world, "control"), "covered\n");
}
