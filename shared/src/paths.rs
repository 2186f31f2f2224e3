//! Where minibox keeps its files, and how they are created.
//!
//! Everything lives under roots the project owns, and `MINIBOX_ROOT` moves
//! all of it (tests give each run a fresh one). What is under them is
//! private: a container's record holds its environment (secrets passed with
//! `-e`), its log what it printed, and its layer's `upper/` and `merged/`
//! files the container wrote — a setuid binary there would run with host
//! root's power for any local user who could reach it (the class of moby
//! CVE-2021-41091). So the roots are 0711 (passable, not listable),
//! everything below 0700, files 0600 — *created* so, never loosened later.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the state and runtime roots: others may pass through, not list.
pub const ROOT_MODE: u32 = 0o711;
/// Mode of every directory below a root.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file minibox writes.
pub const FILE_MODE: u32 = 0o600;

/// Persistent state: images, containers (`/var/lib/minibox`; for an
/// ordinary user, stage 10's rootless containers, `$XDG_DATA_HOME/minibox`,
/// that is `~/.local/share/minibox`).
pub fn state_root() -> PathBuf {
    if let Some(root) = std::env::var_os("MINIBOX_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/minibox");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| runtime_fallback().join("data"));
    data.join("minibox")
}

/// Runtime files that die with the machine: locks (`/run/minibox`; for an
/// ordinary user `$XDG_RUNTIME_DIR/minibox`, or where no login manager
/// made one, [`runtime_fallback`]).
pub fn runtime_dir() -> PathBuf {
    if let Some(root) = std::env::var_os("MINIBOX_ROOT").filter(|r| !r.is_empty()) {
        return PathBuf::from(root).join("run");
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/run/minibox");
    }
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(runtime_fallback, |d| PathBuf::from(d).join("minibox"))
}

/// `/tmp/minibox-UID`: an ordinary user's runtime directory when
/// `XDG_RUNTIME_DIR` is unset (no systemd login session, as on build
/// machines and in `su`/`setpriv` shells). [`ensure_dir`] refuses it when
/// another user made it first.
pub fn runtime_fallback() -> PathBuf {
    std::env::temp_dir().join(format!("minibox-{}", nix::unistd::geteuid()))
}

/// An ordinary user's state and runtime roots must be their own. Each
/// user's containers are theirs alone: their records name processes and
/// cgroups only that user may signal or change, and `MINIBOX_ROOT` pointed
/// at another user's (or root's) state must not make them look like
/// anyone else's. The kernel would refuse the signals and the writes
/// anyway; this makes the refusal one line, before anything is read. A
/// root that does not exist yet is fine: nothing is there to see.
pub fn check_roots_are_mine() -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::geteuid();
    if me.is_root() {
        return Ok(());
    }
    for root in [state_root(), runtime_dir()] {
        // Followed, not lstat'ed: a symlink of one's own to another
        // user's root is theirs all the same.
        match fs::metadata(&root) {
            Ok(meta) if meta.uid() != me.as_raw() => return Err(not_yours(&root, meta.uid())),
            _ => {}
        }
    }
    Ok(())
}

/// The one-line refusal of a root (or a directory below it) that belongs
/// to someone else, naming the fix for where the path came from.
fn not_yours(dir: &Path, owner: u32) -> Error {
    let fix = if std::env::var_os("MINIBOX_ROOT").is_some_and(|r| !r.is_empty()) {
        "each user's containers are theirs alone: unset MINIBOX_ROOT or point it at a directory of yours"
    } else if dir.starts_with(runtime_fallback()) {
        "remove it or set XDG_RUNTIME_DIR"
    } else {
        "each user's containers are theirs alone: check XDG_DATA_HOME, XDG_RUNTIME_DIR and HOME"
    };
    Error::Usage(format!(
        "{} belongs to uid {owner}, not to you: {fix}",
        dir.display()
    ))
}

/// A directory directly under the state root (`containers`, `images`, …),
/// created private along with the root itself.
pub fn state_dir(name: &str) -> Result<PathBuf> {
    ensure_root(&state_root())?;
    let dir = state_root().join(name);
    ensure_dir(&dir, DIR_MODE)?;
    Ok(dir)
}

/// A directory under the runtime root (`locks`), created private.
pub fn runtime_subdir(name: &str) -> Result<PathBuf> {
    ensure_root(&runtime_dir())?;
    let dir = runtime_dir().join(name);
    ensure_dir(&dir, DIR_MODE)?;
    Ok(dir)
}

/// The runtime root itself, created 0711.
pub fn ensure_runtime_root() -> Result<PathBuf> {
    let dir = runtime_dir();
    ensure_root(&dir)?;
    Ok(dir)
}

fn ensure_root(root: &Path) -> Result<()> {
    // Another user's roots are refused by name, whichever is made first.
    check_roots_are_mine()?;
    if let Some(parent) = root.parent() {
        // The parents (/var/lib, /run, /tmp) are the system's, not ours.
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
        }
    }
    ensure_dir(root, ROOT_MODE)
}

/// Create `dir` with `mode` (a parent must exist), or tighten an existing
/// one that is more open than `mode` (made by an older minibox).
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<()> {
    match fs::DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            // mkdir honours the umask, which can only remove bits: set the
            // exact mode (this can only open up what we asked for).
            set_mode(dir, mode)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(dir)
                .map_err(|e| Error::io(format!("stat {}", dir.display()), e))?;
            if !meta.is_dir() {
                return Err(Error::Usage(format!(
                    "{} exists and is not a directory",
                    dir.display()
                )));
            }
            // Someone else's directory (a /tmp/minibox-UID made by another
            // user, another user's state root) is not ours to keep state in.
            use std::os::unix::fs::MetadataExt;
            let me = nix::unistd::geteuid().as_raw();
            if me != 0 && meta.uid() != me {
                return Err(not_yours(dir, meta.uid()));
            }
            if meta.permissions().mode() & 0o777 & !mode != 0 {
                set_mode(dir, mode)?;
            }
            Ok(())
        }
        Err(e) => Err(Error::io(format!("create {}", dir.display()), e)),
    }
}

/// A new private directory: fails if it exists.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

/// Open (creating with mode 0600 if missing) a file for appending.
pub fn open_private_append(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// Write `bytes` to `path` atomically: a private temporary file beside it,
/// then `rename`, so a reader sees the old content or the new, never half.
/// `durable` adds an fsync, for records that must survive a power cut.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    use std::io::Write;
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("write {}", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_and_files_are_created_private_whatever_the_umask() {
        let base = tempfile::tempdir().unwrap();
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
        let root = base.path().join("root");
        ensure_dir(&root, ROOT_MODE).unwrap();
        nix::sys::stat::umask(old);
        assert_eq!(mode(&root), 0o711);
        let dir = root.join("d");
        ensure_dir(&dir, DIR_MODE).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        write_atomic(&file, b"x", false).unwrap();
        assert_eq!(mode(&file), 0o600);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&dir, DIR_MODE).unwrap();
        assert_eq!(mode(&dir), 0o700, "an older, looser directory is tightened");
    }
}
