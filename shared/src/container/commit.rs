//! `commit`: the container's filesystem as it is now — the image with the
//! container's changes on top — becomes a new image.
//!
//! A running container can change its files while we read them, and a
//! path checked a moment ago can be a symlink to the host now (docker's
//! CVE-2018-15664 was such a race in `docker cp`). So:
//! * a running container is **frozen** for the whole commit (the freezer
//!   on v1, `cgroup.freeze` on v2, as docker pauses by default);
//! * the two layers are stacked read-only (`lowerdir=upper:image`,
//!   leftmost on top; whiteouts in upper hide what the container deleted)
//!   in a mount namespace of our own, so the view never shows on the host;
//! * the view is walked one component at a time, each opened relative to
//!   its parent's fd with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`:
//!   a symlink is read as a link and never followed;
//! * sockets (which a tar cannot hold) are skipped with a note;
//! * the archive goes to an unnamed temporary file (`O_TMPFILE`), never
//!   through a path someone could plant a link at.

use super::state::{Condition, ContainerState};
use crate::cgroups::{Cgroup, Hierarchy};
use crate::error::{Error, Result};
use crate::{image, layer, mounts, paths, trace};
use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, SFlag};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What a commit made.
pub struct Committed {
    pub entries: usize,
    /// Paths that a tar cannot carry (sockets, device nodes), left out.
    pub skipped: Vec<String>,
}

pub fn commit(container: &ContainerState, name: &str) -> Result<Committed> {
    image::validate_name(name)?;
    let dir = layer::container_dir(&container.id);
    let upper = dir.join("upper");
    if !upper.is_dir() {
        return Err(Error::Usage(format!(
            "container {} has no layer to commit",
            container.name
        )));
    }
    let cgroup;
    let _frozen = match container.condition() {
        Condition::Starting => return Err(Error::StillStarting(container.name.clone())),
        // Paused by `pause`: frozen already, and it must stay so after.
        Condition::Running if container.paused => None,
        Condition::Running => {
            cgroup = Cgroup::existing(
                Hierarchy::detect()?,
                &container.cgroup_parent,
                &container.id,
            );
            Some(cgroup.freeze()?)
        }
        Condition::Exited | Condition::Dead => None,
    };
    trace::step(
        "unshare(CLONE_NEWNS)",
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS),
    )?;
    mounts::make_mount_tree_private()?;
    let view = tempfile::Builder::new()
        .prefix(".commit-view-")
        .tempdir_in(&dir)
        .map_err(|e| Error::io(format!("create a directory in {}", dir.display()), e))?;
    let options = format!(
        "lowerdir={}:{}",
        layer::escape_option(&upper),
        layer::escape_option(&container.lower)
    );
    trace::step(
        format!(
            "mount(\"overlay\", {:?}, \"overlay\", MS_RDONLY, {options:?})",
            view.path().display().to_string()
        ),
        nix::mount::mount(
            Some("overlay"),
            view.path(),
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(options.as_str()),
        ),
    )?;
    let packed = pack(view.path());
    let _ = nix::mount::umount2(view.path(), nix::mount::MntFlags::MNT_DETACH);
    drop(_frozen);
    let (mut archive, skipped) = packed?;
    archive
        .rewind()
        .map_err(|e| Error::io("rewind the archive", e))?;
    let imported = image::import_from(name, archive, &format!("container {}", container.name))?;
    trace::note(
        format!("commit {} as image {name:?}", container.name),
        Some(format!("{} entries", imported.entries)),
    );
    Ok(Committed {
        entries: imported.entries,
        skipped,
    })
}

struct Packer {
    builder: tar::Builder<File>,
    skipped: Vec<String>,
}

/// Pack the tree at `root` into an unnamed temporary file; also the paths
/// left out.
fn pack(root: &Path) -> Result<(File, Vec<String>)> {
    let images = paths::state_dir("images")?;
    let file = tempfile::tempfile_in(&images).map_err(|e| {
        Error::io(
            format!("create a temporary file in {}", images.display()),
            e,
        )
    })?;
    let mut packer = Packer {
        builder: tar::Builder::new(file),
        skipped: Vec::new(),
    };
    let top = File::open(root)
        .map(OwnedFd::from)
        .map_err(|e| Error::io(format!("open {}", root.display()), e))?;
    let stat = fstat(top.as_raw_fd()).map_err(|errno| Error::Sys {
        step: format!("fstat({})", root.display()),
        errno,
    })?;
    packer.append_dir(Path::new("."), &stat)?;
    packer.walk(&top, Path::new(""))?;
    let skipped = std::mem::take(&mut packer.skipped);
    let mut file = packer
        .builder
        .into_inner()
        .map_err(|e| Error::io("finish the archive", e))?;
    file.flush()
        .map_err(|e| Error::io("write the archive", e))?;
    Ok((file, skipped))
}

/// Open `name` relative to `dir` without following any symlink and
/// without leaving `dir`.
fn open_beneath(dir: &OwnedFd, name: &Path, extra: OFlag) -> Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | extra)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let fd = openat2(dir.as_raw_fd(), name, how).map_err(|errno| Error::Sys {
        step: format!(
            "openat2({}, RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)",
            trace::quote(name)
        ),
        errno,
    })?;
    // SAFETY: openat2 just returned this fd to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Packer {
    fn walk(&mut self, dir: &OwnedFd, at: &Path) -> Result<()> {
        let mut names: Vec<PathBuf> = Vec::new();
        {
            let listing = nix::dir::Dir::openat(
                Some(dir.as_raw_fd()),
                ".",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|errno| Error::Sys {
                step: format!("opendir({})", trace::quote(at)),
                errno,
            })?;
            let mut listing = listing;
            for entry in listing.iter() {
                let entry = entry.map_err(|errno| Error::Sys {
                    step: format!("readdir({})", trace::quote(at)),
                    errno,
                })?;
                let name = OsStr::from_bytes(entry.file_name().to_bytes());
                if name != "." && name != ".." {
                    names.push(PathBuf::from(name));
                }
            }
        }
        names.sort();
        for name in names {
            let path = at.join(&name);
            let stat = nix::sys::stat::fstatat(
                Some(dir.as_raw_fd()),
                &name,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|errno| Error::Sys {
                step: format!("fstatat({})", trace::quote(&path)),
                errno,
            })?;
            match SFlag::from_bits_truncate(stat.st_mode & libc::S_IFMT) {
                SFlag::S_IFDIR => {
                    let child = open_beneath(dir, &name, OFlag::O_DIRECTORY)?;
                    let stat = fstat(child.as_raw_fd()).map_err(|errno| Error::Sys {
                        step: format!("fstat({})", trace::quote(&path)),
                        errno,
                    })?;
                    self.append_dir(&path, &stat)?;
                    self.walk(&child, &path)?;
                }
                SFlag::S_IFREG => {
                    let fd = open_beneath(dir, &name, OFlag::empty())?;
                    // Describe the file we opened, not the one we looked at.
                    let stat = fstat(fd.as_raw_fd()).map_err(|errno| Error::Sys {
                        step: format!("fstat({})", trace::quote(&path)),
                        errno,
                    })?;
                    if SFlag::from_bits_truncate(stat.st_mode & libc::S_IFMT) != SFlag::S_IFREG {
                        return Err(Error::Sys {
                            step: format!("open({})", trace::quote(&path)),
                            errno: Errno::EAGAIN,
                        });
                    }
                    let mut header = header_for(&stat, tar::EntryType::Regular);
                    header.set_size(stat.st_size as u64);
                    self.builder
                        .append_data(&mut header, &path, File::from(fd))
                        .map_err(|e| Error::io(format!("pack {}", path.display()), e))?;
                }
                SFlag::S_IFLNK => {
                    let target =
                        nix::fcntl::readlinkat(Some(dir.as_raw_fd()), &name).map_err(|errno| {
                            Error::Sys {
                                step: format!("readlinkat({})", trace::quote(&path)),
                                errno,
                            }
                        })?;
                    let mut header = header_for(&stat, tar::EntryType::Symlink);
                    header.set_size(0);
                    self.builder
                        .append_link(&mut header, &path, Path::new(&target))
                        .map_err(|e| Error::io(format!("pack {}", path.display()), e))?;
                }
                _ => {
                    trace::note(
                        format!("skip {}", trace::quote(&path)),
                        Some("a socket or device node: a tar cannot carry it".into()),
                    );
                    self.skipped.push(path.display().to_string());
                }
            }
        }
        Ok(())
    }

    fn append_dir(&mut self, path: &Path, stat: &FileStat) -> Result<()> {
        let mut header = header_for(stat, tar::EntryType::Directory);
        header.set_size(0);
        self.builder
            .append_data(&mut header, path, std::io::empty())
            .map_err(|e| Error::io(format!("pack {}", path.display()), e))
    }
}

fn header_for(stat: &FileStat, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(stat.st_mode & 0o7777);
    header.set_uid(stat.st_uid.into());
    header.set_gid(stat.st_gid.into());
    header.set_mtime(stat.st_mtime.max(0) as u64);
    header
}
