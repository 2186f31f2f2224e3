//! The parts of `/proc` and `/sys` a container must not see or change.
//!
//! `/proc` and `/sys` are the kernel's own interfaces. Most files there
//! describe only the caller's namespaces, but some are global: writing
//! `/proc/sys/kernel/core_pattern` makes the *host* run a program of the
//! container's choosing as root the next time anything crashes;
//! `/proc/sysrq-trigger` can reboot the machine; `/proc/kcore` is the
//! kernel's memory. So, as docker does, some paths are **masked** (an
//! empty read-only tmpfs over a directory, `/dev/null` over a file) and
//! others are made **read-only** (bound onto themselves, then remounted
//! read-only). Paths the kernel does not have are skipped.

use crate::error::Result;
use crate::trace;
use nix::mount::MsFlags;
use std::path::Path;

/// docker's masked paths.
pub const MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// docker's read-only paths.
pub const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Mask every path of `paths` that exists.
pub fn mask(paths: &[&str]) -> Result<()> {
    for path in paths {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            continue; // not in this kernel: nothing to hide
        };
        if meta.is_dir() {
            trace::step(
                format!("mount(\"tmpfs\", {path:?}, \"tmpfs\", MS_RDONLY, \"size=0\")"),
                nix::mount::mount(
                    Some("tmpfs"),
                    *path,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0"),
                ),
            )?;
        } else {
            trace::step(
                format!("mount(\"/dev/null\", {path:?}, NULL, MS_BIND, NULL)"),
                nix::mount::mount(
                    Some("/dev/null"),
                    *path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ),
            )?;
        }
    }
    Ok(())
}

/// Make every path of `paths` that exists read-only, with everything
/// mounted below it.
pub fn read_only(paths: &[&str]) -> Result<()> {
    for path in paths {
        if !Path::new(path).exists() {
            continue;
        }
        trace::step(
            format!("mount({path:?}, {path:?}, NULL, MS_BIND|MS_REC, NULL)"),
            nix::mount::mount(
                Some(*path),
                *path,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
        )?;
        // A bind mount keeps its source's flags only until remounted: the
        // remount must repeat nosuid/nodev/noexec, or the kernel refuses
        // (those flags are locked on proc). mount_setattr changes only
        // the read-only bit.
        let fd = crate::mounts::open_mount(path)?;
        crate::mounts::set_read_only_recursive(&fd, path)?;
    }
    Ok(())
}
