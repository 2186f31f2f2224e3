//! Images: read-only root filesystems kept under `$MINIBOX_ROOT/images`.
//!
//! An image is just a directory tree (`images/NAME/rootfs`) that many
//! containers share as the read-only lower layer of their overlay. It comes
//! from a tarball (`image import`, e.g. a `docker export`), and a tarball is
//! untrusted input: extracting one must never write outside the image.

use crate::error::{Error, Result};
use crate::lock::FileLock;
use crate::{paths, rootfs, trace};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The image every stage can run without an import: the busybox rootfs
/// that `just rootfs` builds.
pub const DEFAULT_IMAGE: &str = "busybox";

/// Staging directories of imports under way: `.NAME.importing-PID`.
const STAGING_MARK: &str = ".importing-";

pub fn images_dir() -> PathBuf {
    paths::state_root().join("images")
}

/// An image's name, docker's `REPOSITORY[:TAG]`: the repository in
/// lowercase letters, digits, `.`, `_`, `-` (at most 64), the tag in
/// letters, digits, `.`, `_`, `-` (at most 128) [default: latest].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub repository: String,
    pub tag: String,
}

/// The tag of an image named without one.
pub const DEFAULT_TAG: &str = "latest";

impl ImageRef {
    pub fn parse(text: &str) -> Result<ImageRef> {
        let (repository, tag) = text.split_once(':').unwrap_or((text, DEFAULT_TAG));
        let repository_ok = !repository.is_empty()
            && repository.len() <= 64
            && repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && !repository.starts_with('.');
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && !tag.starts_with(['.', '-']);
        if repository_ok && tag_ok {
            Ok(ImageRef {
                repository: repository.to_string(),
                tag: tag.to_string(),
            })
        } else {
            Err(Error::Usage(format!(
                "invalid image name {text:?}: REPOSITORY[:TAG], the repository in lowercase letters, digits, '.', '_' and '-'"
            )))
        }
    }

    /// Its directory under `images/`: the repository alone for `latest`
    /// (as every image was named before tags), `REPOSITORY:TAG` otherwise.
    pub fn dir_name(&self) -> String {
        if self.tag == DEFAULT_TAG {
            self.repository.clone()
        } else {
            format!("{}:{}", self.repository, self.tag)
        }
    }

    /// The directory's name back as a reference.
    fn of_dir(name: &str) -> Option<ImageRef> {
        ImageRef::parse(name).ok()
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// Image names: `REPOSITORY[:TAG]` (see [`ImageRef`]).
pub fn validate_name(name: &str) -> Result<()> {
    ImageRef::parse(name).map(drop)
}

/// A `REPOSITORY[:TAG]` on the command line (a bad one is exit 125).
pub fn parse_name(text: &str) -> std::result::Result<String, String> {
    ImageRef::parse(text)
        .map(|_| text.to_string())
        .map_err(|e| e.to_string())
}

/// The directory of image `name` (a tag made by `image tag` is a symbolic
/// link to the directory it names; this is where the link leads).
fn image_dir(name: &str) -> Result<Option<PathBuf>> {
    let dir = images_dir().join(ImageRef::parse(name)?.dir_name());
    match fs::read_link(&dir) {
        Ok(target) => Ok(Some(images_dir().join(target))),
        Err(_) if dir.is_dir() => Ok(Some(dir)),
        Err(_) => Ok(None),
    }
}

/// The image whose id is `id` or starts with it (at least 4 hex digits).
fn dir_of_id(id: &str) -> Option<PathBuf> {
    if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let matches: Vec<PathBuf> = list()
        .into_iter()
        .map(|name| images_dir().join(name))
        .filter(|dir| !dir.is_symlink())
        .filter(|dir| image_id(dir).is_some_and(|i| i.starts_with(id)))
        .collect();
    match matches.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}

/// The id an import gave the image (`images/DIR/id`).
fn image_id(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join("id"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The root filesystem of image `name` (`REPOSITORY[:TAG]`, or an image id).
pub fn resolve(name: &str) -> Result<PathBuf> {
    let found = match (image_dir(name), dir_of_id(name)) {
        (Ok(Some(dir)), _) => dir.join("rootfs"),
        (_, Some(dir)) => dir.join("rootfs"),
        (Ok(None), None) if ImageRef::parse(name)?.dir_name() == DEFAULT_IMAGE => {
            rootfs::resolve(None)?
        }
        (Ok(None), None) => return Err(Error::NoSuchImage(name.to_string())),
        (Err(err), None) => return Err(err),
    };
    if !found.is_dir() {
        return Err(Error::NoSuchImage(name.to_string()));
    }
    trace::note(format!("image {name:?}"), Some(found.display().to_string()));
    Ok(found)
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Imported {
    /// The image's id (12 hex digits, as `images` shows it).
    pub id: String,
    pub entries: usize,
    /// Device nodes and FIFOs the tarball held, which were not created.
    pub skipped: Vec<String>,
}

/// Import the tarball at `path` as image `name`.
pub fn import(name: &str, path: &Path) -> Result<Imported> {
    validate_name(name)?;
    if path == Path::new("-") {
        return import_from(name, std::io::stdin().lock(), "stdin");
    }
    let file =
        fs::File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    import_from(name, file, &path.display().to_string())
}

/// Import a tar stream (`what` names it in messages) as image `name`.
pub fn import_from(name: &str, reader: impl std::io::Read, what: &str) -> Result<Imported> {
    let mut imported = Imported::default();
    let id = stage(name, None, |staging| {
        imported = extract(reader, &staging.join("rootfs"), what)?;
        Ok(())
    })?;
    imported.id = id;
    Ok(imported)
}

/// Make image `name` (`REPOSITORY[:TAG]`, or an id for an unnamed one):
/// `fill` writes its `rootfs/` (and maybe its defaults) into a staging
/// directory the caller holds locked beside the final place, renamed into
/// place at the end: a failed import leaves nothing, and a killed one
/// leaves a staging directory whose lock is free, which
/// [`remove_stale_imports`] removes. Returns the image's id: `id`, or the
/// name if it is an id, or a new one.
pub(crate) fn stage(
    name: &str,
    id: Option<String>,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<String> {
    let dir_name = ImageRef::parse(name)?.dir_name();
    let name = dir_name.as_str();
    let images = paths::state_dir("images")?;
    let final_dir = images.join(name);
    if final_dir.exists() || final_dir.is_symlink() {
        return Err(Error::Usage(format!(
            "image {name:?} exists: remove it first with `image rm {name}`"
        )));
    }
    let staging = images.join(format!(".{name}{STAGING_MARK}{}", std::process::id()));
    paths::create_private_dir(&staging)?;
    let _held = FileLock::acquire(&lock_path(&staging), false);
    let result = (|| {
        // The image's root must be traversable by every user in a container.
        paths::ensure_dir(&staging.join("rootfs"), 0o755)?;
        fill(&staging)?;
        // An image made without a name is named by its id.
        let id = match (id, crate::id::is_valid(name)) {
            (Some(id), _) => id,
            (None, true) => name.to_string(),
            (None, false) => crate::id::generate()?,
        };
        paths::write_atomic(&staging.join("id"), format!("{id}\n").as_bytes(), false)?;
        fs::rename(&staging, &final_dir)
            .map_err(|e| Error::io(format!("rename into {}", final_dir.display()), e))?;
        Ok(id)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    let _ = fs::remove_file(lock_path(&staging));
    result
}

/// Is `id` the id of an image already?
pub(crate) fn id_in_use(id: &str) -> bool {
    list()
        .into_iter()
        .map(|name| images_dir().join(name))
        .any(|dir| image_id(&dir).as_deref() == Some(id))
}

/// What an image says a container runs with unless told otherwise (an
/// OCI image config's `config` object; `image load` keeps it in
/// `images/DIR/config.json`).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImageDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

const DEFAULTS_FILE: &str = "config.json";

pub(crate) fn write_defaults(image_dir: &Path, defaults: &ImageDefaults) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(defaults)
        .map_err(|e| Error::Usage(format!("image defaults: {e}")))?;
    paths::write_atomic(&image_dir.join(DEFAULTS_FILE), &bytes, false)
}

/// The defaults of the image whose root filesystem is `rootfs` (`None`
/// for an imported image: a tarball of files says nothing about them).
pub fn defaults_of(rootfs: &Path) -> Option<ImageDefaults> {
    // Only an image's: a `--rootfs DIR` may well have a config.json
    // beside it (a runc bundle's), which says nothing of the kind.
    if !rootfs.starts_with(images_dir()) {
        return None;
    }
    let bytes = fs::read(rootfs.parent()?.join(DEFAULTS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The environment a container of the image at `rootfs` starts with:
/// minibox's own (`base`), with the image's `Env` over it (`-e` goes over
/// both).
pub fn environment(base: Vec<String>, rootfs: &Path) -> Vec<String> {
    match defaults_of(rootfs).and_then(|d| d.env) {
        Some(env) => crate::command::merge_env(base, &env),
        None => base,
    }
}

/// The image's `WorkingDir` for a container not given `-w`.
pub fn default_workdir(config: &mut crate::config::InitConfig, rootfs: &Path) {
    if config.workdir.is_some() {
        return;
    }
    let dir = defaults_of(rootfs).and_then(|d| d.working_dir);
    config.workdir = dir
        .filter(|d| d.starts_with('/') && d != "/")
        .and_then(|d| crate::container::inside::parse_workdir(&d).ok());
}

/// Is `name` an image's name (rather than its id)?
pub(crate) fn is_named(name: &str) -> bool {
    matches!(image_dir(name), Ok(Some(_)))
}

fn lock_path(staging: &Path) -> PathBuf {
    let mut name = staging.as_os_str().to_os_string();
    name.push(".lock");
    PathBuf::from(name)
}

/// Remove the staging directories of imports that were killed (their lock
/// is free). Returns how many.
pub fn remove_stale_imports() -> usize {
    let Ok(entries) = fs::read_dir(images_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') || !name.contains(STAGING_MARK) || name.ends_with(".lock") {
            continue;
        }
        let staging = entry.path();
        if let Ok(Some(_lock)) = FileLock::acquire(&lock_path(&staging), false) {
            if fs::remove_dir_all(&staging).is_ok() {
                removed += 1;
            }
            let _ = fs::remove_file(lock_path(&staging));
        }
    }
    removed
}

/// Unpack a tar stream into `dest`, refusing every way out of it. Errors
/// name the archive (`what`) and the entry, never quote the archive's bytes.
pub fn extract(reader: impl std::io::Read, dest: &Path, what: &str) -> Result<Imported> {
    extract_entries(reader, dest, what, false)
}

/// [`extract`] for a layer of an OCI image over the layers before it:
/// whiteout entries are left out (`oci` applied them first), and an
/// entry replaces an existing one of another kind at its path.
pub(crate) fn extract_layer(
    reader: impl std::io::Read,
    dest: &Path,
    what: &str,
) -> Result<Imported> {
    extract_entries(reader, dest, what, true)
}

fn extract_entries(
    reader: impl std::io::Read,
    dest: &Path,
    what: &str,
    layer: bool,
) -> Result<Imported> {
    let bad = |why: String| Error::Usage(format!("unsafe tarball {what}: {why}"));
    let unreadable = |e: std::io::Error, at: usize| {
        // The tar crate's messages quote header bytes: a text file given as
        // a tarball would be printed back. Say what happened, once.
        Error::Usage(format!(
            "{what} is not a tar archive, or is damaged (at entry {}: {})",
            at + 1,
            match e.kind() {
                std::io::ErrorKind::UnexpectedEof => "it ends early",
                std::io::ErrorKind::NotFound => "a file it needs is missing",
                std::io::ErrorKind::PermissionDenied => "permission denied",
                _ => "a header that is not a tar header",
            }
        ))
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    // An ordinary user (stage 10, rootless) cannot give files away: every
    // file becomes the user's own — container root in the user's
    // containers. Other owners in the tarball collapse to root.
    archive.set_preserve_ownerships(nix::unistd::geteuid().is_root());
    archive.set_unpack_xattrs(false);
    let mut imported = Imported::default();
    let entries = archive.entries().map_err(|e| unreadable(e, 0))?;
    for (n, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| unreadable(e, n))?;
        let path = entry.path().map_err(|e| unreadable(e, n))?.into_owned();
        // `..` anywhere could climb out; an absolute name is taken as
        // relative to the image (tar's own convention).
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(bad(format!("entry {} climbs out with ..", path.display())));
        }
        use tar::EntryType::*;
        match entry.header().entry_type() {
            // Device nodes from a stranger's tarball could be /dev/sda.
            // Containers get their devices from minibox's own /dev.
            Char | Block | Fifo => {
                imported.skipped.push(path.display().to_string());
                continue;
            }
            Link => {
                let target = entry.link_name().ok().flatten().map(|t| t.into_owned());
                if target.is_some_and(|t| t.components().any(|c| c == Component::ParentDir)) {
                    return Err(bad(format!(
                        "hard link {} points out with ..",
                        path.display()
                    )));
                }
            }
            _ => {}
        }
        if layer {
            let is_whiteout = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(crate::oci::WHITEOUT_PREFIX));
            if is_whiteout {
                continue;
            }
            crate::oci::clear_for(
                dest,
                &path,
                entry.header().entry_type() == tar::EntryType::Directory,
            );
        }
        // unpack_in resolves the entry's parent directories and refuses one
        // that a symlink (say `etc -> /etc`) would lead outside `dest`.
        let inside = entry
            .unpack_in(dest)
            .map_err(|e| bad(format!("entry {}: {}", path.display(), first_line(&e))))?;
        if !inside {
            return Err(bad(format!(
                "entry {} would land outside the image",
                path.display()
            )));
        }
        imported.entries += 1;
    }
    Ok(imported)
}

fn first_line(error: &std::io::Error) -> String {
    error
        .to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Imported images, by name.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(images_dir())
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Remove image `name` (`REPOSITORY[:TAG]`, or an image id). A tag made
/// by `image tag` goes alone; the image's files go with its last name.
/// `used_by` names a container whose layer still rests on the image's
/// root, if any (stage 07 knows its containers).
pub fn remove(name: &str, used_by: impl Fn(&Path) -> Option<String>) -> Result<()> {
    let images = images_dir();
    let dir = match (ImageRef::parse(name), dir_of_id(name)) {
        (Ok(reference), by_id) => {
            let dir = images.join(reference.dir_name());
            match by_id {
                Some(by_id) if !dir.exists() && !dir.is_symlink() => by_id,
                _ => dir,
            }
        }
        (Err(_), Some(dir)) => dir,
        (Err(err), None) => return Err(err),
    };
    if dir.is_symlink() {
        return fs::remove_file(&dir)
            .map_err(|e| Error::io(format!("remove {}", dir.display()), e));
    }
    if !dir.exists() {
        return Err(Error::NoSuchImage(name.to_string()));
    }
    if let Some(container) = used_by(&dir.join("rootfs")) {
        return Err(Error::ImageInUse {
            name: name.to_string(),
            container,
        });
    }
    // Other names of it: the first takes its files, the rest follow it.
    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let aliases: Vec<PathBuf> = list()
        .into_iter()
        .map(|n| images.join(n))
        .filter(|a| {
            fs::read_link(a)
                .ok()
                .is_some_and(|t| t.to_string_lossy() == dir_name.as_deref().unwrap_or_default())
        })
        .collect();
    if let Some((heir, rest)) = aliases.split_first() {
        fs::remove_file(heir).map_err(|e| Error::io(format!("remove {}", heir.display()), e))?;
        fs::rename(&dir, heir)
            .map_err(|e| Error::io(format!("rename into {}", heir.display()), e))?;
        for alias in rest {
            let heir_name = heir.file_name().unwrap_or_default();
            let _ = fs::remove_file(alias);
            std::os::unix::fs::symlink(heir_name, alias)
                .map_err(|e| Error::io(format!("link {}", alias.display()), e))?;
        }
        return Ok(());
    }
    fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("remove {}", dir.display()), e))
}

/// `image tag SOURCE TARGET`: TARGET names SOURCE's image too (a symbolic
/// link beside it); a TARGET that named another image is moved, as docker
/// moves a tag.
pub fn tag(source: &str, target: &str) -> Result<()> {
    let source_dir = match image_dir(source)? {
        Some(dir) => dir,
        None => dir_of_id(source).ok_or_else(|| Error::NoSuchImage(source.to_string()))?,
    };
    let target_ref = ImageRef::parse(target)?;
    let images = paths::state_dir("images")?;
    let link = images.join(target_ref.dir_name());
    let source_name = source_dir
        .file_name()
        .ok_or_else(|| Error::NoSuchImage(source.to_string()))?;
    if link.file_name() == Some(source_name) {
        return Ok(());
    }
    if link.exists() && !link.is_symlink() {
        return Err(Error::Usage(format!(
            "{target_ref} is an image of its own: remove it first with `image rm {target}`"
        )));
    }
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(source_name, &link)
        .map_err(|e| Error::io(format!("link {}", link.display()), e))
}

/// Bytes of the regular files under `dir` (symlinks not followed).
pub(crate) fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => disk_usage(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// docker's sizes in `images`: `4.2MB`, four digits at most (powers of
/// 1000, as docker's go-units).
fn decimal_size(bytes: u64) -> String {
    decimal_size_with(bytes, 4)
}

/// Powers of 1000 with at most `significant` digits (`ps -s` shows 3,
/// as docker's `HumanSizeWithPrecision(size, 3)`).
pub fn decimal_size_with(bytes: u64, significant: usize) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let whole_digits = match value {
        v if v >= 100.0 => 3,
        v if v >= 10.0 => 2,
        _ => 1,
    };
    let digits = significant.saturating_sub(whole_digits);
    let mut text = format!("{value:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// `images`: docker's table, REPOSITORY TAG IMAGE ID CREATED SIZE. The
/// busybox image every stage has comes first; an image imported without a
/// name shows as `<none>`.
pub fn table() -> String {
    let now = crate::container::state::now();
    let mut rows = vec![["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"].map(String::from)];
    let images = images_dir();
    let names = list();
    if !names.iter().any(|n| n == DEFAULT_IMAGE) {
        if let Ok(rootfs) = rootfs::resolve(None) {
            rows.push([
                DEFAULT_IMAGE.into(),
                DEFAULT_TAG.into(),
                "-".into(),
                "-".into(),
                decimal_size(disk_usage(&rootfs)),
            ]);
        }
    }
    for name in names {
        let Some(reference) = ImageRef::of_dir(&name) else {
            continue;
        };
        let link = images.join(&name);
        let dir = match fs::read_link(&link) {
            Ok(target) => images.join(target),
            Err(_) => link,
        };
        let id = image_id(&dir);
        let created = fs::metadata(dir.join("id"))
            .or_else(|_| fs::metadata(&dir))
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or("-".into(), |d| {
                format!(
                    "{} ago",
                    crate::container::state::ago(now - d.as_secs_f64())
                )
            });
        let unnamed = id.as_deref() == Some(name.as_str());
        rows.push([
            if unnamed {
                "<none>".into()
            } else {
                reference.repository
            },
            if unnamed {
                "<none>".into()
            } else {
                reference.tag
            },
            id.unwrap_or_else(|| "-".into()),
            created,
            decimal_size(disk_usage(&dir.join("rootfs"))),
        ]);
    }
    crate::container::control::table(rows.iter().map(|r| r.to_vec()).collect())
}

/// `image inspect`: docker's fields that minibox has.
fn inspect(name: &str) -> Result<serde_json::Value> {
    let rootfs = resolve(name)?;
    let dir = rootfs.parent().map(Path::to_path_buf).unwrap_or_default();
    let id = image_id(&dir).unwrap_or_else(|| "-".into());
    let real = fs::canonicalize(&dir).ok();
    // Every name that leads to this directory, itself and its tags.
    let mut tags: Vec<String> = list()
        .into_iter()
        .filter(|n| fs::canonicalize(images_dir().join(n)).ok() == real && real.is_some())
        .filter(|n| *n != id)
        .filter_map(|n| ImageRef::of_dir(&n).map(|r| r.to_string()))
        .collect();
    if real.is_none() || !dir.starts_with(images_dir()) {
        tags.push(format!("{DEFAULT_IMAGE}:{DEFAULT_TAG}"));
    }
    let created = fs::metadata(dir.join("id"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(
            || "0001-01-01T00:00:00Z".to_string(),
            |d| crate::container::inspect::rfc3339(d.as_secs_f64()),
        );
    let defaults = defaults_of(&rootfs).unwrap_or_default();
    Ok(serde_json::json!({
        "Id": id,
        "RepoTags": tags,
        "Created": created,
        "Size": disk_usage(&rootfs),
        "Os": "linux",
        "Architecture": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
        "Config": {
            "User": defaults.user.unwrap_or_default(),
            "Env": defaults.env,
            "Entrypoint": defaults.entrypoint,
            "Cmd": defaults.cmd,
            "WorkingDir": defaults.working_dir.unwrap_or_default(),
        },
        "RootFS": { "Type": "layers" },
    }))
}

/// `image import|ls|rm|tag|inspect|save|load`, as stages 06 on offer it.
#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// Import a tarball (e.g. from `docker export`): FILE|- [REPOSITORY[:TAG]]
    /// (the older NAME TARBALL order still works)
    Import {
        #[arg(value_name = "FILE|-", required = true, num_args = 1..=2)]
        args: Vec<String>,
    },
    /// List images
    Ls,
    /// Remove images, by REPOSITORY[:TAG] or id (a tag alone if the image has others)
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Give an image another name: SOURCE[:TAG] TARGET[:TAG]
    Tag { source: String, target: String },
    /// Show images as docker's JSON (or --format a template)
    Inspect {
        /// A Go template of paths, e.g. '{{.Config.Cmd}}' or '{{json .RepoTags}}'
        #[arg(short, long, value_name = "TEMPLATE", value_parser = crate::container::inspect::Template::parse)]
        format: Option<crate::container::inspect::Template>,
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Write an image as an OCI image layout: a tar on stdout, or -o FILE|DIR
    Save {
        /// Write here: an existing empty directory gets the layout, any other path a tar of it
        #[arg(short, long, value_name = "FILE|DIR")]
        output: Option<PathBuf>,
        /// REPOSITORY[:TAG] or id
        image: String,
    },
    /// Load an image from an OCI image layout (a directory, or a tar of one; stdin without -i)
    Load {
        /// Read this directory or tar instead of stdin
        #[arg(short, long, value_name = "FILE|DIR")]
        input: Option<PathBuf>,
        /// Of several images in the layout, the one with this ref name
        /// (org.opencontainers.image.ref.name)
        #[arg(long = "ref", value_name = "NAME")]
        reference: Option<String>,
    },
}

/// `image import`'s arguments in docker's order, FILE|- [REPOSITORY[:TAG]],
/// or in minibox's older NAME TARBALL: (file, name, which order).
fn import_arguments(args: &[String]) -> (PathBuf, Option<String>, bool) {
    let is_file = |a: &str| a == "-" || Path::new(a).exists();
    let is_name = |a: &str| ImageRef::parse(a).is_ok();
    match args {
        [name, file] if !is_file(name) && is_name(name) && (is_file(file) || !is_name(file)) => {
            (PathBuf::from(file), Some(name.clone()), false)
        }
        [file, name] => (PathBuf::from(file), Some(name.clone()), true),
        [file] => (PathBuf::from(file), None, true),
        _ => (PathBuf::new(), None, true),
    }
}

/// Carry out an `image` subcommand, printing what docker would.
pub fn run_command(command: ImageCommand, used_by: impl Fn(&Path) -> Option<String>) -> Result<()> {
    match command {
        ImageCommand::Import { args } => {
            let (tarball, name, docker_order) = import_arguments(&args);
            // A name docker would not take is a bad command line (125);
            // what goes wrong after that is a failed import (1).
            if let Some(name) = &name {
                validate_name(name)?;
            }
            // Without a name, the image is named by its id (`<none>` in `images`).
            let name = match name {
                Some(name) => name,
                None => crate::id::generate()?,
            };
            let imported = import(&name, &tarball).map_err(Error::failed)?;
            if docker_order {
                // docker prints the new image's id.
                println!("{}", imported.id);
            } else {
                println!("imported {name}: {} entries", imported.entries);
            }
            if !imported.skipped.is_empty() {
                println!(
                    "skipped device nodes and FIFOs: {}",
                    imported.skipped.join(", ")
                );
            }
        }
        ImageCommand::Ls => print!("{}", table()),
        ImageCommand::Rm { names } => {
            for name in names {
                remove(&name, &used_by).map_err(Error::failed)?;
                println!("Untagged: {name}");
            }
        }
        ImageCommand::Tag { source, target } => tag(&source, &target).map_err(Error::failed)?,
        ImageCommand::Inspect { format, images } => {
            let mut found = Vec::new();
            let mut missing = None;
            for name in &images {
                match inspect(name) {
                    Ok(value) => found.push(value),
                    Err(err) => missing = Some(err),
                }
            }
            match &format {
                Some(template) => {
                    for value in &found {
                        println!("{}", template.render(value)?);
                    }
                }
                None => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::Value::Array(found))
                        .map_err(|e| Error::Usage(format!("inspect: {e}")))?
                ),
            }
            // docker prints what it found, then fails for the rest.
            if let Some(err) = missing {
                return Err(err.failed());
            }
        }
        ImageCommand::Save { output, image } => {
            crate::oci::save(&image, output.as_deref()).map_err(Error::failed)?
        }
        ImageCommand::Load { input, reference } => {
            let loaded =
                crate::oci::load(input.as_deref(), reference.as_deref()).map_err(Error::failed)?;
            match &loaded.name {
                Some(name) => println!("Loaded image: {}", ImageRef::parse(name)?),
                None => println!("Loaded image ID: {}", loaded.id),
            }
            if !loaded.skipped.is_empty() {
                println!(
                    "skipped device nodes and FIFOs: {}",
                    loaded.skipped.join(", ")
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod ref_tests {
    use super::*;

    #[test]
    fn references_take_dockers_form() {
        let r = ImageRef::parse("alpine").unwrap();
        assert_eq!(
            (r.repository.as_str(), r.tag.as_str()),
            ("alpine", "latest")
        );
        assert_eq!(r.dir_name(), "alpine");
        let r = ImageRef::parse("alpine:3.19").unwrap();
        assert_eq!(r.dir_name(), "alpine:3.19");
        assert_eq!(r.to_string(), "alpine:3.19");
        for bad in ["Alpine", "a:", ":t", "a:.x", "a:b:c", ".a", "a/b"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn import_takes_dockers_order_and_the_older_one() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            import_arguments(&args(&["-", "alpine:3"])),
            (PathBuf::from("-"), Some("alpine:3".into()), true)
        );
        assert_eq!(
            import_arguments(&args(&["/etc/passwd"])),
            (PathBuf::from("/etc/passwd"), None, true)
        );
        assert_eq!(
            import_arguments(&args(&["passwd", "/etc/passwd"])),
            (PathBuf::from("/etc/passwd"), Some("passwd".into()), false)
        );
        assert_eq!(
            import_arguments(&args(&["nothere", "/nonexistent.tar"])),
            (
                PathBuf::from("/nonexistent.tar"),
                Some("nothere".into()),
                false
            )
        );
        assert_eq!(
            import_arguments(&args(&["x.tar", "alpine"])),
            (PathBuf::from("x.tar"), Some("alpine".into()), true)
        );
        assert_eq!(decimal_size(4_200_000), "4.2MB");
        assert_eq!(decimal_size(0), "0B");
    }
}
