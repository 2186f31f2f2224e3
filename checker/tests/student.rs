//! Student mode (`just student N`, made by tests/tools/student.py): a copy
//! of the workspace where stage N's library functions are stubs. The copy
//! must build, and the checker run on it must fail stage N's checks and
//! no earlier stage's — that is what tells a student their stubs are the
//! only thing missing, and later that their own code is the thing that
//! passes.
//!
//! Building a copy costs a build of the workspace's dependencies the first
//! time (into target/student-test, kept between runs); after that, making
//! the copy again rewrites only the files whose bytes change, so cargo
//! rebuilds the library and the stages (about a minute here) when the
//! stage changes, and nothing when it does not. So by
//! default one stage is built and graded (02); `MINIBOX_STUDENT_STAGES=all`
//! (what `just test` sets) or a list such as `MINIBOX_STUDENT_STAGES="3 6"`
//! grades those. Every stage's stubs are applied without a build in
//! `every_stub_applies_to_the_source`.
//!
//! The checker runs containers, so the grading test needs root: without it
//! it prints `SKIPPED …` and passes, and under `CI=true` it fails.

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The stages student mode covers (student/stubs/NN.rs).
const COVERED: [u8; 6] = [2, 3, 4, 5, 6, 7];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the checker lives in the workspace")
        .to_path_buf()
}

fn root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs root, and CI=true forbids skipping");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs root (the checker runs containers); run `just test`, which uses sudo"
    );
    false
}

/// Whether python3 (which makes the copy) and cargo (which builds it) are
/// here. The qemu test VMs (`tests/vm/run.sh`, which leaves `/vm.env` at
/// their root) carry only the test binaries and busybox: there these tests
/// are skipped, having run on the host already. Anywhere else under
/// `CI=true`, a missing tool is a failure, not a skip.
fn tools_here(test: &str) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let missing: Vec<&str> = [("python3", "python3"), ("cargo", cargo.as_str())]
        .into_iter()
        .filter(|(_, program)| {
            !Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(|(name, _)| name)
        .collect();
    if missing.is_empty() {
        return true;
    }
    let in_test_vm = Path::new("/vm.env").exists();
    if std::env::var("CI").is_ok_and(|v| v == "true") && !in_test_vm {
        panic!("{test}: needs {missing:?}, and CI=true forbids skipping");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs {} to make and build a student copy (just setup installs them)",
        missing.join(" and ")
    );
    false
}

fn student_py(args: &[&str]) -> std::process::Output {
    Command::new("python3")
        .arg(workspace().join("tests/tools/student.py"))
        .args(args)
        .output()
        .expect("run python3 tests/tools/student.py")
}

/// The check ids stage N's student gets wrong with only the stubs: each
/// must fail (more may, as long as they are stage N's).
fn must_fail(stage: u8) -> &'static [&'static str] {
    match stage {
        // Stage 01's /proc: the host's, mounted without nosuid,nodev,noexec.
        2 => &["02.proc-own", "02.proc-options"],
        // The space-joined command of the reference tutorial.
        3 => &[
            "03.argv-count",
            "03.argv-spaces",
            "03.argv-empty",
            "03.argv-non-utf8",
        ],
        // chroot instead of pivot_root (the chroot runtime's two failures),
        // the image's empty /dev.
        4 => &["04.root-escape", "04.root-mount", "04.dev-basic"],
        // No cgroup of its own.
        5 => &[
            "05.cgroup-own",
            "05.memory-limit",
            "05.pids-limit",
            "05.memory-enforced",
            "05.pids-enforced",
        ],
        // Writes land in the image; no volumes.
        6 => &["06.volume-rw", "06.volume-ro", "06.image-unchanged"],
        // The record never says running.
        7 => &["07.ps", "07.stop"],
        _ => unreachable!("stage {stage} is not covered"),
    }
}

#[test]
fn every_stub_applies_to_the_source() {
    if !tools_here("every_stub_applies_to_the_source") {
        return;
    }
    // Each stub finds exactly one function to replace, and its section
    // exists in the chapter the stub's message sends the student to.
    let out = student_py(&["--check"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "student.py --check: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stage in COVERED {
        assert!(
            stdout.contains(&format!("stage {stage:02}: ")),
            "stage {stage:02} has no stubs: {stdout}"
        );
    }
}

#[test]
fn a_copy_is_never_made_over_a_students_work() {
    if !tools_here("a_copy_is_never_made_over_a_students_work") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("minibox-student-test-{}", std::process::id()));
    // A student's copy (it has the stubs' helper) with their work in it:
    // refused without --force.
    let copy = dir.join("student-2");
    std::fs::create_dir_all(copy.join("shared/src")).expect("mkdir");
    std::fs::write(copy.join("shared/src/student.rs"), "// the helper").expect("write");
    std::fs::write(copy.join("mine.rs"), "// my work").expect("write");
    let refused = student_py(&["2", "--dest", &copy.display().to_string()]);
    // Any other directory: refused even with --force, which would delete
    // what the project lacks.
    let other = dir.join("not-a-copy");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("precious"), "data").expect("write");
    let forced = student_py(&["2", "--dest", &other.display().to_string(), "--force"]);
    let kept = copy.join("mine.rs").exists() && other.join("precious").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "an existing copy must be refused"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(
        forced.status.code(),
        Some(1),
        "a directory that is not a copy must be refused"
    );
    assert!(String::from_utf8_lossy(&forced.stderr).contains("not a student copy"));
    assert!(kept, "a file that was there before is gone");
}

/// The stages to build and grade: `MINIBOX_STUDENT_STAGES` (`all`, or
/// numbers), 02 when unset.
fn stages_to_grade() -> Vec<u8> {
    match std::env::var("MINIBOX_STUDENT_STAGES") {
        Ok(v) if v.trim() == "all" => COVERED.to_vec(),
        Ok(v) => v
            .split_whitespace()
            .map(|s| {
                s.parse()
                    .ok()
                    .filter(|n| COVERED.contains(n))
                    .unwrap_or_else(|| panic!("MINIBOX_STUDENT_STAGES: {s} is not a covered stage"))
            })
            .collect(),
        Err(_) => vec![2],
    }
}

#[test]
fn student_mode_fails_exactly_stage_n() {
    if !tools_here("student_mode_fails_exactly_stage_n")
        || !root("student_mode_fails_exactly_stage_n")
    {
        return;
    }
    let base = workspace().join("target/student-test");
    let copy = base.join("copy");
    let target = base.join("target");
    for stage in stages_to_grade() {
        // The copy, always at the same place: cargo rebuilds only what the
        // stubs change.
        let out = student_py(&[
            &stage.to_string(),
            "--dest",
            &copy.display().to_string(),
            "--force",
        ]);
        assert!(
            out.status.success(),
            "student.py {stage}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let package = std::fs::read_dir(copy.join("stages"))
            .expect("stages/")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(&format!("{stage:02}-")))
            .unwrap_or_else(|| panic!("no stage {stage:02} in the copy"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .current_dir(&copy)
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--quiet", "-p", "minibox-check", "-p"])
            .arg(format!("stage-{package}"))
            .status()
            .expect("run cargo build");
        assert!(
            built.success(),
            "stage {stage:02}'s student copy does not build"
        );

        let out = Command::new(target.join("debug/minibox-check"))
            .args([&stage.to_string(), "--json"])
            .env("NO_COLOR", "1")
            .env_remove("MINIBOX_TRACE")
            .output()
            .expect("run the copy's minibox-check");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "stage {stage:02}: minibox-check --json printed no JSON ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(
            out.status.code(),
            Some(1),
            "stage {stage:02}: a failed check means exit 1"
        );
        assert_eq!(
            json["reached"],
            u64::from(stage - 1),
            "stage {stage:02}: reached"
        );

        let prefix = format!("{stage:02}.");
        let mut failed = BTreeSet::new();
        for check in json["checks"].as_array().expect("checks") {
            let id = check["id"].as_str().unwrap_or_default();
            let status = check["status"].as_str().unwrap_or_default();
            if status == "fail" {
                assert!(
                    id.starts_with(&prefix),
                    "stage {stage:02}'s stubs fail {id}, a check of an earlier stage: {}",
                    check["detail"]
                );
                failed.insert(id.to_string());
            }
        }
        for id in must_fail(stage) {
            assert!(
                failed.contains(*id),
                "stage {stage:02}: {id} passes with the stubs in place (failed: {failed:?})"
            );
        }

        // The stubs said so, where the student will look: on stderr.
        let said = |v: &Value| {
            v.as_array().is_some_and(|items| {
                items.iter().any(|i| {
                    i["stderr"]
                        .as_str()
                        .is_some_and(|e| e.contains("minibox student mode:"))
                })
            })
        };
        assert!(
            said(&json["runs"]) || said(&json["lifecycle"]),
            "stage {stage:02}: no run's stderr says a stub stood in"
        );
        let _ = writeln!(
            std::io::stderr(),
            "student mode, stage {stage:02}: builds; fails {failed:?}, passes stages before {stage:02}"
        );
    }
}
