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

/// Image names: lowercase letters, digits, `.`, `_`, `-`; at most 64.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid image name {name:?}: use lowercase letters, digits, '.', '_' and '-'"
        )))
    }
}

/// The root filesystem of image `name`.
pub fn resolve(name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    let dir = images_dir().join(name).join("rootfs");
    let found = if dir.is_dir() {
        dir
    } else if name == DEFAULT_IMAGE {
        rootfs::resolve(None)?
    } else {
        return Err(Error::NoSuchImage(name.to_string()));
    };
    trace::note(format!("image {name:?}"), Some(found.display().to_string()));
    Ok(found)
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Imported {
    pub entries: usize,
    /// Device nodes and FIFOs the tarball held, which were not created.
    pub skipped: Vec<String>,
}

/// Import the tarball at `path` as image `name`.
pub fn import(name: &str, path: &Path) -> Result<Imported> {
    validate_name(name)?;
    let file =
        fs::File::open(path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    import_from(name, file, &path.display().to_string())
}

/// Import a tar stream (`what` names it in messages) as image `name`. The
/// tree is extracted beside its final place in a staging directory the
/// import holds locked, and renamed into place at the end: a failed import
/// leaves nothing, and a killed one leaves a staging directory whose lock
/// is free, which [`remove_stale_imports`] removes.
pub fn import_from(name: &str, reader: impl std::io::Read, what: &str) -> Result<Imported> {
    validate_name(name)?;
    let images = paths::state_dir("images")?;
    let final_dir = images.join(name);
    if final_dir.exists() {
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
        let imported = extract(reader, &staging.join("rootfs"), what)?;
        fs::rename(&staging, &final_dir)
            .map_err(|e| Error::io(format!("rename into {}", final_dir.display()), e))?;
        Ok(imported)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    let _ = fs::remove_file(lock_path(&staging));
    result
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
    archive.set_preserve_ownerships(true);
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

/// Remove image `name`. `used_by` names a container whose layer still
/// rests on the image's root, if any (stage 07 knows its containers).
pub fn remove(name: &str, used_by: impl Fn(&Path) -> Option<String>) -> Result<()> {
    validate_name(name)?;
    let dir = images_dir().join(name);
    if !dir.exists() {
        return Err(Error::NoSuchImage(name.to_string()));
    }
    if let Some(container) = used_by(&dir.join("rootfs")) {
        return Err(Error::ImageInUse {
            name: name.to_string(),
            container,
        });
    }
    fs::remove_dir_all(&dir).map_err(|e| Error::io(format!("remove {}", dir.display()), e))
}

/// `image import|ls|rm`, as stages 06 and 07 offer it.
#[derive(clap::Subcommand, Debug)]
pub enum ImageCommand {
    /// Import a tarball (e.g. from `docker export`) as image NAME
    Import { name: String, tarball: PathBuf },
    /// List images
    Ls,
    /// Remove an imported image
    Rm { name: String },
}

/// Carry out an `image` subcommand, printing what docker would.
pub fn run_command(command: ImageCommand, used_by: impl Fn(&Path) -> Option<String>) -> Result<()> {
    match command {
        ImageCommand::Import { name, tarball } => {
            let imported = import(&name, &tarball)?;
            println!("imported {name}: {} entries", imported.entries);
            if !imported.skipped.is_empty() {
                println!(
                    "skipped device nodes and FIFOs: {}",
                    imported.skipped.join(", ")
                );
            }
        }
        ImageCommand::Ls => {
            println!("{DEFAULT_IMAGE}");
            for name in list().into_iter().filter(|n| n != DEFAULT_IMAGE) {
                println!("{name}");
            }
        }
        ImageCommand::Rm { name } => remove(&name, used_by)?,
    }
    Ok(())
}
