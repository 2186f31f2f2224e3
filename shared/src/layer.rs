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
//! run makes the directories; init mounts the overlay inside its own mount
//! namespace, so the host's mount table never shows it and the mount goes
//! away with the container.

use crate::error::{Error, Result};
use crate::paths::{state_root, ContainerLock};
use crate::trace;
use nix::mount::{mount, MsFlags};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub fn containers_dir() -> PathBuf {
    state_root().join("containers")
}

/// One container's layer directories.
#[derive(Debug)]
pub struct Layer {
    pub dir: PathBuf,
    pub lower: PathBuf,
    removed: bool,
}

impl Layer {
    /// run: make `containers/<id>/{upper,work,merged}`.
    pub fn create(id: &str, lower: &Path) -> Result<Layer> {
        let layer = Layer {
            dir: containers_dir().join(id),
            lower: lower.to_path_buf(),
            removed: false,
        };
        fs::create_dir_all(containers_dir())
            .map_err(|e| Error::io(format!("create {}", containers_dir().display()), e))?;
        // Stage 07 has already made the container's directory (for its state).
        let mut dirs = vec![layer.upper(), layer.work(), layer.merged()];
        if !layer.dir.is_dir() {
            dirs.insert(0, layer.dir.clone());
        }
        for dir in dirs {
            trace::step(
                format!("mkdir({:?})", dir.display().to_string()),
                nix::unistd::mkdir(&dir, nix::sys::stat::Mode::from_bits_truncate(0o755)),
            )?;
        }
        Ok(layer)
    }

    /// init: the same layer, from the paths run passed.
    pub fn open(dir: &Path, lower: &Path) -> Layer {
        Layer {
            dir: dir.to_path_buf(),
            lower: lower.to_path_buf(),
            removed: true, // init never removes: run does
        }
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    /// init: mount the overlay on `merged`.
    pub fn mount(&self) -> Result<()> {
        let options = overlay_options(&self.lower, &self.upper(), &self.work());
        let target = self.merged();
        trace::step(
            format!(
                "mount(\"overlay\", {:?}, \"overlay\", 0, {options:?})",
                target.display().to_string()
            ),
            mount(
                Some("overlay"),
                &target,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.as_str()),
            ),
        )
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
        remove_layer_dir(&self.dir)
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// Delete a container directory (layer, state, log) unless its overlay is
/// somehow still mounted.
pub fn remove_dir(dir: &Path) -> Result<()> {
    remove_layer_dir(dir)
}

fn remove_layer_dir(dir: &Path) -> Result<()> {
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
    let step = format!("rm -r {:?}", dir.display().to_string());
    trace::step(
        step,
        result.map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))),
    )
}

/// `lowerdir=…,upperdir=…,workdir=…`, with `\`, `,` and `:` escaped: in
/// overlay options `,` separates options and `:` separates lower layers.
pub fn overlay_options(lower: &Path, upper: &Path, work: &Path) -> String {
    format!(
        "lowerdir={},upperdir={},workdir={}",
        escape_option(lower),
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

/// Remove layers whose run died (its lock is free): a crash's leftovers.
pub fn remove_stale() -> usize {
    let Ok(entries) = fs::read_dir(containers_dir()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let id = entry.file_name().to_string_lossy().into_owned();
        // A directory with a state file is a stage-07 container, kept
        // after it exits until `rm`: not a leftover.
        if !crate::cgroups::is_container_id(&id) || entry.path().join("state.json").exists() {
            continue;
        }
        if ContainerLock::owner_alive(&ContainerLock::path(&id)) != Some(true)
            && remove_layer_dir(&entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_escape_separators() {
        let opts = overlay_options(Path::new("/a,b:c"), Path::new("/u"), Path::new("/w"));
        assert_eq!(opts, r"lowerdir=/a\,b\:c,upperdir=/u,workdir=/w");
    }
}
