//! Images: read-only root filesystems kept under `$MINIBOX_ROOT/images`.
//!
//! An image is just a directory tree (`images/NAME/rootfs`) that many
//! containers share as the read-only lower layer of their overlay. It comes
//! from a tarball (`image import`, e.g. a `docker export`), and a tarball is
//! untrusted input: extracting one must never write outside the image.

use crate::error::{Error, Result};
use crate::paths::state_root;
use crate::{rootfs, trace};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The image every stage can run without an import: the busybox rootfs
/// that `just rootfs` builds.
pub const DEFAULT_IMAGE: &str = "busybox";

pub fn images_dir() -> PathBuf {
    state_root().join("images")
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
        return Err(Error::Usage(format!(
            "image {name:?} not found: import it with `image import {name} FILE.tar` (see `image ls`)"
        )));
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

/// Import `tarball` as image `name`. The tree is extracted next to its final
/// place and renamed into it at the end, so a failed import leaves nothing.
pub fn import(name: &str, tarball: &Path) -> Result<Imported> {
    validate_name(name)?;
    let final_dir = images_dir().join(name);
    if final_dir.exists() {
        return Err(Error::Usage(format!(
            "image {name:?} exists: remove it first with `image rm {name}`"
        )));
    }
    let file =
        fs::File::open(tarball).map_err(|e| Error::io(format!("open {}", tarball.display()), e))?;
    let staging = images_dir().join(format!(".{name}.importing-{}", std::process::id()));
    fs::create_dir_all(staging.join("rootfs"))
        .map_err(|e| Error::io(format!("create {}", staging.display()), e))?;
    let result = extract(file, &staging.join("rootfs")).and_then(|imported| {
        fs::rename(&staging, &final_dir)
            .map_err(|e| Error::io(format!("rename into {}", final_dir.display()), e))?;
        Ok(imported)
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Unpack a tar stream into `dest`, refusing every way out of it.
pub fn extract(reader: impl std::io::Read, dest: &Path) -> Result<Imported> {
    let bad = |what: String| Error::Usage(format!("unsafe tarball: {what}"));
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    let mut imported = Imported::default();
    let entries = archive
        .entries()
        .map_err(|e| Error::io("read tarball", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| Error::io("read tarball", e))?;
        let path = entry
            .path()
            .map_err(|e| Error::io("read tarball", e))?
            .into_owned();
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
            .map_err(|e| bad(format!("entry {}: {e}", path.display())))?;
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

pub fn remove(name: &str) -> Result<()> {
    validate_name(name)?;
    let dir = images_dir().join(name);
    if !dir.exists() {
        return Err(Error::Usage(format!("image {name:?} not found")));
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
pub fn run_command(command: ImageCommand) -> Result<()> {
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
        ImageCommand::Rm { name } => remove(&name)?,
    }
    Ok(())
}
