//! File locks: how concurrent minibox commands stay out of each other's way.
//!
//! * A [`ContainerLock`] is held by `run` (or its monitor) for its
//!   container's whole life. Whatever a container owns (its cgroup, its
//!   layer, its record) is named by its id; a later run or `cleanup` that
//!   finds such a thing with a *free* lock knows the run that made it died
//!   without cleaning up. A held lock means a live run, perhaps one still
//!   setting up.
//! * The [`StateLock`] is held for a moment around changes that must see
//!   every container's state at once (is this name free?).
//!
//! `flock` locks the *open file*, not the path. A lock file that is
//! unlinked (its holder cleaning up) while another process waits for it
//! would let that process "hold" a lock on a file nobody can find any more,
//! while a third creates a new file at the same path and locks that. So
//! after locking we check that the path still names the inode we locked,
//! and start over if not.

use crate::error::{Error, Result};
use crate::paths::{self, FILE_MODE};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// An exclusive `flock` on a file that the path still names.
#[derive(Debug)]
pub struct FileLock {
    _lock: Flock<File>,
}

impl FileLock {
    /// Lock `path` (created 0600 if missing), waiting if `wait`; `None` if
    /// it is held and `wait` is false.
    pub fn acquire(path: &Path, wait: bool) -> Result<Option<FileLock>> {
        loop {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(FILE_MODE)
                .open(path)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
            let how = if wait {
                FlockArg::LockExclusive
            } else {
                FlockArg::LockExclusiveNonblock
            };
            let lock = match Flock::lock(file, how) {
                Ok(lock) => lock,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if !wait => return Ok(None),
                Err((_, nix::errno::Errno::EINTR)) => {
                    crate::process::checkpoint()?;
                    continue;
                }
                Err((_, errno)) => {
                    return Err(Error::Sys {
                        step: format!("flock({})", path.display()),
                        errno,
                    })
                }
            };
            if still_named(&lock, path) {
                return Ok(Some(FileLock { _lock: lock }));
            }
            // Unlinked or replaced while we waited: lock the file that is there now.
        }
    }
}

fn still_named(lock: &Flock<File>, path: &Path) -> bool {
    match (lock.metadata(), fs::metadata(path)) {
        (Ok(held), Ok(named)) => held.ino() == named.ino() && held.dev() == named.dev(),
        _ => false,
    }
}

/// Held by `run` (or its monitor) for its container's whole life.
#[derive(Debug)]
pub struct ContainerLock {
    _lock: FileLock,
    path: PathBuf,
}

impl ContainerLock {
    pub fn path(id: &str) -> PathBuf {
        paths::runtime_dir()
            .join("locks")
            .join(format!("{id}.lock"))
    }

    pub fn acquire(id: &str) -> Result<ContainerLock> {
        paths::runtime_subdir("locks")?;
        let path = Self::path(id);
        // Blocking: ids are unique, so the only other holder can be a
        // `cleanup` or `rm` testing this lock for a moment.
        let lock = FileLock::acquire(&path, true)?
            .ok_or_else(|| Error::Protocol("a blocking lock returned without the lock".into()))?;
        Ok(ContainerLock { _lock: lock, path })
    }

    /// Take the lock of a container whose run is gone (it must be free):
    /// `rm` and `cleanup` hold it while they remove what the container left,
    /// so no new run can reuse it halfway. `None` while a run holds it.
    pub fn try_acquire(id: &str) -> Result<Option<ContainerLock>> {
        paths::runtime_subdir("locks")?;
        let path = Self::path(id);
        Ok(FileLock::acquire(&path, false)?.map(|lock| ContainerLock { _lock: lock, path }))
    }

    /// `Some(true)` if a live run holds `id`'s lock, `Some(false)` if the
    /// lock file is there but free, `None` if there is no lock file.
    pub fn is_held(id: &str) -> Option<bool> {
        let file = File::options().write(true).open(Self::path(id)).ok()?;
        Some(Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err())
    }

    /// Delete lock files no live run holds (after a sweep has removed what
    /// their dead runs left).
    pub fn remove_free_locks() {
        let Ok(entries) = fs::read_dir(paths::runtime_dir().join("locks")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".lock") else {
                continue;
            };
            // Taking it and dropping it unlinks it (see Drop), under the lock.
            if crate::id::is_valid(id) {
                let _ = Self::try_acquire(id);
            }
        }
    }
}

impl Drop for ContainerLock {
    /// Unlink while still holding the lock: a waiter then finds its inode
    /// unlinked (see [`FileLock::acquire`]) and starts over.
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// The lock every state change that reads others' state happens under.
#[derive(Debug)]
pub struct StateLock {
    _lock: FileLock,
    // `--trace step` does not pause while this lock is held: `ps` in the
    // presenter's second terminal waits for it.
    _no_pause: crate::trace::NoPause,
}

impl StateLock {
    pub fn acquire() -> Result<StateLock> {
        let dir = paths::ensure_runtime_root()?;
        let lock = FileLock::acquire(&dir.join("state.lock"), true)?
            .ok_or_else(|| Error::Protocol("a blocking lock returned without the lock".into()))?;
        Ok(StateLock {
            _lock: lock,
            _no_pause: crate::trace::NoPause::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_unlinked_by_its_holder_is_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let first = FileLock::acquire(&path, false).unwrap().unwrap();
        assert!(FileLock::acquire(&path, false).unwrap().is_none());
        // The holder unlinks the file and lets go; a new lock is a new file.
        fs::remove_file(&path).unwrap();
        let second = FileLock::acquire(&path, false).unwrap().unwrap();
        drop(first);
        assert!(
            FileLock::acquire(&path, false).unwrap().is_none(),
            "the file at the path is locked by `second`"
        );
        drop(second);
    }
}
