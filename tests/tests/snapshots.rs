//! Snapshots of what each stage does: its trace, the container's mount
//! table, and (stage 04) its /dev. Reviewed like code: a change here is a
//! change in what the course teaches. `docs/` includes these files.

use minibox_tests::{
    apply, cgroup_mode, every_stage, host_mountinfo, host_root_stages, mount_table_diff,
    normalize_mounts, number, own_root_stages, redact_trace, require_root, rstest, run_stage,
    run_stage_as_given, stderr, stdout, test_env,
};

/// The plain trace of one small container run, PIDs and paths redacted.
#[apply(every_stage)]
fn trace(stage: &str) {
    require_root!();
    let mut args = vec!["--hostname", "snapbox"];
    // A cgroup parent of this test's own, so whether the trace shows the
    // parent being made does not depend on other tests running beside it.
    let parent = format!("{}-trace{}", test_env().cgroup_parent, &stage[..2]);
    if number(stage) >= 5 {
        args.extend(["--cgroup-parent", &parent]);
    }
    // Stage 06 on: docker's IMAGE COMMAND form, with the default image.
    if number(stage) >= 7 {
        args.push("--rm");
    }
    // Stage 08 here without its bridge (a bridge belongs in a network
    // sandbox: tests/tests/network.rs snapshots that trace).
    if number(stage) >= 8 {
        args.extend(["--network", "none"]);
    }
    if number(stage) >= 6 {
        args.push("busybox");
    }
    args.extend(["/bin/sh", "-c", "echo hi"]);
    if number(stage) >= 9 {
        // Whether this run compiles the seccomp filter or finds it in the
        // cache depends on the tests before it: warm the cache first (in a
        // cgroup parent of its own), so the trace always shows the cache.
        let warm = format!("{parent}-warm");
        let warm_args: Vec<&str> = args
            .iter()
            .map(|&arg| if arg == parent { warm.as_str() } else { arg })
            .collect();
        let out = run_stage_as_given(stage, &warm_args);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run_stage_as_given(stage, &args);
    assert_eq!(stdout(&out), "hi\n", "{}", stderr(&out));
    // From stage 05 on the trace shows cgroup paths, which differ between
    // cgroup v1, hybrid and v2 machines: one snapshot per mode.
    let name = if number(stage) >= 5 {
        format!("trace_{}_{}", &stage[..2], cgroup_mode())
    } else {
        format!("trace_{}", &stage[..2])
    };
    insta::assert_snapshot!(name, redact_trace(&stderr(&out)));
}

/// Stages 01–03 start from a copy of the host's mount table: snapshot what
/// they change in it.
#[apply(host_root_stages)]
fn mounts_changed(stage: &str) {
    require_root!();
    let host = host_mountinfo();
    let out = run_stage(stage, ["cat", "/proc/self/mountinfo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!(
        format!("mounts_{}", &stage[..2]),
        mount_table_diff(&host, &stdout(&out))
    );
}

/// From stage 04 on the mount table is entirely the container's own: snapshot all of it. The root
/// is a bind mount of the rootfs, whose type and options are the host
/// file system's, so that one line is reduced to its mount point.
#[apply(own_root_stages)]
fn mounts_own_root(stage: &str) {
    require_root!();
    let out = run_stage(stage, ["cat", "/proc/self/mountinfo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table: Vec<String> = normalize_mounts(&stdout(&out))
        .into_iter()
        .map(|line| {
            if line.starts_with("/ ") && !line.starts_with("/ overlay ") {
                "/ [rootfs bind mount]".to_string()
            } else {
                line
            }
        })
        .collect();
    // From stage 09 on the table depends on the machine: which of /proc's
    // masked paths its kernel has, and a cgroup namespace's own
    // /sys/fs/cgroup on v2 only.
    let name = match number(stage) {
        n if n >= 9 => format!("mounts_{}_{}", &stage[..2], cgroup_mode()),
        _ => format!("mounts_{}", &stage[..2]),
    };
    insta::assert_snapshot!(name, table.join("\n"));
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
