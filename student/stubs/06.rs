//! Stage 06's stubs (student mode only; see tests/tools/student.py).
//! Without them the container writes straight into its image, as stage 05
//! wrote into the rootfs, and `-v` mounts nothing.

// @stub shared/src/layer.rs mount_overlay
// @section The layer: overlayfs
/// init: mount the overlay on `merged`.
///
/// Stub: binds the image itself (read-write) on `merged`: every write of
/// the container lands in the image.
pub fn mount_overlay(layer: &LayerPaths) -> Result<()> {
    crate::student::not_written("06", "layer::mount_overlay", "The layer: overlayfs");
    trace::step(
        format!(
            "mount({:?}, {:?}, NULL, MS_BIND|MS_REC, NULL)",
            layer.lower.display().to_string(),
            layer.merged.display().to_string()
        ),
        mount(
            Some(&layer.lower),
            &layer.merged,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
    )
}

// @stub shared/src/volumes.rs Volume::mount
// @section Volumes
    /// init, before pivot_root: bind the host directory onto the container
    /// path inside `new_root`, then make it read-only if asked.
    ///
    /// Stub: mounts nothing.
    pub fn mount(&self, new_root: &Path) -> Result<()> {
        crate::student::not_written("06", "Volume::mount", "Volumes");
        let _ = new_root;
        Ok(())
    }
