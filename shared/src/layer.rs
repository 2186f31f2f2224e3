//! The container's writable layer: overlayfs over a read-only image.
//!
//! ```text
//! merged/   what the container sees as /         (the overlay mount)
//!   = upper/  the container's own changes, copied up on first write
//!   + lower   the image, never written
//! work/     overlayfs's scratch space: must be empty, on upper's file system
//! ```
//!
//! A file deleted inside the container cannot be deleted from the image, so
//! overlayfs records a *whiteout* in upper (a 0:0 character device with the
//! file's name) that hides the lower file.
//!
//! run makes the directories under `containers/<id>/` (0700: no other user
//! may walk into a container's files); init mounts the overlay inside its
//! own mount namespace, so the host's mount table never shows it and the
//! mount goes away with the container.

use crate::config::LayerPaths;
use crate::error::{Error, Result};
use crate::lock::ContainerLock;
use crate::{id, paths, process, trace};
use nix::mount::{mount, MsFlags};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `$MINIBOX_ROOT/containers`: one private directory per container.
pub fn containers_dir() -> PathBuf {
    paths::state_root().join("containers")
}

/// A container's directory (its layer, and from stage 07 its record and log).
pub fn container_dir(id: &str) -> PathBuf {
    containers_dir().join(id)
}

/// Make `containers/<id>/` (0700) unless it exists.
pub fn ensure_container_dir(id: &str) -> Result<PathBuf> {
    paths::state_dir("containers")?;
    let dir = container_dir(id);
    paths::ensure_dir(&dir, paths::DIR_MODE)?;
    Ok(dir)
}

/// One container's layer directories.
#[derive(Debug)]
pub struct Layer {
    paths: LayerPaths,
    dir: PathBuf,
    removed: bool,
}

impl Layer {
    /// run: make `containers/<id>/{upper,work,merged}`.
    pub fn create(id: &str, lower: &Path) -> Result<Layer> {
        process::checkpoint()?;
        let dir = container_dir(id);
        let made_dir = !dir.exists();
        if made_dir {
            paths::state_dir("containers")?;
            trace::step(
                format!("mkdir({:?}, 0700)", dir.display().to_string()),
                nix::unistd::mkdir(&dir, nix::sys::stat::Mode::from_bits_truncate(0o700)),
            )?;
        }
        let mut layer = Layer {
            paths: LayerPaths {
                lower: lower.to_path_buf(),
                upper: dir.join("upper"),
                work: dir.join("work"),
                merged: dir.join("merged"),
            },
            dir,
            // Stage 07 made the directory for its record and removes it on rm.
            removed: !made_dir,
        };
        // 0755 inside the private directory: upper's root becomes the
        // container's `/`, which every user in the container must traverse.
        // `start`: a stopped container runs again on the layer it had.
        if !made_dir && layer.paths.upper.is_dir() {
            trace::note(
                format!("{:?}", layer.paths.upper.display().to_string()),
                Some("kept from its last run".into()),
            );
            return Ok(layer);
        }
        for sub in [
            layer.paths.upper.clone(),
            layer.paths.work.clone(),
            layer.paths.merged.clone(),
        ] {
            let made = trace::step(
                format!("mkdir({:?}, 0755)", sub.display().to_string()),
                nix::unistd::mkdir(&sub, nix::sys::stat::Mode::from_bits_truncate(0o755)),
            );
            if let Err(err) = made {
                let _ = layer.remove_subdirs();
                return Err(err);
            }
        }
        Ok(layer)
    }

    /// What init needs to mount it.
    pub fn paths(&self) -> LayerPaths {
        self.paths.clone()
    }

    /// Keep the layer after the container exits (stage 07: until `rm`).
    pub fn keep(&mut self) {
        self.removed = true;
    }

    /// run: delete the layer once the container is gone.
    pub fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        remove_dir(&self.dir)
    }

    fn remove_subdirs(&mut self) -> Result<()> {
        for sub in [&self.paths.upper, &self.paths.work, &self.paths.merged] {
            let _ = fs::remove_dir_all(sub);
        }
        self.remove()
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// init: mount the overlay on `merged`.
pub fn mount_overlay(layer: &LayerPaths) -> Result<()> {
    mount_overlay_with(
        layer,
        overlay_options(&[&layer.lower], &layer.upper, &layer.work),
    )
}

/// Mount the overlay on `merged` with these options (stage 10 adds
/// `userxattr`).
pub(crate) fn mount_overlay_with(layer: &LayerPaths, options: String) -> Result<()> {
    trace::step(
        format!(
            "mount(\"overlay\", {:?}, \"overlay\", 0, {options:?})",
            layer.merged.display().to_string()
        ),
        mount(
            Some("overlay"),
            &layer.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        ),
    )
}

/// Delete a container directory (layer, and any record and log) unless its
/// overlay is somehow still mounted.
pub fn remove_dir(dir: &Path) -> Result<()> {
    // The overlay lived in the container's mount namespace, which died with
    // it. Should `merged` still be a mount point here, deleting "its files"
    // would delete the image's: refuse.
    let merged = dir.join("merged");
    if let (Ok(a), Ok(b)) = (fs::metadata(&merged), fs::metadata(dir)) {
        if a.dev() != b.dev() {
            return Err(Error::Usage(format!(
                "{} is still mounted: not removing the layer",
                merged.display()
            )));
        }
    }
    let result = fs::remove_dir_all(dir);
    if result
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::PermissionDenied)
        && !nix::unistd::geteuid().is_root()
    {
        // A rootless container's files belong to the user's subordinate
        // ids: only container root, in a user namespace, may delete them.
        trace::failed(
            format!("rm -r {:?}", dir.display().to_string()),
            nix::errno::Errno::EACCES,
        );
        return crate::userns::remove_as_container_root(dir);
    }
    trace::step(
        format!("rm -r {:?}", dir.display().to_string()),
        result.map_err(|e| crate::error::errno_of(&e)),
    )
}

/// `lowerdir=…,upperdir=…,workdir=…` (no upper for a read-only view), with
/// `\`, `,` and `:` escaped: in overlay options `,` separates options and
/// `:` separates lower layers, the leftmost on top.
pub fn overlay_options(lowers: &[&Path], upper: &Path, work: &Path) -> String {
    let lowers: Vec<String> = lowers.iter().map(|l| escape_option(l)).collect();
    format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        escape_option(upper),
        escape_option(work)
    )
}

/// A path as an overlay option value.
pub fn escape_option(path: &Path) -> String {
    let mut out = String::new();
    for c in path.display().to_string().chars() {
        if matches!(c, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Remove layers whose run died (its lock is free) and that `keep` does
/// not claim (stage 07 keeps a stopped container's layer until `rm`).
pub fn remove_stale(keep: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = fs::read_dir(containers_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        if !id::is_valid(&id) || keep(&id) {
            continue;
        }
        // Hold the lock while removing: no run can start with this id
        // halfway through.
        if let Ok(Some(_lock)) = ContainerLock::try_acquire(&id) {
            if remove_dir(&entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_escape_separators() {
        let opts = overlay_options(
            &[Path::new("/a,b:c"), Path::new("/l2")],
            Path::new("/u"),
            Path::new("/w"),
        );
        assert_eq!(opts, r"lowerdir=/a\,b\:c:/l2,upperdir=/u,workdir=/w");
    }
}
