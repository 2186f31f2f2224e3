//! Issue 16, images: `image load` and `image save` in the OCI image
//! layout, `image inspect`. The layouts are built here, byte by byte, as
//! `skopeo copy … oci:DIR:NAME` would write them: the tests need no
//! registry and no network.
//!
//! Exit codes (docker's rule): 125 for a command line refused before
//! acting, 1 when the load itself fails (a bad blob, an unsafe layer).

use minibox_tests::{number, require_root, stage_command, stderr, stdout, test_env};
use rstest::rstest;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

fn cli(stage: &str, args: &[&str]) -> Output {
    stage_command(stage)
        .args(args)
        .output()
        .expect("run the stage binary")
}

fn ok(stage: &str, args: &[&str]) -> String {
    let out = cli(stage, args);
    assert!(out.status.success(), "{stage} {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `run` on `stage` in docker's IMAGE COMMAND form, with what the stage
/// needs to leave nothing behind (`--rm` from 07, no bridge from 08).
fn run_image(stage: &str, image: &str, command: &[&str]) -> Output {
    let mut args = vec!["run", "--trace", "off"];
    if number(stage) >= 7 {
        args.push("--rm");
    }
    if number(stage) >= 8 {
        args.extend(["--network", "none"]);
    }
    args.push(image);
    args.extend(command);
    cli(stage, &args)
}

/// One layer of a test image: entries in order.
enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a str),
    Symlink(&'a str, &'a str),
    /// A name written into the header as is (tar's own API refuses `..`).
    Raw(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

fn layer_tar(base: Option<&Path>, entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    if let Some(base) = base {
        builder.append_dir_all(".", base).unwrap();
    }
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match entry {
            Entry::Dir(path) => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, path, &[][..]).unwrap();
            }
            Entry::File(path, text) => {
                header.set_mode(0o644);
                header.set_size(text.len() as u64);
                builder
                    .append_data(&mut header, path, text.as_bytes())
                    .unwrap();
            }
            Entry::Symlink(path, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Entry::HardLink(path, target) => {
                header.set_entry_type(tar::EntryType::Link);
                header.set_size(0);
                builder.append_link(&mut header, path, target).unwrap();
            }
            Entry::Raw(path, text) => {
                let name = &mut header.as_old_mut().name;
                name[..path.len()].copy_from_slice(path.as_bytes());
                header.set_mode(0o644);
                header.set_size(text.len() as u64);
                header.set_cksum();
                builder.append(&header, text.as_bytes()).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Write `bytes` as a blob; its descriptor.
fn blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let d = digest(bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
    json!({"mediaType": media_type, "digest": d, "size": bytes.len()})
}

/// An OCI layout in `layout` holding one image named `name` (the ref
/// name annotation, as skopeo's `oci:DIR:NAME` writes it).
fn write_layout(layout: &Path, name: &str, layers: &[(Vec<u8>, &str)], config: Value) {
    let layer_descriptors: Vec<Value> = layers
        .iter()
        .map(|(bytes, media_type)| blob(layout, media_type, bytes))
        .collect();
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let config = blob(
        layout,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layer_descriptors,
    });
    let mut manifest = blob(
        layout,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    manifest["annotations"] = json!({"org.opencontainers.image.ref.name": name});
    let index = json!({"schemaVersion": 2, "manifests": [manifest]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion": "1.0.0"}"#,
    )
    .unwrap();
}

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Two layers: the first (gzip) is busybox plus files, the second (plain
/// tar, or zstd) deletes `/etc/motd` with a whiteout and replaces
/// `/data/old` with an opaque directory holding only `new`.
fn two_layer_layout(layout: &Path, name: &str, zstd: bool) {
    let first = gzip(&layer_tar(
        Some(&minibox_tests::default_rootfs()),
        &[
            Entry::File("etc/motd", "welcome\n"),
            Entry::Dir("data"),
            Entry::Dir("data/old"),
            Entry::File("data/old/a", "a\n"),
            Entry::Dir("data/old/sub"),
            Entry::File("data/old/sub/b", "b\n"),
            Entry::File("data/keep", "kept\n"),
        ],
    ));
    let second = layer_tar(
        None,
        &[
            Entry::File("etc/.wh.motd", ""),
            Entry::Dir("data/old"),
            Entry::File("data/old/.wh..wh..opq", ""),
            Entry::File("data/old/new", "new\n"),
        ],
    );
    let second = match zstd {
        true => (
            ruzstd::encoding::compress_to_vec(
                &second[..],
                ruzstd::encoding::CompressionLevel::Fastest,
            ),
            TAR_ZSTD,
        ),
        false => (second, TAR),
    };
    write_layout(
        layout,
        name,
        &[(first, TAR_GZIP), second],
        json!({
            "Env": ["PATH=/bin:/usr/bin:/sbin:/usr/sbin", "GREETING=from-the-image"],
            "Cmd": ["cat", "/data/old/new"],
            "WorkingDir": "/data",
        }),
    );
}

/// The tests of this file share a state root and look at its staging
/// directories: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Staging directories of loads and imports: none may outlive a command.
fn leftovers() -> Vec<String> {
    std::fs::read_dir(test_env().root.join("images"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

const LOOK: &str = "ls -A /data/old; test -e /etc/motd && echo motd-still-there; \
                    cat /data/keep; echo \"$GREETING\"; pwd";

/// The layers apply in order: the whiteout hides the first layer's file,
/// the opaque directory hides its old contents, the rest stays. The
/// image's Cmd, Env and WorkingDir are the container's defaults. Stage 06
/// and every later stage load through the library; the second layer is a
/// plain tar for some, zstd for the others.
#[rstest]
#[case::stage06("06-volumes", false)]
#[case::stage07("07-full", true)]
#[case::stage09("09-hardening", false)]
#[case::stage10("10-rootless", true)]
fn a_two_layer_oci_image_runs_with_its_whiteouts(#[case] stage: &str, #[case] zstd: bool) {
    require_root!();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("layered{}-{}:v1", &stage[..2], std::process::id());
    two_layer_layout(dir.path(), &name, zstd);
    let out = ok(
        stage,
        &["image", "load", "-i", dir.path().to_str().unwrap()],
    );
    assert_eq!(out, format!("Loaded image: {name}\n"));

    let out = run_image(stage, &name, &["sh", "-c", LOOK]);
    assert!(out.status.success(), "{stage}: {}", stderr(&out));
    // A working directory arrives with stage 07 (`-w`): 06 starts in /.
    let workdir = if number(stage) >= 7 { "/data" } else { "/" };
    assert_eq!(
        stdout(&out),
        format!("new\nkept\nfrom-the-image\n{workdir}\n")
    );
    let out = run_image(stage, &name, &[]);
    assert_eq!(stdout(&out), "new\n", "the image's Cmd: {}", stderr(&out));

    let inspect: Value = serde_json::from_str(&ok(stage, &["image", "inspect", &name])).unwrap();
    assert_eq!(inspect[0]["RepoTags"], json!([name]));
    assert_eq!(inspect[0]["Config"]["Cmd"], json!(["cat", "/data/old/new"]));
    assert_eq!(inspect[0]["Config"]["WorkingDir"], json!("/data"));
    assert_eq!(
        ok(
            stage,
            &["image", "inspect", "-f", "{{.Config.WorkingDir}}", &name]
        ),
        "/data\n"
    );
    ok(stage, &["image", "rm", &name]);
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// A blob whose bytes do not hash to its digest is refused before
/// anything is made: one line, exit 1 (the load failed), no image, no
/// staging directory.
#[test]
fn a_blob_that_does_not_match_its_digest_is_refused() {
    require_root!();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("corrupt{}", std::process::id());
    two_layer_layout(dir.path(), &name, false);
    // Flip the last byte of the biggest blob (the first layer).
    let blobs = dir.path().join("blobs/sha256");
    let biggest = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .max_by_key(|e| e.metadata().unwrap().len())
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&biggest).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&biggest, bytes).unwrap();

    let out = cli(
        "07-full",
        &["image", "load", "-i", dir.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("does not match its digest"), "{err}");
    assert!(!ok("07-full", &["images"]).contains(&name));
    assert_eq!(leftovers(), Vec::<String>::new());

    // Not a layout at all; a bad flag is the command line's fault (125).
    let out = cli("07-full", &["image", "load", "-i", "/etc"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not an OCI image layout"),
        "{}",
        stderr(&out)
    );
    let out = cli("07-full", &["image", "load", "--bogus"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
}

/// `image save` writes a layout that `image load` reads back, as a
/// directory and as a tar on stdin; the files and the defaults survive.
#[test]
fn save_then_load_gives_the_same_image() {
    require_root!();
    let _serial = serial();
    let stage = "07-full";
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("in");
    std::fs::create_dir(&layout).unwrap();
    let name = format!("roundtrip{}:one", std::process::id());
    two_layer_layout(&layout, &name, true);
    ok(stage, &["image", "load", "-i", layout.to_str().unwrap()]);

    // Into an empty directory: a layout with one manifest of one layer.
    let saved = dir.path().join("saved");
    std::fs::create_dir(&saved).unwrap();
    assert_eq!(
        ok(
            stage,
            &["image", "save", "-o", saved.to_str().unwrap(), &name]
        ),
        ""
    );
    let marker: Value =
        serde_json::from_slice(&std::fs::read(saved.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(marker["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(saved.join("index.json")).unwrap()).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"],
        json!(name)
    );
    let blob_of = |d: &Value| -> Vec<u8> {
        let digest = d["digest"].as_str().unwrap();
        let bytes = std::fs::read(saved.join("blobs/sha256").join(&digest[7..])).unwrap();
        assert_eq!(
            self::digest(&bytes),
            digest,
            "every blob hashes to its name"
        );
        assert_eq!(bytes.len() as u64, d["size"].as_u64().unwrap());
        bytes
    };
    let manifest: Value = serde_json::from_slice(&blob_of(&manifests[0])).unwrap();
    assert_eq!(manifest["layers"].as_array().unwrap().len(), 1);
    blob_of(&manifest["layers"][0]);
    let config: Value = serde_json::from_slice(&blob_of(&manifest["config"])).unwrap();
    assert_eq!(config["config"]["Cmd"], json!(["cat", "/data/old/new"]));
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        manifest["layers"][0]["digest"]
    );

    // As a tar, loaded back from stdin.
    let tarball = dir.path().join("saved.tar");
    ok(
        stage,
        &["image", "save", "-o", tarball.to_str().unwrap(), &name],
    );
    ok(stage, &["image", "rm", &name]);
    let out = stage_command(stage)
        .args(["image", "load"])
        .write_stdin(std::fs::read(&tarball).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Loaded image: {name}\n"));
    let out = run_image(stage, &name, &["sh", "-c", LOOK]);
    assert_eq!(
        stdout(&out),
        "new\nkept\nfrom-the-image\n/data\n",
        "{}",
        stderr(&out)
    );

    // A second load of the same name is refused, as a second import is.
    let out = cli(stage, &["image", "load", "-i", saved.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
    ok(stage, &["image", "rm", &name]);
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// Layers are untrusted: no `..`, no write or whiteout through a symbolic
/// link out of the image. Each is refused with exit 1, nothing is left,
/// and the host file the layer aimed at is untouched.
#[rstest]
#[case::climbs_out(&[Entry::Raw("../../escaped", "x")], "climbs out")]
#[case::writes_through_a_link(&[Entry::Symlink("evil", "HOST"), Entry::File("evil/victim", "overwritten")], "outside of destination")]
#[case::whiteout_through_a_link(&[Entry::Symlink("evil", "HOST"), Entry::File("evil/.wh.victim", "")], "does not lead to a directory of the image")]
#[case::hard_link_through_a_link(&[Entry::Symlink("evil", "HOST"), Entry::HardLink("stolen", "evil/victim")], "entry stolen: failed to unpack")]
#[case::opaque_through_a_link(&[Entry::Symlink("evil", "HOST"), Entry::File("evil/.wh..wh..opq", "")], "does not lead to a directory of the image")]
fn an_evil_layer_is_refused(#[case] entries: &[Entry<'static>], #[case] message: &str) {
    require_root!();
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let victim = host.path().join("victim");
    std::fs::write(&victim, "host file\n").unwrap();
    let host_dir = host.path().to_str().unwrap().to_string();
    // The link's target is the host directory: fill it in.
    let entries: Vec<Entry> = entries
        .iter()
        .map(|e| match e {
            Entry::Symlink(path, "HOST") => Entry::Symlink(path, &host_dir),
            Entry::Symlink(p, t) => Entry::Symlink(p, t),
            Entry::Dir(p) => Entry::Dir(p),
            Entry::File(p, t) => Entry::File(p, t),
            Entry::Raw(p, t) => Entry::Raw(p, t),
            Entry::HardLink(p, t) => Entry::HardLink(p, t),
        })
        .collect();
    let name = format!("evil{}", std::process::id());
    let layout: PathBuf = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    // The link comes in one layer, its use in the next (as an attacker
    // would split it, so no single-tar check sees both).
    let (first, second) = entries.split_at(entries.len() - 1);
    write_layout(
        &layout,
        &name,
        &[
            (layer_tar(None, first), TAR),
            (layer_tar(None, second), TAR),
        ],
        json!({}),
    );
    let out = cli(
        "07-full",
        &["image", "load", "-i", layout.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    eprintln!("refused: {err}");
    assert!(err.contains(message), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file\n");
    assert!(!ok("07-full", &["images"]).contains(&name));
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// An image's Entrypoint and Cmd, as docker combines them: the arguments
/// after IMAGE replace Cmd, `--entrypoint PROGRAM` replaces both, and
/// `--entrypoint ""` drops the entrypoint and keeps Cmd. An image's Env
/// lies under `-e`.
#[test]
fn entrypoint_and_cmd_combine_as_in_docker() {
    require_root!();
    let _serial = serial();
    let stage = "07-full";
    let dir = tempfile::tempdir().unwrap();
    let name = format!("entry{}", std::process::id());
    let layer = layer_tar(Some(&minibox_tests::default_rootfs()), &[]);
    write_layout(
        dir.path(),
        &name,
        &[(layer, TAR)],
        json!({
            "Entrypoint": ["echo", "ep"],
            "Cmd": ["default"],
            "Env": ["PATH=/bin:/usr/bin", "WHO=image"],
        }),
    );
    ok(
        stage,
        &["image", "load", "-i", dir.path().to_str().unwrap()],
    );
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--trace", "off"];
        all.extend(args);
        let out = cli(stage, &all);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    assert_eq!(run(&[&name]), "ep default\n");
    assert_eq!(run(&[&name, "given"]), "ep given\n");
    assert_eq!(run(&["--entrypoint", "echo", &name, "z"]), "z\n");
    assert_eq!(run(&["--entrypoint", "", &name, "echo", "y"]), "y\n");
    // Cmd alone: `default` is no program (docker's 127, command not found).
    let out = cli(
        stage,
        &["run", "--rm", "--trace", "off", "--entrypoint", "", &name],
    );
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("default"), "{}", stderr(&out));
    assert_eq!(
        run(&["--entrypoint", "sh", &name, "-c", "echo $WHO"]),
        "image\n"
    );
    assert_eq!(
        run(&[
            "-e",
            "WHO=flag",
            "--entrypoint",
            "sh",
            &name,
            "-c",
            "echo $WHO"
        ]),
        "flag\n"
    );
    ok(stage, &["image", "rm", &name]);
}
