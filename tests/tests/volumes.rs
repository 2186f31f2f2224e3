//! Stage 06: the overlay layer keeps the image pristine; volumes reach the
//! host, read-only ones refuse writes; nothing escapes the rootfs.

use minibox_tests::{
    default_rootfs, json_events, require_root, run_stage_as_given, stage_command, stderr, stdout,
    test_env, Container,
};
use predicates::prelude::*;
use rstest::rstest;
use std::path::{Path, PathBuf};

const STAGE: &str = "06-volumes";

/// Pack `dir` into a tarball (symlinks stay symlinks).
fn tarball_of(dir: &Path, into: &Path) {
    let mut builder = tar::Builder::new(std::fs::File::create(into).unwrap());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).unwrap();
    builder.finish().unwrap();
}

/// Import the busybox rootfs as an image of this test's own, so a broken
/// overlay could only ever damage the test's copy.
fn own_image(name: &str) -> PathBuf {
    let tar = tempfile::NamedTempFile::new().unwrap();
    tarball_of(&default_rootfs(), tar.path());
    let _ = stage_command(STAGE).args(["image", "rm", name]).output();
    stage_command(STAGE)
        .args(["image", "import", name])
        .arg(tar.path())
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("imported {name}")));
    test_env().root.join("images").join(name).join("rootfs")
}

/// A copy of the busybox rootfs to doctor, in a temporary directory.
fn rootfs_copy() -> (tempfile::TempDir, PathBuf) {
    let image = tempfile::tempdir().unwrap();
    let rootfs = image.path().join("rootfs");
    let status = std::process::Command::new("cp")
        .args(["-a"])
        .arg(default_rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success());
    (image, rootfs)
}

/// The layer directory from a JSON trace.
fn layer_dir(events: &[serde_json::Value]) -> PathBuf {
    events
        .iter()
        .filter_map(|e| e["step"].as_str())
        .find_map(|s| {
            let path = s.strip_prefix("mkdir(\"")?.strip_suffix("\", 0700)")?;
            let path = Path::new(path);
            (path.parent()? == test_env().root.join("containers")).then(|| path.to_path_buf())
        })
        .expect("the trace shows the layer being made")
}

#[test]
fn writes_land_in_the_layer_and_never_in_the_image() {
    require_root!();
    let image = own_image("pristine");
    let container = Container::start(
        STAGE,
        [
            "pristine",
            "sh",
            "-c",
            "echo new > /etc/added; echo changed >> /etc/passwd; rm /bin/ls; echo ready; read x",
        ],
    );
    let layer = layer_dir(&container.events);
    let upper = layer.join("upper");
    // The changes are in the container's upper dir ...
    assert_eq!(
        std::fs::read_to_string(upper.join("etc/added")).unwrap(),
        "new\n"
    );
    assert!(std::fs::read_to_string(upper.join("etc/passwd"))
        .unwrap()
        .ends_with("changed\n"));
    // ... a deleted file is a whiteout: a 0:0 character device ...
    let whiteout = std::fs::symlink_metadata(upper.join("bin/ls")).unwrap();
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0);
    // ... and the image has none of them.
    assert!(!image.join("etc/added").exists());
    assert!(!std::fs::read_to_string(image.join("etc/passwd"))
        .unwrap()
        .contains("changed"));
    assert!(std::fs::symlink_metadata(image.join("bin/ls")).is_ok());
    let (code, _) = container.finish();
    assert_eq!(code, Some(0));
    assert!(!layer.exists(), "the layer is removed with the container");

    // A second container from the image sees it as it was.
    let out = run_stage_as_given(
        STAGE,
        [
            "pristine",
            "sh",
            "-c",
            "test -e /bin/ls && ! test -e /etc/added && echo pristine",
        ],
    );
    assert_eq!(stdout(&out), "pristine\n", "{}", stderr(&out));
}

#[test]
fn volume_data_stays_on_the_host_and_ro_refuses_writes() {
    require_root!();
    let host = tempfile::tempdir().unwrap();
    let data = host.path().join("data"); // missing: created by run
    let conf = host.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("setting"), "42").unwrap();
    let out = run_stage_as_given(
        STAGE,
        [
            "-v".to_string(),
            format!("{}:/data", data.display()),
            "-v".to_string(),
            format!("{}:/etc/conf:ro", conf.display()),
            "busybox".into(),
            "sh".into(),
            "-c".into(),
            "echo hi > /data/x; cat /etc/conf/setting; echo; touch /etc/conf/new 2>&1; echo rc=$?"
                .into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("42\n"), "{text}");
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(text.ends_with("rc=1\n"), "{text}");
    assert_eq!(std::fs::read_to_string(data.join("x")).unwrap(), "hi\n");
    assert!(!conf.join("new").exists());
}

/// The container's mount table with a volume: overlay root, the bind.
#[test]
fn mounts_with_volumes() {
    require_root!();
    let host = tempfile::tempdir().unwrap();
    let out = run_stage_as_given(
        STAGE,
        [
            "-v".to_string(),
            format!("{}:/data:ro", host.path().display()),
            "busybox".into(),
            "cat".into(),
            "/proc/self/mountinfo".into(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let table: Vec<String> = minibox_tests::normalize_mounts(&stdout(&out))
        .into_iter()
        .map(|line| match line.strip_prefix("/data ") {
            // The volume's file system type is the host's: not ours to pin.
            Some(rest) => format!(
                "/data [host fs] {}",
                rest.split_once(' ').map_or("", |(_, o)| o)
            ),
            None => line,
        })
        .collect();
    insta::assert_snapshot!("mounts_06_volume", table.join("\n"));
}

/// An image whose `/data` is a symlink to `/etc` (absolute: naive path
/// joining would follow it to the *host's* /etc): the volume lands in the
/// container's own /etc, and the host's /etc is untouched.
#[test]
fn volume_targets_do_not_follow_symlinks_out() {
    require_root!();
    let (_image, rootfs) = rootfs_copy();
    std::os::unix::fs::symlink("/etc", rootfs.join("data")).unwrap();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("payload"), "p").unwrap();
    let name = format!("minibox-volume-{}", std::process::id());
    let out = run_stage_as_given(
        STAGE,
        [
            "--rootfs".to_string(),
            rootfs.display().to_string(),
            "-v".into(),
            format!("{}:/data/{name}", host.path().display()),
            "cat".into(),
            format!("/etc/{name}/payload"),
        ],
    );
    // Inside, /data -> /etc resolved within the rootfs: the volume is at
    // the container's /etc/<name>.
    assert_eq!(stdout(&out), "p", "{}", stderr(&out));
    // On the host, /etc got nothing.
    assert!(!Path::new("/etc").join(&name).exists());
}

/// A tarball entry for the escape tests, with its name written raw (the tar
/// crate's own builder refuses such names, rightly).
fn raw_entry(
    builder: &mut tar::Builder<std::fs::File>,
    name: &str,
    kind: tar::EntryType,
    link: Option<&str>,
    data: &[u8],
) {
    let mut header = tar::Header::new_gnu();
    let gnu = header.as_gnu_mut().unwrap();
    gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    if kind == tar::EntryType::Char {
        header.set_device_major(8).unwrap();
        header.set_device_minor(0).unwrap();
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

#[rstest]
#[case::dot_dot("dotdot", "climbs out with ..")]
#[case::through_symlink("symlink", "outside of destination")]
#[case::hard_link_out("hardlink", "points out with ..")]
fn unsafe_tarballs_are_refused(#[case] kind: &str, #[case] message: &str) {
    require_root!(); // an import keeps the tarball's owners: root's job
    let outside = tempfile::tempdir().unwrap();
    let tar_file = tempfile::NamedTempFile::new().unwrap();
    let mut builder = tar::Builder::new(tar_file.reopen().unwrap());
    raw_entry(
        &mut builder,
        "ok.txt",
        tar::EntryType::Regular,
        None,
        b"fine",
    );
    let target = outside.path().display().to_string();
    match kind {
        "dotdot" => raw_entry(
            &mut builder,
            "../../../../../../../../tmp/minibox-escape",
            tar::EntryType::Regular,
            None,
            b"x",
        ),
        "symlink" => {
            raw_entry(
                &mut builder,
                "link",
                tar::EntryType::Symlink,
                Some(&target),
                b"",
            );
            raw_entry(
                &mut builder,
                "link/planted",
                tar::EntryType::Regular,
                None,
                b"x",
            );
        }
        _ => raw_entry(
            &mut builder,
            "hard",
            tar::EntryType::Link,
            Some("../../etc/passwd"),
            b"",
        ),
    }
    builder.finish().unwrap();
    let name = format!("evil-{kind}");
    // A failed import: docker's exit 1.
    stage_command(STAGE)
        .args(["image", "import", &name])
        .arg(tar_file.path())
        .assert()
        .code(1)
        .stderr(predicate::str::contains(message));
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "something landed outside"
    );
    assert!(!Path::new("/tmp/minibox-escape").exists());
    let images = test_env().root.join("images");
    assert!(
        !images.join(&name).exists(),
        "a failed import left an image"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&images)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| n.to_string_lossy().contains(&name))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn device_nodes_and_absolute_names_are_neutralised() {
    require_root!();
    let tar_file = tempfile::NamedTempFile::new().unwrap();
    let mut builder = tar::Builder::new(tar_file.reopen().unwrap());
    raw_entry(
        &mut builder,
        "/abs.txt",
        tar::EntryType::Regular,
        None,
        b"a",
    );
    raw_entry(&mut builder, "dev/sda", tar::EntryType::Char, None, b"");
    builder.finish().unwrap();
    let _ = stage_command(STAGE)
        .args(["image", "rm", "neutral"])
        .output();
    stage_command(STAGE)
        .args(["image", "import", "neutral"])
        .arg(tar_file.path())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "skipped device nodes and FIFOs: dev/sda",
        ));
    let rootfs = test_env().root.join("images/neutral/rootfs");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("abs.txt")).unwrap(),
        "a"
    );
    assert!(!rootfs.join("dev/sda").exists());
    assert!(!Path::new("/abs.txt").exists());
    stage_command(STAGE)
        .args(["image", "rm", "neutral"])
        .assert()
        .success();
    assert!(!test_env().root.join("images/neutral").exists());
}

/// Failures at each step: one line, exit 125, no layer or cgroup left.
#[rstest]
#[case::image_missing(&["no-such-image", "true"], "image \"no-such-image\" not found")]
#[case::bad_volume_spec(&["-v", "foo", "busybox", "true"], "HOST:CONTAINER")]
#[case::relative_volume(&["-v", "rel:/x", "busybox", "true"], "absolute")]
#[case::volume_on_root(&["-v", "/tmp:/", "busybox", "true"], "cannot be /")]
#[case::escaping_volume(&["-v", "/tmp:/a/../b", "busybox", "true"], "must not contain ..")]
#[case::no_image(&[], "required arguments were not provided")]
fn failures_leave_nothing(#[case] args: &[&str], #[case] message: &str) {
    let out = stage_command(STAGE)
        .arg("run")
        .args(args)
        .assert()
        .code(125)
        .stderr(predicate::str::contains(message));
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_no_layers();
}

/// A volume whose target cannot be made (an image's dangling symlink is in
/// the way) fails inside init: the run ends 125 and cleans up.
#[test]
fn a_mount_failure_cleans_up() {
    require_root!();
    let (_image, rootfs) = rootfs_copy();
    std::os::unix::fs::symlink("/nonexistent/elsewhere", rootfs.join("dangling")).unwrap();
    let out = stage_command(STAGE)
        .args(["run", "--trace", "json", "--rootfs"])
        .arg(&rootfs)
        .args(["-v", "/tmp:/dangling/x", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    let events = json_events(&stderr(&out));
    assert!(!layer_dir(&events).exists());
    assert!(minibox_tests::cgroup_leaf_dirs(&events)
        .iter()
        .all(|d| !d.exists()));
    assert!(!Path::new("/nonexistent").exists());
}

fn assert_no_layers() {
    let containers = test_env().root.join("containers");
    let ours: Vec<_> = std::fs::read_dir(&containers)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    // Other tests' containers may be running; none may be left by *this*
    // failure, which never got as far as making one: no run's lock is free.
    for dir in ours {
        let id = dir.file_name().unwrap().to_string_lossy().into_owned();
        let lock = test_env().root.join("run/locks").join(format!("{id}.lock"));
        assert!(lock.exists(), "{} has no live run", dir.display());
    }
}
