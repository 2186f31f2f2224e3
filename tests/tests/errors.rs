//! Bad input: one line that names the problem, exit 125, nothing left behind.

use minibox_tests::{apply, every_stage, host_mountinfo, require_root, rstest, stage_command};
use predicates::prelude::*;

fn one_line(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text).into_owned();
    assert_eq!(text.lines().count(), 1, "expected one line, got:\n{text}");
    text
}

#[apply(every_stage)]
#[case::unknown_flag(&["run", "--frobnicate", "true"], "unexpected argument '--frobnicate'")]
#[case::no_command(&["run"], "required arguments were not provided")]
#[case::bad_trace_mode(&["run", "--trace", "loud", "true"], "invalid value 'loud'")]
#[case::bad_hostname(&["run", "--hostname", "no spaces", "true"], "invalid --hostname")]
#[case::tty_without_terminal(&["run", "-it", "true"], "the input device is not a TTY")]
fn usage_errors(stage: &str, #[case] args: &[&str], #[case] message: &str) {
    let before = host_mountinfo();
    let out = stage_command(stage)
        .args(args)
        .write_stdin("")
        .assert()
        .code(125)
        .stdout("")
        .stderr(predicate::str::contains(message));
    one_line(&out.get_output().stderr);
    assert_eq!(before, host_mountinfo());
}

#[test]
fn a_missing_rootfs_is_named() {
    let out = stage_command("04-pivot-root")
        .args(["run", "--rootfs", "/nonexistent/rootfs", "true"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "rootfs /nonexistent/rootfs not found",
        ));
    one_line(&out.get_output().stderr);
}

#[test]
fn init_is_not_for_humans() {
    let out = stage_command("04-pivot-root")
        .args(["init"])
        .assert()
        .code(125)
        .stderr(predicate::str::contains(
            "`init` is started by `run`, not by hand",
        ));
    one_line(&out.get_output().stderr);
}

#[test]
fn help_exits_zero() {
    stage_command("04-pivot-root")
        .args(["run", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--rootfs"));
}

#[test]
fn a_rootfs_that_is_a_file_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let out = stage_command("04-pivot-root")
        .args(["run", "--rootfs"])
        .arg(file.path())
        .arg("true")
        .assert()
        .code(125)
        .stderr(predicate::str::contains("is not a directory"));
    one_line(&out.get_output().stderr);
}

/// A setup step that fails in init shows its errno in the trace, stops the
/// run, and comes back as run's one-line error.
#[test]
fn a_failed_step_shows_its_errno() {
    require_root!();
    // `proc` is a file here, so init cannot make the /proc mount point.
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::write(rootfs.path().join("proc"), "not a directory").unwrap();
    let out = stage_command("04-pivot-root")
        .args(["run", "--hostname", "broken", "--rootfs"])
        .arg(rootfs.path())
        .arg("true")
        .env("NO_COLOR", "1")
        .assert()
        .code(125);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains(" └─ mkdir(\"/proc\", 0755) ✗ EEXIST (File exists)\n"),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap();
    assert_eq!(
        last,
        "04-pivot-root: mkdir(\"/proc\", 0755): EEXIST (File exists)"
    );
}
