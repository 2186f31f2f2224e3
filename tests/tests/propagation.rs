//! On a systemd host `/` is a shared mount, and a new mount namespace made
//! from it stays a peer: mounts made inside propagate back out. This host's
//! `/` is private, so the test builds a systemd-like world first: a mount
//! namespace whose tree is made rshared (`unshare --propagation shared`),
//! and runs the stage inside it.

use minibox_tests::{normalize_mounts, require_root, stage_bin};
use rstest::rstest;
use std::process::Command;

/// Run `script` in a new mount namespace whose mounts are all shared, with
/// `$STAGE` and `$OUT` set; return what it wrote to `$OUT/<name>`.
fn in_shared_world(stage: &str, script: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "shared", "sh", "-euc", script])
        .env("STAGE", stage_bin(stage))
        .env("OUT", out.path())
        .env("NO_COLOR", "1")
        .status()
        .expect("unshare (util-linux or busybox) is needed");
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
           # Control: the same proc mount *without* making the tree private
           # does propagate out, so this world really is a shared one.
           unshare --mount --propagation unchanged mount -t proc proc /proc
           cat /proc/self/mountinfo > "$OUT/control""#,
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
    // While an unprotected mount shows up outside.
    assert_eq!(
        proc_mounts(&read(&world, "control")),
        proc_mounts(&before) + 1
    );
}
