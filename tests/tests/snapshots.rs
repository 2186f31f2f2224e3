//! Snapshots of what each stage does: its trace, the container's mount
//! table, and (stage 04) its /dev. Reviewed like code: a change here is a
//! change in what the course teaches. `docs/` includes these files.

use minibox_tests::{
    host_mountinfo, mount_table_diff, normalize_mounts, redact_trace, require_root, run_stage,
    stderr, stdout, STAGES,
};
use rstest::rstest;

/// The plain trace of one small container run, PIDs and paths redacted.
#[rstest]
fn trace(#[values(STAGES[0], STAGES[1], STAGES[2], STAGES[3])] stage: &str) {
    require_root!();
    let out = run_stage(stage, ["--hostname", "snapbox", "/bin/sh", "-c", "echo hi"]);
    assert_eq!(stdout(&out), "hi\n", "{}", stderr(&out));
    insta::assert_snapshot!(
        format!("trace_{}", &stage[..2]),
        redact_trace(&stderr(&out))
    );
}

/// Stages 01–03 start from a copy of the host's mount table: snapshot what
/// they change in it.
#[rstest]
fn mounts_changed(#[values(STAGES[0], STAGES[1], STAGES[2])] stage: &str) {
    require_root!();
    let host = host_mountinfo();
    let out = run_stage(stage, ["cat", "/proc/self/mountinfo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!(
        format!("mounts_{}", &stage[..2]),
        mount_table_diff(&host, &stdout(&out))
    );
}

/// Stage 04's mount table is entirely its own: snapshot all of it. The root
/// is a bind mount of the rootfs, whose type and options are the host
/// file system's, so that one line is reduced to its mount point.
#[test]
fn mounts_04() {
    require_root!();
    let out = run_stage("04-pivot-root", ["cat", "/proc/self/mountinfo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table: Vec<String> = normalize_mounts(&stdout(&out))
        .into_iter()
        .map(|line| {
            if line.starts_with("/ ") {
                "/ [rootfs bind mount]".to_string()
            } else {
                line
            }
        })
        .collect();
    insta::assert_snapshot!("mounts_04", table.join("\n"));
}

/// Every entry of the container's /dev: type, mode, device number.
#[test]
fn dev_04() {
    require_root!();
    let script = r#"for f in $(find /dev | sort); do
        if [ -L "$f" ]; then echo "$f -> $(readlink "$f")";
        else stat -c '%n %F %a %t:%T' "$f"; fi
    done"#;
    let out = run_stage("04-pivot-root", ["sh", "-c", script]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!("dev_04", stdout(&out));
}
