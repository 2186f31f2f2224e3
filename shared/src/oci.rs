//! OCI image layouts: `image load` and `image save`.
//!
//! An OCI image layout is a directory (or a tar of one) that tools such as
//! `skopeo copy docker://alpine oci:alpine-dir:alpine` write:
//!
//! ```text
//! oci-layout            {"imageLayoutVersion": "1.0.0"}
//! index.json            the images in it: descriptors of their manifests
//! blobs/sha256/<hex>    everything else, named by the sha256 of its bytes:
//!                       manifests (config + layers), configs, layer tars
//! ```
//!
//! A descriptor is `{mediaType, digest, size}`: a blob is trusted only once
//! its bytes hash to its digest. Layers are tars (plain, gzip or zstd),
//! applied in order, each one's changes over the ones before. A layer says
//! "delete X" with an empty file `.wh.X` beside it, and "forget what the
//! layers below had in this directory" with `.wh..wh..opq` inside it.
//!
//! minibox's image is one directory (the overlay's single lower layer), so
//! `load` applies the layers into it as a docker daemon's extractor does
//! into a flat snapshot: a whiteout deletes the file the layers below made,
//! an opaque marker empties the directory, then the layer's own entries are
//! unpacked. Every deletion is resolved beneath the image's root without
//! following a symbolic link, and every entry goes through the same safe
//! extraction as `image import`.

use crate::error::{Error, Result};
use crate::image::{self, ImageDefaults};
use crate::{paths, trace};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

const LAYOUT_VERSION: &str = "1.0.0";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// docker's own spelling of an index (skopeo keeps it when it copies one).
const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The annotation naming an image in index.json (skopeo's `oci:DIR:NAME`).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and `docker save`'s) full name of the image.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Manifests, configs and indexes are small: a bigger one is not one.
const MAX_JSON: u64 = 4 << 20;

/// `{mediaType, digest, size}`: where a blob is and what it must hash to.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The parts of an image config minibox uses.
#[derive(Serialize, Deserialize, Debug, Default)]
struct ConfigFile {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    #[serde(default)]
    config: Option<ImageDefaults>,
    #[serde(default)]
    rootfs: RootFs,
}

#[derive(Serialize, Deserialize, Debug, Default)]
struct RootFs {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct LayoutFile {
    image_layout_version: String,
}

fn bad(what: &str, why: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{what}: {why}"))
}

/// The file of blob `digest` in the layout (only `sha256:` + 64 hex
/// digits: a digest is a file name here, so nothing else may pass).
fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(layout.join("blobs/sha256").join(hex))
        }
        _ => Err(Error::Usage(format!(
            "unsupported or malformed digest {:?} (sha256 only)",
            digest.chars().take(80).collect::<String>()
        ))),
    }
}

/// Open a file of the layout without following a symbolic link at its
/// end (a blob that is a link to a host file is not a blob).
fn open_nofollow(path: &Path) -> std::io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Check that blob `d` has its size and hashes to its digest.
fn verify(layout: &Path, d: &Descriptor, what: &str) -> Result<PathBuf> {
    let path = blob_path(layout, &d.digest)?;
    let mut file = open_nofollow(&path)
        .map_err(|e| bad(what, format!("blob {} is missing ({e})", d.digest)))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let actual = format!("sha256:{:x}", hasher.finalize());
    if actual != d.digest {
        return Err(bad(
            what,
            format!(
                "blob {} does not match its digest (it hashes to {actual})",
                d.digest
            ),
        ));
    }
    if size != d.size {
        return Err(bad(
            what,
            format!(
                "blob {} is {size} bytes, its descriptor says {}",
                d.digest, d.size
            ),
        ));
    }
    Ok(path)
}

/// A JSON blob, verified and parsed.
fn read_json<T: serde::de::DeserializeOwned>(
    layout: &Path,
    d: &Descriptor,
    what: &str,
) -> Result<T> {
    if d.size > MAX_JSON {
        return Err(bad(
            what,
            format!("{} is too big for a JSON document", d.digest),
        ));
    }
    let path = verify(layout, d, what)?;
    let bytes = fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| bad(what, format!("{} is not valid JSON here: {e}", d.digest)))
}

fn read_small_file(path: &Path, what: &str) -> Result<Vec<u8>> {
    let file = open_nofollow(path).map_err(|e| {
        bad(
            what,
            format!(
                "not an OCI image layout ({} is missing: {e})",
                path.file_name().unwrap_or_default().to_string_lossy()
            ),
        )
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok(bytes)
}

/// The architecture name OCI uses for this machine.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The image manifests the layout offers, with the annotations of their
/// index entry. A nested index (a multi-platform image) gives the
/// manifest for this machine's platform.
fn manifests(layout: &Path, what: &str) -> Result<Vec<Descriptor>> {
    let marker: LayoutFile =
        serde_json::from_slice(&read_small_file(&layout.join("oci-layout"), what)?)
            .map_err(|e| bad(what, format!("oci-layout is not valid: {e}")))?;
    if marker.image_layout_version != LAYOUT_VERSION {
        return Err(bad(
            what,
            format!(
                "image layout version {:?} (minibox reads {LAYOUT_VERSION})",
                marker.image_layout_version
            ),
        ));
    }
    let index: Index = serde_json::from_slice(&read_small_file(&layout.join("index.json"), what)?)
        .map_err(|e| bad(what, format!("index.json is not valid: {e}")))?;
    let mut found = Vec::new();
    for entry in index.manifests {
        if entry.media_type == MEDIA_INDEX || entry.media_type == MEDIA_DOCKER_LIST {
            let nested: Index = read_json(layout, &entry, what)?;
            let ours = nested.manifests.into_iter().find(|m| {
                m.platform
                    .as_ref()
                    .is_none_or(|p| p.os == "linux" && p.architecture == host_architecture())
            });
            if let Some(mut manifest) = ours {
                // The name is on the outer entry.
                manifest.annotations.extend(entry.annotations.clone());
                found.push(manifest);
            }
        } else {
            found.push(entry);
        }
    }
    Ok(found)
}

/// The name an index entry gives its image: containerd's full name
/// (`docker.io/library/alpine:3.19` → `alpine:3.19`), else the ref name
/// if it is a REPOSITORY[:TAG] minibox takes.
fn name_of(d: &Descriptor) -> Option<String> {
    let full = d.annotations.get(CONTAINERD_NAME).map(|n| {
        // Drop the registry and the path: minibox's names are one word.
        let n = n.split('@').next().unwrap_or(n);
        n.rsplit('/').next().unwrap_or(n).to_string()
    });
    // podman writes its full name as the ref name
    // (`localhost/alpine:3.19`): the last part of a path is the name.
    let reference = d
        .annotations
        .get(REF_NAME)
        .map(|n| match n.rsplit_once('/') {
            Some((_, last)) if last.contains(':') => last.to_string(),
            _ => n.clone(),
        });
    full.into_iter()
        .chain(reference)
        .find(|n| image::ImageRef::parse(n).is_ok())
}

/// What `image load` loaded.
#[derive(Debug)]
pub struct Loaded {
    /// REPOSITORY:TAG, or `None` for an image without a usable name.
    pub name: Option<String>,
    pub id: String,
    pub layers: usize,
    pub skipped: Vec<String>,
}

/// `image load`: read the OCI layout at `input` (a directory, a tar of
/// one, or a tar on stdin for `None`) and make its image. `reference`
/// picks one of several images by its ref name.
pub fn load(input: Option<&Path>, reference: Option<&str>) -> Result<Loaded> {
    let what = input.map_or("stdin".to_string(), |p| p.display().to_string());
    match input {
        Some(dir) if dir.is_dir() => load_layout(dir, reference, &what),
        _ => {
            // A tar of a layout: unpacked (safely) into a private directory
            // of our own first; it goes when `unpacked` is dropped.
            let images = paths::state_dir("images")?;
            let unpacked = tempfile::Builder::new()
                .prefix(".load-")
                .tempdir_in(&images)
                .map_err(|e| Error::io(format!("make a directory in {}", images.display()), e))?;
            match input {
                Some(file) => {
                    let f = File::open(file)
                        .map_err(|e| Error::io(format!("open {}", file.display()), e))?;
                    image::extract(BufReader::new(f), unpacked.path(), &what)?;
                }
                None => {
                    use std::io::IsTerminal;
                    if std::io::stdin().is_terminal() {
                        return Err(Error::Usage(
                            "image load reads a tar on stdin: give it one, or -i FILE|DIR".into(),
                        ));
                    }
                    image::extract(std::io::stdin().lock(), unpacked.path(), &what)?;
                }
            }
            load_layout(unpacked.path(), reference, &what)
        }
    }
}

fn load_layout(layout: &Path, reference: Option<&str>, what: &str) -> Result<Loaded> {
    let all = manifests(layout, what)?;
    let chosen: Vec<&Descriptor> = match reference {
        Some(r) => all
            .iter()
            .filter(|d| {
                d.annotations.get(REF_NAME).map(String::as_str) == Some(r)
                    || name_of(d).as_deref() == Some(r)
            })
            .collect(),
        None => all.iter().collect(),
    };
    let descriptor = match chosen.as_slice() {
        [one] => *one,
        [] => {
            return Err(bad(
                what,
                match reference {
                    Some(r) => format!("no image named {r:?} in it"),
                    None => "it holds no image for this machine".to_string(),
                },
            ))
        }
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|d| {
                    d.annotations
                        .get(REF_NAME)
                        .cloned()
                        .unwrap_or_else(|| d.digest.clone())
                })
                .collect();
            return Err(bad(
                what,
                format!(
                    "it holds {} images ({}): pick one with --ref NAME",
                    several.len(),
                    names.join(", ")
                ),
            ));
        }
    };
    let manifest: Manifest = read_json(layout, descriptor, what)?;
    if manifest.schema_version != 2
        || manifest
            .media_type
            .as_deref()
            .is_some_and(|m| m != MEDIA_MANIFEST && !m.contains("docker"))
    {
        return Err(bad(what, "its manifest is not an OCI image manifest"));
    }
    let config: ConfigFile = read_json(layout, &manifest.config, what)?;
    if !config.os.is_empty() && config.os != "linux" {
        return Err(bad(
            what,
            format!("the image is for {}, not linux", config.os),
        ));
    }
    // Every blob is checked before anything is made: a bad one leaves
    // nothing behind.
    let layers: Vec<PathBuf> = manifest
        .layers
        .iter()
        .map(|l| verify(layout, l, what))
        .collect::<Result<_>>()?;
    let name = name_of(descriptor);
    // docker's image id is the config's digest: its first 12 digits
    // here, unless another image has them already.
    let config_hex = manifest.config.digest.trim_start_matches("sha256:");
    let id = Some(config_hex[..12].to_string()).filter(|id| !image::id_in_use(id));
    let dir_name = match &name {
        Some(n) => n.clone(),
        None => match &id {
            Some(id) => id.clone(),
            None => crate::id::generate()?,
        },
    };
    let mut skipped = Vec::new();
    let made = image::stage(&dir_name, id, |staging| {
        let rootfs = staging.join("rootfs");
        for (n, layer) in layers.iter().enumerate() {
            let label = format!("{what} layer {}", n + 1);
            skipped.extend(apply_layer(layer, &rootfs, &label)?);
        }
        if let Some(defaults) = &config.config {
            image::write_defaults(staging, defaults)?;
        }
        Ok(())
    })?;
    trace::note(
        format!("image load {what}"),
        Some(format!("{} layers", layers.len())),
    );
    Ok(Loaded {
        name,
        id: made,
        layers: layers.len(),
        skipped,
    })
}

/// A layer blob as a tar stream: gzip and zstd are told by their magic
/// numbers (media types vary between docker's and OCI's spellings).
fn layer_reader(path: &Path) -> Result<Box<dyn Read>> {
    let mut file =
        open_nofollow(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut magic = [0u8; 4];
    let n = file
        .read(&mut magic)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let head = std::io::Cursor::new(magic[..n].to_vec()).chain(BufReader::new(file));
    Ok(match magic {
        [0x1f, 0x8b, _, _] => Box::new(flate2::read::MultiGzDecoder::new(head)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            Box::new(ruzstd::decoding::StreamingDecoder::new(head).map_err(|e| {
                Error::Usage(format!("{}: not a zstd stream ({e})", path.display()))
            })?)
        }
        _ => Box::new(head),
    })
}

/// Apply one layer over `rootfs`: first what it deletes, then what it
/// adds. Returns the entries it could not create (device nodes).
fn apply_layer(blob: &Path, rootfs: &Path, what: &str) -> Result<Vec<String>> {
    let deletions = whiteouts(layer_reader(blob)?, what)?;
    let root = open_dir(rootfs)?;
    for deletion in &deletions {
        match deletion {
            Whiteout::Remove(path) => remove_beneath(&root, path, what)?,
            Whiteout::Opaque(dir) => empty_beneath(&root, dir, what)?,
        }
    }
    let imported = image::extract_layer(layer_reader(blob)?, rootfs, what)?;
    Ok(imported.skipped)
}

/// What a layer deletes from the layers below it.
#[derive(Debug, PartialEq)]
enum Whiteout {
    /// `.wh.NAME`: NAME goes.
    Remove(PathBuf),
    /// `.wh..wh..opq`: the directory's old contents go.
    Opaque(PathBuf),
}

pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

fn whiteouts(reader: impl Read, what: &str) -> Result<Vec<Whiteout>> {
    let mut archive = tar::Archive::new(reader);
    let unreadable = |e: std::io::Error| {
        Error::Usage(format!(
            "{what} is not a tar archive, or is damaged ({})",
            e.kind()
        ))
    };
    let mut found = Vec::new();
    for entry in archive.entries().map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path().map_err(unreadable)?.into_owned();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !file_name.starts_with(WHITEOUT_PREFIX) {
            continue;
        }
        let parent = relative(path.parent().unwrap_or(Path::new("")), what)?;
        if file_name == OPAQUE_MARKER {
            found.push(Whiteout::Opaque(parent));
        } else {
            let target = &file_name[WHITEOUT_PREFIX.len()..];
            if target.is_empty() || target == "." || target == ".." {
                return Err(Error::Usage(format!(
                    "unsafe tarball {what}: whiteout {} names nothing",
                    path.display()
                )));
            }
            found.push(Whiteout::Remove(parent.join(target)));
        }
    }
    Ok(found)
}

/// A path of an archive as a path beneath the root: no `..`, and a
/// leading `/` or `./` dropped.
fn relative(path: &Path, what: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(Error::Usage(format!(
                    "unsafe tarball {what}: entry {} climbs out with ..",
                    path.display()
                )))
            }
        }
    }
    Ok(out)
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
    Ok(OwnedFd::from(file))
}

/// Open directory `path` beneath `root` with no symbolic link on the way
/// (`None` if it does not exist: nothing to delete there).
fn open_beneath(root: &OwnedFd, path: &Path, what: &str) -> Result<Option<OwnedFd>> {
    if path.as_os_str().is_empty() {
        return Ok(Some(root.try_clone().map_err(|e| Error::io("dup", e))?));
    }
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    match openat2(root.as_raw_fd(), path, how) {
        // SAFETY: openat2 just returned this fd to us alone.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        // A symbolic link on the way (ELOOP), or a file where a directory
        // should be (ENOTDIR): a whiteout must not reach through either.
        Err(errno) => Err(Error::Usage(format!(
            "unsafe tarball {what}: a whiteout under {} does not lead to a directory of the image ({})",
            path.display(),
            crate::error::describe(errno)
        ))),
    }
}

/// Remove `name` (a file, a link, or a whole tree) from the directory
/// `dir` refers to. std's `remove_dir_all` opens each level with
/// `O_NOFOLLOW` relative to its parent, so a link inside is removed, never
/// followed; `/proc/self/fd/N` names exactly the directory we opened.
fn remove_entry(dir: &OwnedFd, name: &std::ffi::OsStr) -> std::io::Result<()> {
    let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    match fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
        Ok(_) => fs::remove_file(&path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn remove_beneath(root: &OwnedFd, path: &Path, what: &str) -> Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    if let Some(dir) = open_beneath(root, parent, what)? {
        remove_entry(&dir, name)
            .map_err(|e| Error::io(format!("{what}: remove {}", path.display()), e))?;
    }
    Ok(())
}

fn empty_beneath(root: &OwnedFd, path: &Path, what: &str) -> Result<()> {
    let Some(dir) = open_beneath(root, path, what)? else {
        return Ok(());
    };
    let listing = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let entries = fs::read_dir(&listing)
        .map_err(|e| Error::io(format!("{what}: list {}", path.display()), e))?;
    for entry in entries.flatten() {
        remove_entry(&dir, &entry.file_name())
            .map_err(|e| Error::io(format!("{what}: empty {}", path.display()), e))?;
    }
    Ok(())
}

/// Before unpacking an entry of a layer: an existing entry of another
/// kind at its path (a directory where the layer has a file, a link where
/// it has a directory) is replaced, as a layer replaces it.
pub(crate) fn clear_for(rootfs: &Path, path: &Path, is_dir: bool) {
    let Ok(path) = relative(path, "") else {
        return;
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let Ok(root) = open_dir(rootfs) else {
        return;
    };
    // Where the parent cannot be reached safely, the extraction itself
    // refuses the entry.
    let Ok(Some(dir)) = open_beneath(&root, parent, "") else {
        return;
    };
    let existing = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    if let Ok(meta) = fs::symlink_metadata(&existing) {
        if meta.is_dir() != is_dir {
            let _ = remove_entry(&dir, name);
        }
    }
}

/// A writer that hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Write `bytes` as a blob of the layout; its descriptor.
fn write_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Result<Descriptor> {
    let digest = format!("sha256:{:x}", Sha256::digest(bytes));
    let path = blob_path(layout, &digest)?;
    fs::write(&path, bytes).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    Ok(Descriptor {
        media_type: media_type.into(),
        digest,
        size: bytes.len() as u64,
        ..Default::default()
    })
}

/// `image save`: image `name` as a one-layer OCI layout, into `output`
/// (an existing empty directory, or a tar file), or as a tar on stdout.
pub fn save(name: &str, output: Option<&Path>) -> Result<()> {
    let rootfs = image::resolve(name)?;
    let reference = image::ImageRef::parse(name)
        .ok()
        .filter(|_| image::is_named(name));
    let defaults = image::defaults_of(&rootfs);
    match output {
        Some(dir) if dir.is_dir() => {
            if fs::read_dir(dir)
                .map_err(|e| Error::io(format!("list {}", dir.display()), e))?
                .next()
                .is_some()
            {
                return Err(Error::Usage(format!(
                    "{} is not empty: save into an empty directory or a file",
                    dir.display()
                )));
            }
            write_layout(dir, &rootfs, reference.as_ref(), defaults)
        }
        _ => {
            use std::io::IsTerminal;
            if output.is_none() && std::io::stdout().is_terminal() {
                return Err(Error::Usage(
                    "image save writes a tar: give -o FILE|DIR, or redirect stdout".into(),
                ));
            }
            let images = paths::state_dir("images")?;
            let staging = tempfile::Builder::new()
                .prefix(".save-")
                .tempdir_in(&images)
                .map_err(|e| Error::io(format!("make a directory in {}", images.display()), e))?;
            write_layout(staging.path(), &rootfs, reference.as_ref(), defaults)?;
            let sink: Box<dyn Write> = match output {
                Some(file) => Box::new(
                    File::create(file)
                        .map_err(|e| Error::io(format!("create {}", file.display()), e))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut tar = tar::Builder::new(sink);
            tar.follow_symlinks(false);
            tar.mode(tar::HeaderMode::Deterministic);
            for part in ["oci-layout", "index.json", "blobs"] {
                let path = staging.path().join(part);
                let done = if path.is_dir() {
                    tar.append_dir_all(part, &path)
                } else {
                    tar.append_path_with_name(&path, part)
                };
                done.map_err(|e| Error::io(format!("write the archive ({part})"), e))?;
            }
            tar.into_inner()
                .and_then(|mut w| w.flush())
                .map_err(|e| Error::io("write the archive", e))
        }
    }
}

fn write_layout(
    layout: &Path,
    rootfs: &Path,
    reference: Option<&image::ImageRef>,
    defaults: Option<ImageDefaults>,
) -> Result<()> {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(|e| Error::io(format!("mkdir {}", blobs.display()), e))?;
    // The layer: the whole root filesystem as one uncompressed tar,
    // written once and named by its hash at the end.
    let pending = blobs.join(".layer.tmp");
    let file = File::create(&pending)
        .map_err(|e| Error::io(format!("create {}", pending.display()), e))?;
    let mut tar = tar::Builder::new(Hashing {
        inner: std::io::BufWriter::new(file),
        hasher: Sha256::new(),
        size: 0,
    });
    tar.follow_symlinks(false);
    tar.append_dir_all(".", rootfs)
        .map_err(|e| Error::io(format!("archive {}", rootfs.display()), e))?;
    let mut hashing = tar
        .into_inner()
        .map_err(|e| Error::io("finish the layer", e))?;
    hashing
        .flush()
        .map_err(|e| Error::io("write the layer", e))?;
    let layer_digest = format!("sha256:{:x}", hashing.hasher.finalize());
    let layer_size = hashing.size;
    let layer_path = blob_path(layout, &layer_digest)?;
    fs::rename(&pending, &layer_path)
        .map_err(|e| Error::io(format!("rename {}", layer_path.display()), e))?;

    let config = ConfigFile {
        architecture: host_architecture().into(),
        os: "linux".into(),
        created: Some(crate::container::inspect::rfc3339(
            crate::container::state::now(),
        )),
        config: Some(defaults.unwrap_or_default()),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: vec![layer_digest.clone()],
        },
    };
    let config_bytes =
        serde_json::to_vec(&config).map_err(|e| Error::Usage(format!("config: {e}")))?;
    let config_desc = write_blob(layout, MEDIA_CONFIG, &config_bytes)?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        config: config_desc,
        layers: vec![Descriptor {
            media_type: MEDIA_LAYER.into(),
            digest: layer_digest,
            size: layer_size,
            ..Default::default()
        }],
    };
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| Error::Usage(format!("manifest: {e}")))?;
    let mut manifest_desc = write_blob(layout, MEDIA_MANIFEST, &manifest_bytes)?;
    if let Some(r) = reference {
        manifest_desc
            .annotations
            .insert(REF_NAME.into(), r.to_string());
    }
    manifest_desc.platform = Some(Platform {
        architecture: host_architecture().into(),
        os: "linux".into(),
    });
    let index = Index {
        schema_version: 2,
        media_type: Some(MEDIA_INDEX.into()),
        manifests: vec![manifest_desc],
    };
    let index_bytes =
        serde_json::to_vec(&index).map_err(|e| Error::Usage(format!("index: {e}")))?;
    fs::write(layout.join("index.json"), index_bytes)
        .map_err(|e| Error::io("write index.json", e))?;
    let marker = serde_json::to_vec(&LayoutFile {
        image_layout_version: LAYOUT_VERSION.into(),
    })
    .map_err(|e| Error::Usage(format!("oci-layout: {e}")))?;
    fs::write(layout.join("oci-layout"), marker).map_err(|e| Error::io("write oci-layout", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_must_be_sha256_hex() {
        let layout = Path::new("/l");
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(blob_path(layout, &good).is_ok());
        for bad in [
            "sha256:../../etc/passwd".to_string(),
            format!("sha512:{}", "a".repeat(128)),
            format!("sha256:{}", "A".repeat(64)),
            "sha256:".to_string(),
        ] {
            assert!(blob_path(layout, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_come_from_annotations() {
        let mut d = Descriptor::default();
        assert_eq!(name_of(&d), None);
        d.annotations.insert(REF_NAME.into(), "alpine:3.19".into());
        assert_eq!(name_of(&d).as_deref(), Some("alpine:3.19"));
        d.annotations
            .insert(REF_NAME.into(), "localhost/alpine:3.19".into());
        assert_eq!(name_of(&d).as_deref(), Some("alpine:3.19"));
        d.annotations
            .insert(CONTAINERD_NAME.into(), "docker.io/library/debian:12".into());
        assert_eq!(name_of(&d).as_deref(), Some("debian:12"));
    }

    #[test]
    fn whiteouts_are_found_and_must_stay_inside() {
        let mut builder = tar::Builder::new(Vec::new());
        for name in ["etc/.wh.motd", "usr/share/.wh..wh..opq", "bin/sh"] {
            let mut header = tar::Header::new_gnu();
            header.set_size(0);
            header.set_cksum();
            builder.append_data(&mut header, name, &[][..]).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        assert_eq!(
            whiteouts(&bytes[..], "t").unwrap(),
            vec![
                Whiteout::Remove(PathBuf::from("etc/motd")),
                Whiteout::Opaque(PathBuf::from("usr/share"))
            ]
        );
        assert!(relative(Path::new("a/../../b"), "t").is_err());
    }
}
