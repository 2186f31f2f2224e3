//! The Chinese book (docs/zh) keeps in step with the English one: every
//! page translated, none stale, the same snapshot files included. The check
//! itself is `tests/tools/zh_sync.py check`; these tests run it on the
//! checkout, and prove on a copy that it fails when one English paragraph
//! changes under its translation.

use assert_cmd::Command;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root exists")
}

fn output_of(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `python3 tests/tools/zh_sync.py --root ROOT ARGS…`, from the workspace root.
fn zh_sync(root: &Path, args: &[&str]) -> Output {
    Command::new("python3")
        .current_dir(workspace())
        .arg("tests/tools/zh_sync.py")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("python3 is needed for tests/tools/zh_sync.py (just setup installs it)")
}

/// Whether python3 is there to run the check. The qemu test VMs
/// (`tests/vm/run.sh`, which leaves `/vm.env` at their root) carry only the
/// test binaries and busybox: there the check is skipped, since it reads
/// only text and has run on the host already. Anywhere else under
/// `CI=true`, a missing python3 is a failure, not a skip.
fn have_python3(test: &str) -> bool {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    let in_test_vm = Path::new("/vm.env").exists();
    if std::env::var("CI").is_ok_and(|v| v == "true") && !in_test_vm {
        panic!("{test}: needs python3 for tests/tools/zh_sync.py, and CI=true forbids skipping");
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs python3 for tests/tools/zh_sync.py (just setup installs it)"
    );
    false
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_chinese_book_is_complete_and_in_step() {
    if !have_python3("the_chinese_book_is_complete_and_in_step") {
        return;
    }
    let out = Command::new("python3")
        .current_dir(workspace())
        .args(["tests/tools/zh_sync.py", "check"])
        .output()
        .expect("python3 is needed for tests/tools/zh_sync.py (just setup installs it)");
    assert!(
        out.status.success(),
        "tests/tools/zh_sync.py check failed (see docs/zh/README-translators.md):\n{}",
        output_of(&out)
    );
}

#[test]
fn a_changed_english_paragraph_makes_its_translation_stale() {
    if !have_python3("a_changed_english_paragraph_makes_its_translation_stale") {
        return;
    }
    // A copy of the books, with the snapshots their includes point at.
    let copy = tempfile::tempdir().unwrap();
    copy_tree(&workspace().join("docs"), &copy.path().join("docs"));
    for snapshots in ["tests/tests/snapshots", "checker/tests/snapshots"] {
        copy_tree(&workspace().join(snapshots), &copy.path().join(snapshots));
    }
    let out = zh_sync(copy.path(), &["check"]);
    assert!(
        out.status.success(),
        "the untouched copy should pass:\n{}",
        output_of(&out)
    );

    // Change one paragraph of one English page: its first line of prose
    // (outside code blocks, which the check compares on their own).
    let page = "stage-02-proc-mount.md";
    let english = copy.path().join("docs/src").join(page);
    let text = fs::read_to_string(&english).unwrap();
    let mut in_code = false;
    let paragraph = text
        .lines()
        .find(|l| {
            in_code ^= l.trim_start().starts_with("```");
            !in_code && l.chars().next().is_some_and(char::is_alphabetic)
        })
        .expect("the English page has a paragraph");
    fs::write(
        &english,
        text.replacen(paragraph, &format!("{paragraph} (reworded)"), 1),
    )
    .unwrap();

    let out = zh_sync(copy.path(), &["check"]);
    let report = output_of(&out);
    assert!(
        !out.status.success(),
        "a stale page passed the check:\n{report}"
    );
    assert!(
        report.contains(&format!("docs/zh/src/{page}: stale")),
        "the report does not name the stale page:\n{report}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "one change, one problem:\n{report}"
    );

    // The translator updates the page and stamps it: in step again.
    let out = zh_sync(copy.path(), &["stamp", page]);
    assert!(out.status.success(), "{}", output_of(&out));
    let out = zh_sync(copy.path(), &["check"]);
    assert!(
        out.status.success(),
        "a stamped page is in step:\n{}",
        output_of(&out)
    );

    // A page with no translation at all is named too.
    fs::remove_file(copy.path().join("docs/zh/src/exit-codes.md")).unwrap();
    let out = zh_sync(copy.path(), &["check"]);
    let report = output_of(&out);
    assert!(!out.status.success());
    assert!(
        report.contains("docs/zh/src/exit-codes.md: missing"),
        "the report does not name the missing page:\n{report}"
    );
}
