//! minibox-check, checked: minibox's stages pass their own stage and fail
//! the next one where they should; a runtime that uses chroot instead of
//! pivot_root fails exactly the pivot_root checks; runc, crun, podman and
//! bwrap are graded for what they do (or skipped, with the reason, where
//! they cannot run on this machine); the JSON and JUnit outputs are valid.
//!
//! The checker runs containers, so these tests need root. Without root
//! they print `SKIPPED <test>: …` and pass; under `CI=true` they fail
//! instead, so CI never skips silently. They need the stage binaries too:
//! run them with `cargo test --workspace`, which builds every stage.

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

/// Whether a test that needs root may run (see the module comment).
fn root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs root, and CI=true forbids skipping");
    }
    skipped(
        test,
        "needs root (the checker runs containers); run `just test`, which uses sudo",
    );
    false
}

/// Say a test was skipped, past the test harness's capture.
fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// `target/debug`: where minibox-check and the stage binaries are.
fn bin_dir() -> PathBuf {
    let checker = assert_cmd::cargo::cargo_bin("minibox-check");
    let dir = checker.parent().map(PathBuf::from).unwrap_or_default();
    assert!(
        dir.join("04-pivot-root").exists(),
        "the stage binaries are missing from {}: run the tests with `cargo test --workspace`",
        dir.display()
    );
    dir
}

fn checker() -> Command {
    let mut cmd = Command::cargo_bin("minibox-check").expect("minibox-check is built");
    cmd.env("NO_COLOR", "1").env_remove("MINIBOX_TRACE");
    cmd
}

/// The chroot runtime of tests/runtimes/, as a template.
fn chroot_template() -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/runtimes/chroot-runtime.sh");
    format!("{} {{rootfs}} {{cmd}}", script.display())
}

/// `minibox-check ARGS --json`: the exit code and the parsed result.
fn check_json(args: &[&str]) -> (i32, Value) {
    let out = checker()
        .args(args)
        .arg("--json")
        .output()
        .expect("run minibox-check");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "minibox-check {args:?} --json printed no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

/// The check ids, in the checker's order.
fn ids(json: &Value) -> Vec<String> {
    json["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .map(|c| c["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Check id → status ("pass", "fail", "skip").
fn statuses(json: &Value) -> BTreeMap<String, String> {
    json["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn check<'a>(json: &'a Value, id: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no check {id} in the result"))
}

/// The text output with what varies between runs and machines redacted.
fn redact(text: &str) -> String {
    let dir = bin_dir().display().to_string();
    let rules = [
        (r"minibox-check-\d+(-\d+)?", "minibox-check-[PID]"),
        // An unlimited cgroup: v1 writes a huge number, v2 "max".
        (r"limit (9223372036854771712|max),", "limit [UNLIMITED],"),
    ];
    let mut text = text.replace(&dir, "[TARGET]");
    for (pattern, replacement) in rules {
        text = regex::Regex::new(pattern)
            .expect("valid regex")
            .replace_all(&text, replacement)
            .into_owned();
    }
    text
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({prepend_module_to_snapshot => true, omit_expression => false}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn minibox_stage_04_passes_01_to_04_and_fails_05() {
    if !root("minibox_stage_04_passes_01_to_04_and_fails_05") {
        return;
    }
    bin_dir();
    let (code, json) = check_json(&["5", "--runtime", "minibox:4"]);
    assert_eq!(code, 1, "a failing check means exit 1");
    assert_eq!(json["reached"], 4);
    for (id, status) in statuses(&json) {
        let want = if id.starts_with("05.") {
            "fail"
        } else {
            "pass"
        };
        assert_eq!(status, want, "{id}: {}", check(&json, &id)["detail"]);
    }
    assert!(check(&json, "05.cgroup-own")["hint"]
        .as_str()
        .is_some_and(|h| h.contains("create a cgroup per container")));

    // The table students see: the book includes this very file.
    let out = checker()
        .args(["5", "--runtime", "minibox:4"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    snapshot(
        "minibox_04_at_stage_05",
        &redact(&String::from_utf8_lossy(&out.stdout)),
    );
}

#[test]
fn every_minibox_stage_passes_its_own_stage() {
    if !root("every_minibox_stage_passes_its_own_stage") {
        return;
    }
    bin_dir();
    for stage in 1..=10 {
        let stage = stage.to_string();
        checker()
            .arg(&stage)
            .assert()
            .code(0)
            .stdout(predicate::str::contains(format!(
                "every check of stage{} 01",
                if stage == "1" { "" } else { "s" }
            )));
    }
}

/// Which checks each runtime passes, all graded as stage 10: minibox's
/// stages and the chroot runtime. Each column passes its stage's checks
/// and fails the next stage's where the lesson is missing.
#[test]
fn the_matrix_of_minibox_stages() {
    if !root("the_matrix_of_minibox_stages") {
        return;
    }
    bin_dir();
    let mut columns: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut order = Vec::new();
    for n in 1..=10 {
        let (_, json) = check_json(&["10", "--runtime", &format!("minibox:{n}")]);
        order = ids(&json);
        columns.push((format!("{n:02}"), statuses(&json)));
    }
    let (_, json) = check_json(&["10", "--runtime", &chroot_template()]);
    columns.push(("chroot".into(), statuses(&json)));
    // Where / is shared (systemd hosts, the VMs), stage 01's copied mounts
    // stay in the host's peer groups: 02.no-propagation fails there.
    let name = if root_is_shared() {
        "matrix_shared_root"
    } else {
        "matrix"
    };
    snapshot(name, &matrix(&order, &columns));
}

/// Stage 09's binary has every lesson but the user namespace: checked as
/// stage 10 it fails exactly the 10.* checks, each hint naming chapter 10.
#[test]
fn minibox_09_fails_exactly_the_stage_10_checks() {
    if !root("minibox_09_fails_exactly_the_stage_10_checks") {
        return;
    }
    bin_dir();
    let (code, json) = check_json(&["10", "--runtime", "minibox:9"]);
    assert_eq!(code, 1, "{json:#}");
    let failed: Vec<String> = statuses(&json)
        .into_iter()
        .filter(|(_, s)| s == "fail")
        .map(|(id, _)| id)
        .collect();
    let mut stage_10: Vec<String> = minibox_check::checks::CHECKS
        .iter()
        .filter(|c| c.stage == 10)
        .map(|c| c.id.to_string())
        .collect();
    stage_10.sort();
    assert!(stage_10.len() >= 3, "stage 10 has checks: {stage_10:?}");
    assert_eq!(failed, stage_10, "{json:#}");
    for id in &stage_10 {
        let hint = check(&json, id)["hint"].as_str().unwrap_or_default();
        assert!(hint.contains("chapter 10"), "{id}: {hint}");
    }
    // Its own user namespace is the host's: the detail says so.
    assert!(check(&json, "10.userns")["detail"]
        .as_str()
        .is_some_and(|d| d.contains("the host's user namespace")));
    assert!(check(&json, "10.root-unmapped")["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("host uid 0")));
}

/// Stage 10 with `--userns=single`, run by root: a user namespace whose
/// root is host root, and nothing else mapped. 10.userns and 10.setgroups
/// pass; the checks about who container root is fail.
#[test]
fn a_user_namespace_mapping_root_to_root_fails_the_remap_checks() {
    if !root("a_user_namespace_mapping_root_to_root_fails_the_remap_checks") {
        return;
    }
    let binary = bin_dir().join("10-rootless");
    let template = format!(
        "{} run --rm --name {{name}} --trace off --userns=single --hostname {{hostname}} -m {{memory}} --memory-swap {{memory}} --pids-limit {{pids}} --cgroup-parent {{cgroup_parent}} -v {{volume_rw}}:/vol/rw -v {{volume_ro}}:/vol/ro:ro --network {{network}} --rootfs {{rootfs}} -- {{cmd}}",
        binary.display()
    );
    let (code, json) = check_json(&["10", "--runtime", &template]);
    assert_eq!(code, 1, "{json:#}");
    let failed: Vec<String> = statuses(&json)
        .into_iter()
        .filter(|(_, s)| s == "fail")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        failed,
        ["10.id-range", "10.root-unmapped", "10.volume-owner"],
        "{json:#}"
    );
    assert_eq!(check(&json, "10.userns")["status"], "pass");
    assert!(check(&json, "10.id-range")["detail"]
        .as_str()
        .is_some_and(|d| d.contains("uid 1 is not mapped")));
}

/// Whether the host's / is a shared mount.
fn root_is_shared() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .rev()
        .filter_map(|l| l.split_once(" - ").map(|(before, _)| before))
        .find(|before| before.split(' ').nth(4) == Some("/"))
        .is_some_and(|before| before.split(' ').skip(6).any(|t| t.starts_with("shared:")))
}

/// A table: one row per check, one column per runtime.
fn matrix(ids: &[String], columns: &[(String, BTreeMap<String, String>)]) -> String {
    let mut out = format!("{:20}", "check");
    for (name, _) in columns {
        out.push_str(&format!(" {name:>6}"));
    }
    out.push('\n');
    for id in ids {
        out.push_str(&format!("{id:20}"));
        for (_, statuses) in columns {
            let cell = match statuses.get(id).map(String::as_str) {
                Some("pass") => "ok",
                Some("fail") => "FAIL",
                Some("skip") => "skip",
                _ => "?",
            };
            out.push_str(&format!(" {cell:>6}"));
        }
        out.push('\n');
    }
    out
}

#[test]
fn a_chroot_runtime_fails_the_pivot_root_checks() {
    if !root("a_chroot_runtime_fails_the_pivot_root_checks") {
        return;
    }
    bin_dir();
    let template = chroot_template();
    let (code, json) = check_json(&["4", "--runtime", &template]);
    assert_eq!(code, 1);
    let failed: Vec<String> = statuses(&json)
        .into_iter()
        .filter(|(_, s)| s != "pass")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(failed, ["04.root-escape", "04.root-mount"], "{json:#}");
    let hint = check(&json, "04.root-escape")["hint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        hint.contains("pivot_root") && hint.contains("chapter 04"),
        "{hint}"
    );

    let out = checker()
        .args(["4", "--runtime", &template])
        .output()
        .expect("run");
    let text = redact(&String::from_utf8_lossy(&out.stdout))
        .replace(env!("CARGO_MANIFEST_DIR"), "[CHECKER]");
    snapshot("chroot_runtime_at_stage_04", &text);
}

/// The brief's one-liner: a PID namespace and /proc, then chroot.
#[test]
fn unshare_and_chroot_fails_stage_04_with_the_pivot_root_hint() {
    if !root("unshare_and_chroot_fails_stage_04_with_the_pivot_root_hint") {
        return;
    }
    bin_dir();
    let (code, json) = check_json(&[
        "4",
        "--runtime",
        "unshare --fork --pid --mount-proc chroot {rootfs} {cmd}",
    ]);
    assert_eq!(code, 1);
    let escape = check(&json, "04.root-escape");
    assert_eq!(escape["status"], "fail", "{escape}");
    assert!(escape["hint"]
        .as_str()
        .is_some_and(|h| h.contains("pivot_root")));
    // It shares the host's UTS namespace: stage 01 fails too.
    assert_eq!(check(&json, "01.ns-uts")["status"], "fail");
}

/// Whether a peer runtime is installed; if not, the test says so.
fn installed(test: &str, program: &str) -> bool {
    let found = on_path(program);
    // Not a failure even under CI: the VMs the suite also runs in carry
    // crun alone (the CI machine installs them all: runc, crun, bubblewrap).
    if !found {
        skipped(test, &format!("{program} is not installed"));
    }
    found
}

/// Whether a peer ran the probe at all here; if not, the test says why.
fn ran_here(test: &str, json: &Value) -> bool {
    let run = &json["runs"][0];
    if !run["probe"].is_null() {
        return true;
    }
    skipped(
        test,
        &format!(
            "{} cannot run on this machine: exit {}: {}",
            json["runtime"]["label"].as_str().unwrap_or("the runtime"),
            run["exit_code"],
            run["stderr"].as_str().unwrap_or_default().trim()
        ),
    );
    false
}

/// A peer that .ci/run installs and tests/vm/run.sh packs into the VMs
/// (crun): missing under CI=true is a failure, elsewhere a SKIPPED line.
fn required(test: &str, program: &str) -> bool {
    if on_path(program) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: {program} is missing, and CI=true forbids skipping (.ci/run installs it, tests/vm/run.sh packs it)");
    }
    skipped(test, &format!("{program} is not installed"));
    false
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// The checks an OCI runtime run from the checker's bundle is not graded
/// on (runtime.rs says why): the rest must pass.
/// An OCI runtime from the checker's bundle (runc, crun on pure cgroups):
/// every check passes but those an OCI runtime leaves to its engine.
fn graded_like_an_oci_runtime(json: &Value) {
    for (id, status) in &statuses(json) {
        let want = if oci_not_applicable(id) {
            "skip"
        } else {
            "pass"
        };
        assert_eq!(status, want, "{id}: {}", check(json, id)["detail"]);
    }
}

fn oci_not_applicable(id: &str) -> bool {
    [
        "03.argv-non-utf8",
        "06.image-unchanged",
        "08.net-eth0",
        "08.net-route",
        "09.seccomp",
    ]
    .contains(&id)
        || id.starts_with("07.")
        // The checker's bundle, docker's default, has no user namespace.
        || id.starts_with("10.")
}

#[test]
fn runc_passes_through_04_and_is_graded_for_what_it_does() {
    let test = "runc_passes_through_04_and_is_graded_for_what_it_does";
    if !root(test) || !installed(test, "runc") {
        return;
    }
    let (code, json) = check_json(&["10", "--runtime", "runc"]);
    if !ran_here(test, &json) {
        return;
    }
    assert_eq!(code, 0, "{json:#}");
    graded_like_an_oci_runtime(&json);
    assert!(check(&json, "07.logs")["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("not applicable to runc")));
    assert!(check(&json, "10.userns")["detail"]
        .as_str()
        .is_some_and(|d| d.contains("no user namespace")));
    let out = checker()
        .args(["10", "--runtime", "runc"])
        .output()
        .expect("run");
    snapshot(
        "runc_at_stage_10",
        &redact(&String::from_utf8_lossy(&out.stdout)),
    );
}

/// crun 1.8 refuses hybrid cgroup hosts (this build machine): there the
/// checker marks every check not applicable, with crun's own words, and
/// exits 0. On pure cgroup v2 (the v2 VM, which carries crun) it is graded
/// like runc, from the same bundle.
#[test]
fn crun_is_graded_on_pure_cgroups_and_not_applicable_on_hybrid_ones() {
    let test = "crun_is_graded_on_pure_cgroups_and_not_applicable_on_hybrid_ones";
    if !root(test) || !required(test, "crun") {
        return;
    }
    let (code, json) = check_json(&["10", "--runtime", "crun"]);
    assert_eq!(code, 0, "{json:#}");
    let all = statuses(&json);
    if minibox_check::cgroup::is_hybrid() && !json["not_applicable_here"].is_null() {
        let why = json["not_applicable_here"].as_str().unwrap_or_default();
        assert!(why.contains("refuses hybrid cgroup hosts"), "{why}");
        for (id, status) in &all {
            assert_eq!(status, "skip", "{id}");
            assert!(check(&json, id)["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("not applicable to crun on this host")));
        }
        // Only the first run was tried.
        assert_eq!(json["runs"].as_array().map(Vec::len), Some(1), "{json:#}");
        skipped(
            test,
            &format!("graded not applicable on this hybrid cgroup host: {why}"),
        );
        return;
    }
    assert!(json["not_applicable_here"].is_null(), "{json:#}");
    graded_like_an_oci_runtime(&json);
    let out = checker()
        .args(["10", "--runtime", "crun"])
        .output()
        .expect("run");
    // The v2 VM's result, which the book shows.
    snapshot(
        "crun_at_stage_10",
        &redact(&String::from_utf8_lossy(&out.stdout)),
    );
}

/// Paths where podman (4.3, as root) keeps state by default, none of which
/// the preset may touch: its lock table, the CNI lock (taken even with
/// --network none), CNI leases, network namespaces, libpod's run state,
/// its storage.
const PODMAN_HOST_PATHS: [&str; 7] = [
    "/dev/shm/libpod_lock",
    "/etc/cni/net.d/cni.lock",
    "/var/lib/cni",
    "/run/netns",
    "/run/libpod",
    "/run/containers",
    "/var/lib/containers/storage",
];

/// podman with runc: docker-like defaults of its own (11 capabilities, its
/// seccomp profile, an overlay over the rootfs), graded through stage 10;
/// nothing of it is left on the machine. The VMs carry no podman; under
/// CI=true on the CI machine, which installs it, missing is a failure.
#[test]
fn podman_passes_through_10_and_leaves_nothing_on_the_machine() {
    let test = "podman_passes_through_10_and_leaves_nothing_on_the_machine";
    if !root(test) {
        return;
    }
    let in_vm = std::path::Path::new("/vm.env").exists();
    for program in ["podman", "runc"] {
        if !on_path(program) {
            assert!(
                std::env::var("CI").is_err() || in_vm,
                "{test}: {program} is missing, and CI=true forbids skipping (.ci/run installs it)"
            );
            skipped(test, &format!("{program} is not installed"));
            return;
        }
    }
    // A path that was absent before must be absent after: podman's own
    // cleanup would not remove a lock table or a lock file it made.
    let absent: Vec<&str> = PODMAN_HOST_PATHS
        .iter()
        .copied()
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .collect();
    // Run from an empty directory, which must stay empty: conmon writes
    // an `oom` file into its working directory when a container is
    // OOM-killed (the hog scenario), so the preset runs podman elsewhere.
    let cwd = std::env::temp_dir().join(format!("minibox-check-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).expect("create an empty working directory");
    let out = checker()
        .current_dir(&cwd)
        .args(["10", "--runtime", "podman", "--json"])
        .output()
        .expect("run minibox-check");
    let code = out.status.code().unwrap_or(-1);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let left: Vec<_> = std::fs::read_dir(&cwd)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&cwd);
    assert!(
        left.is_empty(),
        "the podman preset wrote {left:?} into the checker's working directory"
    );
    assert!(
        !json["runs"][0]["probe"].is_null(),
        "podman did not run the probe: {json:#}"
    );
    assert_eq!(code, 0, "{json:#}");
    for (id, status) in &statuses(&json) {
        let not_applicable = ["03.argv-non-utf8", "08.net-eth0", "08.net-route"]
            .contains(&id.as_str())
            || id.starts_with("07.")
            || id.starts_with("10.");
        let want = if not_applicable { "skip" } else { "pass" };
        assert_eq!(status, want, "{id}: {}", check(&json, id)["detail"]);
    }
    // What podman adds to runc's bundle: its seccomp profile, and the
    // overlay (`:O`) that keeps the image unchanged.
    assert_eq!(check(&json, "09.seccomp")["status"], "pass");
    assert_eq!(check(&json, "06.image-unchanged")["status"], "pass");
    // podman's 11 capabilities: docker's 14 without MKNOD, NET_RAW and
    // AUDIT_WRITE.
    assert_eq!(
        json["runs"][0]["probe"]["status"]["CapBnd"],
        "00000000800405fb"
    );
    for path in absent {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "the podman preset left {path} on the machine"
        );
    }
    let out = checker()
        .args(["10", "--runtime", "podman"])
        .output()
        .expect("run");
    snapshot(
        "podman_at_stage_10",
        &redact(&String::from_utf8_lossy(&out.stdout)),
    );
}

/// bubblewrap is a sandbox, not a container runtime: the book shows it as
/// a partial one. Its PID 1 is bwrap itself, it takes no limits and binds
/// the rootfs as it is.
#[test]
fn bwrap_is_a_partial_runtime() {
    let test = "bwrap_is_a_partial_runtime";
    if !root(test) || !installed(test, "bwrap") {
        return;
    }
    let (code, json) = check_json(&["9", "--runtime", "bwrap"]);
    if !ran_here(test, &json) {
        return;
    }
    assert_eq!(code, 1);
    let all = statuses(&json);
    assert_eq!(all["01.pid-1"], "fail");
    for id in [
        "02.proc-own",
        "03.argv-non-utf8",
        "04.root-escape",
        "04.dev-minimal",
        "06.volume-ro",
    ] {
        assert_eq!(all[id], "pass", "{id}: {}", check(&json, id)["detail"]);
    }
    for id in [
        "05.memory-enforced",
        "06.image-unchanged",
        "08.net-eth0",
        "09.capabilities",
    ] {
        assert_eq!(all[id], "fail", "{id}");
    }
    let out = checker()
        .args(["9", "--runtime", "bwrap"])
        .output()
        .expect("run");
    snapshot(
        "bwrap_at_stage_09",
        &redact(&String::from_utf8_lossy(&out.stdout)),
    );
}

#[test]
fn json_and_junit_outputs_are_valid() {
    if !root("json_and_junit_outputs_are_valid") {
        return;
    }
    bin_dir();
    let junit =
        std::env::temp_dir().join(format!("minibox-check-junit-{}.xml", std::process::id()));
    let out = checker()
        .args(["5", "--runtime", "minibox:4", "--json", "--junit"])
        .arg(&junit)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let xml = std::fs::read_to_string(&junit).expect("--junit writes the file");
    let _ = std::fs::remove_file(&junit);

    // JSON: the summary agrees with the checks; every check is complete.
    let checks = json["checks"].as_array().expect("checks");
    let count = |s: &str| checks.iter().filter(|c| c["status"] == s).count();
    assert_eq!(json["summary"]["pass"], count("pass"));
    assert_eq!(json["summary"]["fail"], count("fail"));
    assert_eq!(json["summary"]["skip"], count("skip"));
    assert_eq!(json["passed"], false);
    assert_eq!(json["stage"], 5);
    for c in checks {
        for field in ["id", "stage", "description", "chapter", "status", "detail"] {
            assert!(!c[field].is_null(), "{field} missing in {c}");
        }
        assert_eq!(c["hint"].is_string(), c["status"] == "fail", "{c}");
    }
    assert!(json["runs"].as_array().is_some_and(|r| r.len() == 4));
    assert_eq!(json["runs"][0]["probe"]["pid"], 1);

    // JUnit: well-formed, one suite per stage, one case per check.
    let doc = roxmltree::Document::parse(&xml).expect("--junit writes well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(
        root.attribute("tests"),
        Some(checks.len().to_string().as_str())
    );
    assert_eq!(
        root.attribute("failures"),
        Some(count("fail").to_string().as_str())
    );
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 5);
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    assert_eq!(cases.len(), checks.len());
    let failures = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .count();
    assert_eq!(failures, count("fail"));
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["11"],
        vec!["0"],
        vec!["four"],
        vec!["4", "--runtime", "nosuchpreset"],
        vec!["4", "--runtime", "rt {nope} {cmd}"],
        vec!["4", "--runtime", "rt run {rootfs}"],
        vec!["4", "--runtime", "rt run {cmd}"],
        vec!["4", "--runtime", "rt 'unclosed {cmd}"],
        vec!["4", "--runtime", "minibox:11"],
    ] {
        checker().args(&args).assert().code(2);
    }
    checker()
        .args(["4", "--runtime", "rt {nope} {cmd}"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown placeholder {nope}"));
}

#[test]
fn without_root_the_checker_says_so_and_exits_2() {
    if !root("without_root_the_checker_says_so_and_exits_2") {
        return;
    }
    // A copy in a directory of its own under /tmp: the checkout may sit
    // in a home directory nobody cannot enter (Debian makes them 0700),
    // and then exec would fail before the checker could say anything.
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("minibox-check-nobody-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a directory under the temp dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let binary = dir.join("minibox-check");
    std::fs::copy(assert_cmd::cargo::cargo_bin("minibox-check"), &binary)
        .expect("copy the checker");
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let mut nobody = std::process::Command::new(&binary);
    std::os::unix::process::CommandExt::uid(&mut nobody, 65534);
    std::os::unix::process::CommandExt::gid(&mut nobody, 65534);
    nobody.args(["1", "--runtime", "true {host_cmd}"]);
    let assert = Command::from_std(nobody).assert();
    let _ = std::fs::remove_dir_all(&dir);
    assert
        .code(2)
        .stderr(predicate::str::contains("needs root"));
}

#[test]
fn the_help_lists_presets_and_placeholders() {
    checker()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("{volume_ro}").and(predicate::str::contains("minibox:N")));
}

/// The book's chapter lists every check, and includes the real outputs
/// this suite keeps up to date.
#[test]
fn the_book_names_every_check() {
    let book = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/src/check.md");
    let text = std::fs::read_to_string(&book).expect("docs/src/check.md exists");
    for check in minibox_check::checks::CHECKS {
        assert!(
            text.contains(&format!("`{}`", check.id)),
            "{} does not name {}",
            book.display(),
            check.id
        );
    }
    for snapshot in [
        "minibox_04_at_stage_05",
        "matrix",
        "runc_at_stage_10",
        "crun_at_stage_10",
        "podman_at_stage_10",
        "bwrap_at_stage_09",
    ] {
        assert!(
            text.contains(&format!("check__{snapshot}.snap:5:")),
            "the chapter does not include the {snapshot} output"
        );
    }
}

/// A runtime that mounts on the host and leaves it there fails
/// 02.host-mounts; the checker unmounts what was left under its own work
/// directory and says so.
#[test]
fn a_leaked_mount_fails_02_and_is_cleaned_up() {
    if !root("a_leaked_mount_fails_02_and_is_cleaned_up") {
        return;
    }
    let template = "sh -c 'mount -t tmpfs minibox-check-leak \"$0/tmp\" && exec \"$@\"' {rootfs} \
                    unshare --fork --pid --mount --uts --ipc --net --mount-proc {host_cmd}";
    let (code, json) = check_json(&["2", "--runtime", template]);
    assert_eq!(code, 1);
    let leak = check(&json, "02.host-mounts");
    assert_eq!(leak["status"], "fail", "{leak}");
    assert!(leak["detail"]
        .as_str()
        .is_some_and(|d| d.contains("tmpfs minibox-check-leak")));
    assert!(json["warnings"][0]
        .as_str()
        .is_some_and(|w| w.starts_with("unmounted")));
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mountinfo.contains("minibox-check-leak"),
        "the leaked mount is still there"
    );
}
