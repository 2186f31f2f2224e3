//! The checker's work directory (`$TMPDIR/minibox-check-PID`) and the
//! fresh busybox root filesystem each run gets, with the probe at `/probe`.

use crate::error::{Error, Result};
use crate::probe::PROBE;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The name every directory and cgroup the checker makes starts with.
pub const PREFIX: &str = "minibox-check-";

/// The marker file at the root of each rootfs copy: its content proves that
/// a container's `/` is that copy.
pub const TOKEN_FILE: &str = ".minibox-check-token";
/// What the probe writes at `/` when it finds the token.
pub const WROTE_FILE: &str = ".minibox-check-wrote";

/// Where the probe's volumes are mounted inside the container.
pub const VOLUME_RW_TARGET: &str = "/vol/rw";
pub const VOLUME_RO_TARGET: &str = "/vol/ro";

/// A static busybox to fill the rootfs with, if the host has one.
pub fn find_busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| {
            fs::read(p).is_ok_and(|elf| elf.starts_with(b"\x7fELF") && !has_interpreter(&elf))
        })
}

/// Whether an ELF file names a dynamic loader (a PT_INTERP program
/// header): a static binary has none.
pub fn has_interpreter(elf: &[u8]) -> bool {
    let read = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at + len)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    };
    // ELF64 little-endian: e_phoff at 0x20, e_phentsize 0x36, e_phnum 0x38.
    let (Some(phoff), Some(size), Some(count)) = (read(0x20, 8), read(0x36, 2), read(0x38, 2))
    else {
        return true;
    };
    (0..count).any(|i| {
        usize::try_from(phoff + i * size)
            .ok()
            .and_then(|at| read(at, 4))
            == Some(3)
    })
}

/// The work directory of this checker process.
pub struct WorkDir {
    pub path: PathBuf,
    /// `minibox:100000:65536`: the subordinate ids stage 10's remapped
    /// root is given (MINIBOX_SUBUID and MINIBOX_SUBGID name this file).
    pub subids: PathBuf,
    keep: bool,
}

/// The range `subids` grants minibox's remapped root.
pub const SUBIDS: &str = "minibox:100000:65536\n";

impl WorkDir {
    /// Create `$TMPDIR/minibox-check-PID` (0711), after removing those of
    /// checker processes that are gone.
    pub fn create(keep: bool) -> Result<Self> {
        let tmp = std::env::temp_dir();
        remove_dead_work_dirs(&tmp);
        let path = tmp.join(format!("{PREFIX}{}", std::process::id()));
        if path.exists() {
            remove_tree(&path)?;
        }
        fs::create_dir(&path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        // 0711: a container whose root is not host root (stage 10) must
        // still reach its volumes below here, but nobody may list them.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o711))
            .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
        let subids = path.join("subids");
        fs::write(&subids, SUBIDS)
            .map_err(|e| Error::io(format!("write {}", subids.display()), e))?;
        Ok(WorkDir { path, subids, keep })
    }

    /// A fresh directory for one run: `rootfs/`, `vol-rw/`, `vol-ro/`,
    /// `bundle/`, `state/`.
    pub fn run_dir(&self, index: usize, scenario: &str) -> Result<RunDir> {
        let dir = self.path.join(format!("{index:02}-{scenario}"));
        let run = RunDir {
            rootfs: dir.join("rootfs"),
            volume_rw: dir.join("vol-rw"),
            volume_ro: dir.join("vol-ro"),
            bundle: dir.join("bundle"),
            state: dir.join("state"),
            token: format!("{PREFIX}{}-{index}", std::process::id()),
            dir,
        };
        for d in [
            &run.dir,
            &run.volume_rw,
            &run.volume_ro,
            &run.bundle,
            &run.state,
        ] {
            create_dir(d)?;
        }
        // Writable by container root whatever host uid it maps to (stage
        // 10's is 100000): 10.volume-owner then sees who wrote.
        fs::set_permissions(&run.volume_rw, fs::Permissions::from_mode(0o777))
            .map_err(|e| Error::io(format!("chmod {}", run.volume_rw.display()), e))?;
        build_rootfs(&run.rootfs, &run.token)?;
        write(
            &run.volume_rw.join("token"),
            format!("{}-rw\n", run.token).as_bytes(),
        )?;
        write(
            &run.volume_ro.join("token"),
            format!("{}-ro\n", run.token).as_bytes(),
        )?;
        Ok(run)
    }

    /// Unmount what a runtime left mounted below the work directory (the
    /// directory is ours, so are the mounts on it), then remove it — unless
    /// `--keep` — never crossing into a file system still mounted there.
    /// Returns what was unmounted.
    pub fn finish(&self) -> Result<Vec<String>> {
        let unmounted = unmount_below(&self.path);
        if !self.keep {
            remove_tree(&self.path)?;
        }
        Ok(unmounted)
    }
}

/// The directories of one run.
pub struct RunDir {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub volume_rw: PathBuf,
    pub volume_ro: PathBuf,
    pub bundle: PathBuf,
    pub state: PathBuf,
    pub token: String,
}

fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))
}

fn write(path: &Path, contents: &[u8]) -> Result<()> {
    fs::write(path, contents).map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// A busybox rootfs like `just rootfs` makes (one symlink per applet), the
/// probe at `/probe`, the token at `/.minibox-check-token`, and the volume
/// mount points. Without a static busybox the rootfs holds the probe alone,
/// which is all the checks need.
pub fn build_rootfs(root: &Path, token: &str) -> Result<()> {
    for dir in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root", "tmp",
        "var/tmp", "vol/rw", "vol/ro",
    ] {
        create_dir(&root.join(dir))?;
    }
    for (dir, mode) in [("tmp", 0o1777), ("var/tmp", 0o1777), ("root", 0o700)] {
        let path = root.join(dir);
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    }
    let probe = root.join("probe");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(&probe)
        .and_then(|mut f| std::io::Write::write_all(&mut f, PROBE))
        .map_err(|e| Error::io(format!("write {}", probe.display()), e))?;
    write(&root.join(TOKEN_FILE), format!("{token}\n").as_bytes())?;
    write(
        &root.join("etc/passwd"),
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    write(
        &root.join("etc/group"),
        b"root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )?;
    write(&root.join("etc/hostname"), b"minibox-check\n")?;
    if let Some(busybox) = find_busybox() {
        let target = root.join("bin/busybox");
        fs::copy(&busybox, &target).map_err(|e| {
            Error::io(
                format!("copy {} to {}", busybox.display(), target.display()),
                e,
            )
        })?;
        let list = Command::new(&target)
            .arg("--list-full")
            .output()
            .map_err(|e| Error::io(format!("run {} --list-full", target.display()), e))?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let applet = applet.trim().trim_start_matches('/');
            if applet.is_empty() || applet.contains("..") {
                continue;
            }
            let link = root.join(applet);
            if link.symlink_metadata().is_err() {
                symlink("/bin/busybox", &link)
                    .map_err(|e| Error::io(format!("symlink {}", link.display()), e))?;
            }
        }
    }
    Ok(())
}

/// Detach every mount below `dir`, deepest first.
fn unmount_below(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = crate::host::parse_mountinfo(&text)
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    points.dedup();
    let mut unmounted = Vec::new();
    for point in points {
        // mountinfo escapes space, tab, newline and backslash as octal.
        let path = unescape_mount_point(&point);
        let Ok(c_path) = std::ffi::CString::new(path.into_bytes()) else {
            continue;
        };
        // SAFETY: c_path is a NUL-terminated path; umount2 has no other
        // memory effects. It is below our own work directory.
        if unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } == 0 {
            unmounted.push(point);
        }
    }
    unmounted
}

/// Undo mountinfo's octal escapes (`\040` for a space, …).
fn unescape_mount_point(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = bytes[i + 1..i + 4]
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Remove a directory tree without crossing into other file systems: a
/// mount a runtime left under the work directory (a leaked bind of the
/// host's `/`, say) is left alone, and reported.
pub fn remove_tree(path: &Path) -> Result<()> {
    let Ok(top) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    let mut crossed = Vec::new();
    remove_same_dev(path, top.dev(), &mut crossed);
    if let Some(mount) = crossed.first() {
        return Err(Error::Environment(format!(
            "{} is a mount point left by the runtime under test: not removing what is below it (umount it, then remove {})",
            mount.display(),
            path.display()
        )));
    }
    match fs::remove_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("remove {}", path.display()), e)),
    }
}

fn remove_same_dev(dir: &Path, dev: u64, crossed: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.dev() != dev {
            crossed.push(path);
            continue;
        }
        if meta.is_dir() {
            remove_same_dev(&path, dev, crossed);
            if !crossed.iter().any(|c| c.starts_with(&path)) {
                let _ = fs::remove_dir(&path);
            }
        } else {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Work directories of checker processes that no longer exist.
fn remove_dead_work_dirs(tmp: &Path) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        if dead_owner(&entry.file_name()).is_some() {
            let _ = remove_tree(&entry.path());
        }
    }
}

/// `minibox-check-PID` whose process is gone: its PID.
pub fn dead_owner(name: &OsStr) -> Option<u32> {
    let pid: u32 = name.to_str()?.strip_prefix(PREFIX)?.parse().ok()?;
    (!Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_binaries_have_an_interpreter() {
        // This test binary links glibc dynamically (its loader is copied
        // into the test VMs along with it).
        let me = std::env::current_exe().and_then(fs::read).unwrap();
        assert!(has_interpreter(&me));
        assert!(has_interpreter(b"short"));
    }

    #[test]
    fn mount_points_unescape() {
        assert_eq!(unescape_mount_point("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_mount_point("/plain\\"), "/plain\\");
    }

    #[test]
    fn only_dead_owners_match() {
        let me = format!("{PREFIX}{}", std::process::id());
        assert_eq!(dead_owner(OsStr::new(&me)), None);
        assert_eq!(dead_owner(OsStr::new("minibox-check-x")), None);
        assert_eq!(dead_owner(OsStr::new("other-1")), None);
    }
}
