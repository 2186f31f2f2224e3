//! Where minibox keeps its files. Everything lives under roots the project
//! owns, and `MINIBOX_ROOT` moves all of it (tests give each run a fresh one).

use std::path::PathBuf;

/// Persistent state: images, containers (`/var/lib/minibox`).
pub fn state_root() -> PathBuf {
    std::env::var_os("MINIBOX_ROOT")
        .map_or_else(|| PathBuf::from("/var/lib/minibox"), PathBuf::from)
}

/// Runtime files that die with the machine: locks (`/run/minibox`).
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("MINIBOX_ROOT") {
        Some(root) => PathBuf::from(root).join("run"),
        None => PathBuf::from("/run/minibox"),
    }
}
