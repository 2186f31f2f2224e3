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
    let (mut archive, skipped) = pack_container(container)?;
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

/// The container's filesystem as it is now (its image with its changes
/// on top) as a tar archive in an unnamed temporary file, and the paths
/// left out. A running container is frozen meanwhile (unless it is paused
/// already: it stays so); the view is read-only and private to us.
pub fn pack_container(container: &ContainerState) -> Result<(File, Vec<String>)> {
    let upper = layer::container_dir(&container.id).join("upper");
    if !upper.is_dir() {
        return Err(Error::Usage(format!(
            "container {} has no layer",
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
    let view = LayerView::mount(container, false)?;
    let packed = pack(view.path());
    drop(view);
    packed
}

/// A read-only (`lowerdir=upper:image`) or writable view of a container's
/// layer, mounted in a private mount namespace of this process (so the
/// host never sees it), under the container's directory. Dropping it
/// unmounts it and removes the empty mount point: never a recursive
/// removal, which would go through a mount still there.
pub struct LayerView {
    dir: PathBuf,
}

impl LayerView {
    /// Mount it: `writable` stacks image, upper and work as a run does
    /// (only for a container no run holds); else upper on the image,
    /// read-only.
    pub fn mount(container: &ContainerState, writable: bool) -> Result<LayerView> {
        let dir = layer::container_dir(&container.id);
        let upper = dir.join("upper");
        if !upper.is_dir() {
            return Err(Error::Usage(format!(
                "container {} has no layer",
                container.name
            )));
        }
        trace::step(
            "unshare(CLONE_NEWNS)",
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS),
        )?;
        mounts::make_mount_tree_private()?;
        let view = tempfile::Builder::new()
            .prefix(".view-")
            .tempdir_in(&dir)
            .map_err(|e| Error::io(format!("create a directory in {}", dir.display()), e))?
            .keep();
        let (options, flags) = if writable {
            (
                layer::overlay_options(&[&container.lower], &upper, &dir.join("work")),
                nix::mount::MsFlags::empty(),
            )
        } else {
            (
                format!(
                    "lowerdir={}:{}",
                    layer::escape_option(&upper),
                    layer::escape_option(&container.lower)
                ),
                nix::mount::MsFlags::MS_RDONLY,
            )
        };
        let mounted = trace::step(
            format!(
                "mount(\"overlay\", {:?}, \"overlay\", {}, {options:?})",
                view.display().to_string(),
                if writable { "0" } else { "MS_RDONLY" }
            ),
            nix::mount::mount(
                Some("overlay"),
                &view,
                Some("overlay"),
                flags,
                Some(options.as_str()),
            ),
        );
        if let Err(err) = mounted {
            let _ = std::fs::remove_dir(&view);
            return Err(err);
        }
        Ok(LayerView { dir: view })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LayerView {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Writes a tar archive of trees it walks without following a symlink.
pub struct Packer<W: Write> {
    builder: tar::Builder<W>,
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
    let mut packer = Packer::new(file);
    let top = File::open(root)
        .map(OwnedFd::from)
        .map_err(|e| Error::io(format!("open {}", root.display()), e))?;
    let stat = fstat(top.as_raw_fd()).map_err(|errno| Error::Sys {
        step: format!("fstat({})", root.display()),
        errno,
    })?;
    packer.append_dir(Path::new("."), &stat)?;
    packer.walk(&top, Path::new(""))?;
    let (mut file, skipped) = packer.finish()?;
    file.flush()
        .map_err(|e| Error::io("write the archive", e))?;
    Ok((file, skipped))
}

/// Open `name` relative to `dir` without following any symlink and
/// without leaving `dir`.
pub fn open_beneath(dir: &OwnedFd, name: &Path, extra: OFlag) -> Result<OwnedFd> {
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

impl<W: Write> Packer<W> {
    pub fn new(out: W) -> Packer<W> {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        Packer {
            builder,
            skipped: Vec::new(),
        }
    }

    /// The archive's writer and the paths left out (sockets, devices).
    pub fn finish(self) -> Result<(W, Vec<String>)> {
        let Packer { builder, skipped } = self;
        let out = builder
            .into_inner()
            .map_err(|e| Error::io("finish the archive", e))?;
        Ok((out, skipped))
    }

    /// Every entry under the directory `dir` (opened for reading), named
    /// `at/…`; each opened beneath its parent, no symlink followed.
    pub fn walk(&mut self, dir: &OwnedFd, at: &Path) -> Result<()> {
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
                    self.append_file(&path, File::from(fd), &stat)?;
                }
                SFlag::S_IFLNK => {
                    let target =
                        nix::fcntl::readlinkat(Some(dir.as_raw_fd()), &name).map_err(|errno| {
                            Error::Sys {
                                step: format!("readlinkat({})", trace::quote(&path)),
                                errno,
                            }
                        })?;
                    self.append_symlink(&path, Path::new(&target), &stat)?;
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

    pub fn append_dir(&mut self, path: &Path, stat: &FileStat) -> Result<()> {
        let mut header = header_for(stat, tar::EntryType::Directory);
        header.set_size(0);
        self.builder
            .append_data(&mut header, path, std::io::empty())
            .map_err(|e| Error::io(format!("pack {}", path.display()), e))
    }

    /// A regular file, `stat` describing the open `file`. Exactly its size
    /// then is packed: a file that grows or shrinks meanwhile (a running
    /// container's) is cut or padded with zeros, never a broken archive.
    pub fn append_file(&mut self, path: &Path, file: File, stat: &FileStat) -> Result<()> {
        let size = stat.st_size.max(0) as u64;
        let mut header = header_for(stat, tar::EntryType::Regular);
        header.set_size(size);
        let data = std::io::Read::chain(
            std::io::Read::take(file, size),
            std::io::Read::take(std::io::repeat(0), size),
        );
        self.builder
            .append_data(&mut header, path, std::io::Read::take(data, size))
            .map_err(|e| Error::io(format!("pack {}", path.display()), e))
    }

    pub fn append_symlink(&mut self, path: &Path, target: &Path, stat: &FileStat) -> Result<()> {
        let mut header = header_for(stat, tar::EntryType::Symlink);
        header.set_size(0);
        self.builder
            .append_link(&mut header, path, target)
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
