//! Volumes: host directories bind-mounted into the container (`-v`).
//!
//! The container path is resolved *inside* the new root. The naive
//! `format!("{merged}{container_path}")` follows symlinks the image controls:
//! an image with `/data -> /etc` (absolute, so on the host it means the
//! host's /etc) would have the volume mounted over the host's /etc. Here
//! every component is opened with `openat2(RESOLVE_IN_ROOT)`, which treats
//! `merged` as `/` while resolving — symlinks included — and the mount is
//! made on the resulting fd through `/proc/self/fd/N`, never on a path
//! string that could be swapped underneath us.

use crate::error::{Error, Result};
use crate::trace;
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// One `-v HOST:CONTAINER[:ro]`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub host: PathBuf,
    pub container: PathBuf,
    pub read_only: bool,
}

impl fmt::Display for Volume {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host.display(), self.container.display())?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

/// Parse `-v`: both paths absolute, the container path not `/` and without `..`.
pub fn parse(spec: &str) -> std::result::Result<Volume, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [host, container] => (*host, *container, "rw"),
        [host, container, mode] => (*host, *container, *mode),
        _ => return Err("expected HOST:CONTAINER or HOST:CONTAINER:ro".into()),
    };
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => return Err(format!("unknown mode {other:?}: use ro or rw")),
    };
    if host.is_empty() || container.is_empty() {
        return Err("both HOST and CONTAINER paths are needed".into());
    }
    let (host, container) = (PathBuf::from(host), PathBuf::from(container));
    if !host.is_absolute() || !container.is_absolute() {
        return Err("HOST and CONTAINER must be absolute paths".into());
    }
    if container.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{} must not contain ..", container.display()));
    }
    if container.components().count() < 2 {
        return Err("the container path cannot be / (that is the image)".into());
    }
    Ok(Volume {
        host,
        container,
        read_only,
    })
}

impl Volume {
    /// run: create the host directory if missing (as docker does).
    pub fn prepare_host(&self) -> Result<()> {
        if self.host.is_dir() {
            return Ok(());
        }
        if self.host.exists() {
            return Err(Error::Usage(format!(
                "volume {}: {} is not a directory",
                self,
                self.host.display()
            )));
        }
        let result = std::fs::create_dir_all(&self.host)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        trace::step(
            format!("mkdir -p {:?}", self.host.display().to_string()),
            result,
        )
    }

    /// init, before pivot_root: bind the host directory onto the container
    /// path inside `new_root`, then make it read-only if asked.
    pub fn mount(&self, new_root: &Path) -> Result<()> {
        let root = open_dir(None, new_root)?;
        let target = open_in_root(&root, &self.container, true)?;
        let shown = format!("{}{}", new_root.display(), self.container.display());
        trace::step(
            format!(
                "mount({:?}, {shown:?} via /proc/self/fd/{}, NULL, MS_BIND|MS_REC, NULL)",
                self.host.display().to_string(),
                target.as_raw_fd()
            ),
            mount(
                Some(&self.host),
                &fd_path(&target),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
        )?;
        if self.read_only {
            // A bind mount ignores MS_RDONLY on creation, and the classic
            // second call (MS_BIND|MS_REMOUNT|MS_RDONLY) changes only the
            // top mount: a mount *under* the host directory would stay
            // writable, and any nosuid/nodev the remount did not repeat
            // would be dropped. mount_setattr(AT_RECURSIVE) sets read-only
            // on the whole tree and leaves every other flag as it was. The
            // old fd points *under* the new mount, so open the path again.
            let mounted = open_in_root(&root, &self.container, false)?;
            crate::mounts::set_read_only_recursive(&mounted, &shown)?;
        }
        Ok(())
    }
}

/// Bind the host file `host` over `container` (a path inside `new_root`,
/// resolved inside it: a symlink in the image cannot send it elsewhere),
/// creating an empty file there first if the image has none. Stage 08 binds
/// the `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` it wrote so.
pub fn bind_file(new_root: &Path, host: &Path, container: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (container.parent(), container.file_name()) else {
        return Err(Error::Usage(format!(
            "{} is not a file path",
            container.display()
        )));
    };
    let root = open_dir(None, new_root)?;
    let dir = open_in_root(&root, parent, true)?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(ResolveFlag::RESOLVE_BENEATH);
    let target = match openat2(dir.as_raw_fd(), name, how) {
        Err(Errno::ENOENT) => {
            let made = nix::fcntl::openat(
                Some(dir.as_raw_fd()),
                name,
                OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            );
            let fd = trace::step(
                format!(
                    "openat(<{}>, {:?}, O_CREAT, 0644)",
                    parent.display(),
                    name.to_string_lossy()
                ),
                made,
            )?;
            let _ = nix::unistd::close(fd);
            openat2(dir.as_raw_fd(), name, how)
        }
        other => other,
    }
    .map_err(|errno| Error::Sys {
        step: format!("open {} in the new root", container.display()),
        errno,
    })?;
    // SAFETY: openat2 just returned this fd to us alone.
    let target = unsafe { OwnedFd::from_raw_fd(target) };
    let shown = format!("{}{}", new_root.display(), container.display());
    trace::step(
        format!(
            "mount({:?}, {shown:?} via /proc/self/fd/{}, NULL, MS_BIND, NULL)",
            host.display().to_string(),
            target.as_raw_fd()
        ),
        mount(
            Some(host),
            &fd_path(&target),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
    )
}

pub(crate) fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub(crate) fn open_dir(dirfd: Option<&OwnedFd>, path: &Path) -> Result<OwnedFd> {
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC);
    let at = dirfd.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd());
    let fd = openat2(at, path, how).map_err(|errno| Error::Sys {
        step: format!("open({:?})", path.display().to_string()),
        errno,
    })?;
    // SAFETY: openat2 just returned this fd to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Open `path` as a directory with `root` as `/`, creating missing
/// components (`create`) one by one, each created in a directory that was
/// itself resolved inside the root.
pub(crate) fn open_in_root(root: &OwnedFd, path: &Path, create: bool) -> Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let mut prefix = PathBuf::from("/");
    let mut current = open_dir(Some(root), Path::new("."))?;
    for component in path.components().skip(1) {
        prefix.push(component);
        let fd = match openat2(root.as_raw_fd(), &prefix, how) {
            Err(Errno::ENOENT) if create => {
                let name = component.as_os_str();
                trace::step(
                    format!(
                        "mkdirat(<{}>, {:?}, 0755)",
                        parent_shown(&prefix),
                        name.to_string_lossy()
                    ),
                    nix::sys::stat::mkdirat(
                        Some(current.as_raw_fd()),
                        name,
                        Mode::from_bits_truncate(0o755),
                    ),
                )?;
                openat2(root.as_raw_fd(), &prefix, how)
            }
            other => other,
        }
        .map_err(|errno| {
            trace::failed(
                format!(
                    "openat2(<root>, {:?}, RESOLVE_IN_ROOT)",
                    prefix.display().to_string()
                ),
                errno,
            );
            Error::Sys {
                step: format!("volume target {}", prefix.display()),
                errno,
            }
        })?;
        // SAFETY: openat2 just returned this fd to us alone.
        current = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(current)
}

fn parent_shown(prefix: &Path) -> String {
    prefix
        .parent()
        .map_or("/".into(), |p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_malformed_ones_say_why() {
        assert_eq!(
            parse("/tmp/data:/data:ro").unwrap(),
            Volume {
                host: "/tmp/data".into(),
                container: "/data".into(),
                read_only: true
            }
        );
        assert!(!parse("/tmp/data:/data").unwrap().read_only);
        for (bad, why) in [
            ("foo", "HOST:CONTAINER"),
            (":/x", "both"),
            ("/a:", "both"),
            ("rel:/x", "absolute"),
            ("/a:rel", "absolute"),
            ("/a:/", "cannot be /"),
            ("/a:/x/../y", "must not contain .."),
            ("/a:/x:rx", "unknown mode"),
            ("/a:/b:ro:extra", "HOST:CONTAINER"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
