//! Where minibox keeps its files. Everything lives under roots the project
//! owns, and `MINIBOX_ROOT` moves all of it (tests give each run a fresh one).

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

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

/// Held by `run` for its container's whole life. Whatever a container owns
/// (its cgroup, its layer directories) is named by its id; a later run or
/// `cleanup` that finds such a thing with a *free* lock knows the run that
/// made it died without cleaning up. A held lock means a live run, perhaps
/// one still setting up.
#[derive(Debug)]
pub struct ContainerLock {
    _lock: nix::fcntl::Flock<File>,
    path: PathBuf,
}

impl ContainerLock {
    pub fn path(id: &str) -> PathBuf {
        runtime_dir().join("locks").join(format!("{id}.lock"))
    }

    pub fn acquire(id: &str) -> Result<ContainerLock> {
        let path = Self::path(id);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        let file =
            File::create(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        // Blocking: ids are unique, so the only other holder can be a
        // `cleanup` testing this lock for a moment.
        let lock = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(
            |(_, errno)| Error::Sys {
                step: format!("flock({})", path.display()),
                errno,
            },
        )?;
        Ok(ContainerLock { _lock: lock, path })
    }

    /// `Some(true)` if a live run holds the lock at `path`, `Some(false)` if
    /// the lock file is there but free, `None` if there is no lock file.
    pub fn owner_alive(path: &Path) -> Option<bool> {
        let file = File::options().write(true).open(path).ok()?;
        let free =
            nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok();
        Some(!free)
    }

    /// Delete lock files no live run holds (after a sweep has removed what
    /// their dead runs left).
    pub fn remove_free_locks() {
        let Ok(entries) = fs::read_dir(runtime_dir().join("locks")) else {
            return;
        };
        for entry in entries.flatten() {
            if Self::owner_alive(&entry.path()) == Some(false) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

impl Drop for ContainerLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
