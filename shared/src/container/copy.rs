//! `cp` and `export`: files out of a container and into it.
//!
//! A container's paths are the container's to define: `/data` may be a
//! symlink to `/etc`, which on the host means the *host's* `/etc`
//! (docker's CVE-2018-15664 and CVE-2019-14271 were `cp` following such
//! links). So nothing here resolves a container path as a host path:
//! * the container's root is an fd: `/proc/PID/root` of a running
//!   container (its volumes and tmpfs mounts included, as docker's `cp`
//!   sees them), or, for a stopped one, an overlay view of its layer with
//!   its volumes bound on it, in a private mount namespace of this process;
//! * every path inside is opened relative to that fd with
//!   `openat2(RESOLVE_IN_ROOT)`: the kernel treats the fd as `/` for `..`
//!   and for every symlink, absolute ones included, even if the container
//!   swaps a directory for a link while we resolve;
//! * below the path given, a tree is walked one entry at a time, each
//!   opened beneath its parent without following any symlink (as
//!   `commit` does), and written as it is, links as links.
//!
//! Both directions go through a tar archive, which is also what `cp -`
//! reads and writes: pack the source, unpack into the destination. The
//! unpacker creates each entry in a parent directory it resolved inside
//! the destination's root, so an archive (a crafted one on stdin too)
//! cannot put anything outside it.

use super::commit::{LayerView, Packer};
use super::state::{self, Condition, ContainerState};
use crate::error::{Error, Result};
use crate::lock::ContainerLock;
use crate::trace;
use nix::errno::Errno;
use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, FileStat, Mode, SFlag};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// One side of `cp`, as docker reads it: `CONTAINER:PATH`, `-` (a tar on
/// stdin or stdout), or a host path (`./a:b` for a host path with a colon).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Host(String),
    Container { name: String, path: String },
    Stream,
}

impl Location {
    pub fn parse(text: &str) -> Location {
        if text == "-" {
            return Location::Stream;
        }
        if text.starts_with('/') || text.starts_with('.') {
            return Location::Host(text.to_string());
        }
        match text.split_once(':') {
            Some((name, path)) if !name.is_empty() => Location::Container {
                name: name.to_string(),
                path: path.to_string(),
            },
            _ => Location::Host(text.to_string()),
        }
    }
}

/// `cp`'s switches.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpOptions {
    /// `-L`: copy what a symlink SRC points to, not the link.
    pub follow: bool,
    /// `-a`: keep the owners (uid, gid) the source has.
    pub archive: bool,
}

/// One side in a container and the other not, or a bad command line.
pub fn check_locations(src: &str, dest: &str) -> Result<()> {
    match (Location::parse(src), Location::parse(dest)) {
        (Location::Container { .. }, Location::Container { .. }) => Err(Error::Usage(
            "copying between containers is not supported".into(),
        )),
        (Location::Container { .. }, _) | (_, Location::Container { .. }) => Ok(()),
        _ => Err(Error::Usage(
            "must specify at least one container source (CONTAINER:PATH)".into(),
        )),
    }
}

/// `cp SRC DEST`, one of them in a container. The paths left out (sockets,
/// device nodes and FIFOs, which a copy cannot carry).
pub fn cp(src: &str, dest: &str, options: CpOptions) -> Result<Vec<String>> {
    match (Location::parse(src), Location::parse(dest)) {
        (Location::Container { .. }, Location::Container { .. }) => Err(Error::Usage(
            "copying between containers is not supported".into(),
        )),
        (Location::Container { name, path }, Location::Stream) => {
            let root = ContainerRoot::open(&name, false)?;
            let source = Source::at(&root.fd, &in_container(&path), &path, options.follow)?;
            let mut packer = Packer::new(std::io::stdout().lock());
            source.pack(&mut packer, &source.base_name())?;
            let (mut out, skipped) = packer.finish()?;
            out.flush().map_err(|e| Error::io("write stdout", e))?;
            Ok(skipped)
        }
        (Location::Container { name, path }, Location::Host(dest)) => {
            let root = ContainerRoot::open(&name, false)?;
            let source = Source::at(&root.fd, &in_container(&path), &path, options.follow)?;
            copy_to_host(&source, &dest, options)
        }
        (Location::Stream, Location::Container { name, path }) => {
            let root = ContainerRoot::open(&name, true)?;
            let dest_path = in_container(&path);
            if existing_kind(&root.fd, &dest_path)? != Some(Kind::Dir) {
                return Err(Error::Usage(format!(
                    "destination {name}:{path} must be a directory"
                )));
            }
            let mut unpacker = Unpacker::new(&root.fd, dest_path, options.archive, false);
            unpacker.unpack(std::io::stdin().lock(), "stdin")?;
            Ok(unpacker.skipped)
        }
        (Location::Host(src), Location::Container { name, path }) => {
            let root = ContainerRoot::open(&name, true)?;
            let dest_path = in_container(&path);
            let existing = existing_kind(&root.fd, &dest_path)?;
            let host = host_root()?;
            let absolute =
                std::path::absolute(&src).map_err(|e| Error::io(format!("resolve {src}"), e))?;
            let source = Source::at(&host, &absolute, &src, options.follow)?;
            let target = Target::of(&source, &path, &dest_path, existing)?;
            let mut packer = Packer::new(scratch_file()?);
            source.pack(&mut packer, &target.name)?;
            let (mut archive, mut skipped) = packer.finish()?;
            archive
                .rewind()
                .map_err(|e| Error::io("rewind the archive", e))?;
            let mut unpacker = Unpacker::new(&root.fd, target.dir, options.archive, false);
            unpacker.unpack(archive, &src)?;
            skipped.append(&mut unpacker.skipped);
            Ok(skipped)
        }
        _ => Err(Error::Usage(
            "must specify at least one container source (CONTAINER:PATH)".into(),
        )),
    }
}

/// What is at `path` inside `root` (its last link followed), if anything.
fn existing_kind(root: &OwnedFd, path: &Path) -> Result<Option<Kind>> {
    Ok(lookup(root, path, true)?.map(|(_, stat)| kind_of(&stat)))
}

/// `export [-o FILE] CONTAINER`: the container's filesystem (its image
/// with its changes; volumes and tmpfs mounts are not part of it, as in
/// docker) as a tar archive. A running container is frozen while it is
/// packed, as `commit` does; the archive is written out after it thaws.
pub fn export(name: &str, output: Option<&Path>) -> Result<Vec<String>> {
    let container = state::find(name)?;
    use std::io::IsTerminal;
    if output.is_none() && std::io::stdout().is_terminal() {
        return Err(Error::Usage(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    // Packed first: a failure leaves no half-written FILE behind.
    let (mut archive, skipped) = super::commit::pack_container(&container)?;
    archive
        .rewind()
        .map_err(|e| Error::io("rewind the archive", e))?;
    let mut out: Box<dyn Write> = match output {
        Some(path) => Box::new(
            File::create(path).map_err(|e| Error::io(format!("create {}", path.display()), e))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    std::io::copy(&mut archive, &mut out).map_err(|e| Error::io("write the archive", e))?;
    out.flush().map_err(|e| Error::io("write the archive", e))?;
    Ok(skipped)
}

/// An anonymous temporary file under the state root, for an archive.
fn scratch_file() -> Result<File> {
    let dir = crate::paths::state_dir("images")?;
    tempfile::tempfile_in(&dir)
        .map_err(|e| Error::io(format!("create a temporary file in {}", dir.display()), e))
}

/// A container path as given to `cp`: relative to the container's `/`
/// whether it starts with `/` or not (docker's rule).
fn in_container(path: &str) -> PathBuf {
    Path::new("/").join(path.trim_start_matches('/'))
}

/// The host's `/`, as the root host paths are resolved in.
fn host_root() -> Result<OwnedFd> {
    open_path(libc::AT_FDCWD, Path::new("/"), OFlag::O_DIRECTORY)
}

fn open_path(at: i32, path: &Path, extra: OFlag) -> Result<OwnedFd> {
    let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC | extra);
    let fd = openat2(at, path, how).map_err(|errno| Error::Sys {
        step: format!("open({})", trace::quote(path)),
        errno,
    })?;
    // SAFETY: openat2 just returned this fd to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A container's `/` as an fd, and what keeps it valid.
struct ContainerRoot {
    fd: OwnedFd,
    /// A stopped container's layer, mounted for us (dropped after `fd`).
    _view: Option<LayerView>,
    /// A stopped container cannot be started while we use its layer.
    _lock: Option<ContainerLock>,
}

impl ContainerRoot {
    /// A running container's root as its PID 1 sees it; a stopped one's
    /// layer (`writable` for copying in).
    fn open(name: &str, writable: bool) -> Result<ContainerRoot> {
        let container = state::find(name)?;
        match container.condition() {
            Condition::Starting => Err(Error::StillStarting(container.name)),
            Condition::Running => Ok(ContainerRoot {
                fd: running_root(&container)?,
                _view: None,
                _lock: None,
            }),
            Condition::Exited | Condition::Dead => {
                let Some(lock) = ContainerLock::try_acquire(&container.id)? else {
                    return Err(Error::StillStarting(container.name));
                };
                let view = LayerView::mount(&container, writable)?;
                // docker's `cp` sees a stopped container's volumes too: a
                // path under `-v HOST:/data` is the volume's, not the
                // layer's. Bound in this process's private mount namespace
                // (the view's), so they are gone when `cp` is.
                for mount in container.mounts.iter().filter(|m| m.kind == "bind") {
                    crate::volumes::Volume {
                        host: PathBuf::from(&mount.source),
                        container: PathBuf::from(&mount.destination),
                        read_only: !mount.read_write,
                    }
                    .mount(view.path())?;
                }
                Ok(ContainerRoot {
                    fd: open_path(libc::AT_FDCWD, view.path(), OFlag::O_DIRECTORY)?,
                    _view: Some(view),
                    _lock: Some(lock),
                })
            }
        }
    }
}

/// `/proc/PID/root` of the container's PID 1, opened, and then checked to
/// still be our PID 1 (a reused pid would be a stranger's root).
fn running_root(container: &ContainerState) -> Result<OwnedFd> {
    let init = container
        .init
        .as_ref()
        .ok_or_else(|| Error::NotRunning(container.name.clone()))?;
    let root = format!("/proc/{}/root", init.pid);
    let fd = open_path(libc::AT_FDCWD, Path::new(&root), OFlag::O_DIRECTORY)?;
    if !init.is_alive() {
        return Err(Error::NotRunning(container.name.clone()));
    }
    Ok(fd)
}

/// Open `path` with `root` as `/`: symlinks (followed, the last one only
/// with `follow`) and `..` cannot leave it. `None` if it does not exist.
fn lookup(root: &OwnedFd, path: &Path, follow: bool) -> Result<Option<(OwnedFd, FileStat)>> {
    let mut flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(root.as_raw_fd(), path, how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(errno) => {
            return Err(Error::Sys {
                step: format!("openat2(<root>, {}, RESOLVE_IN_ROOT)", trace::quote(path)),
                errno,
            })
        }
    };
    // SAFETY: openat2 just returned this fd to us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let stat = fstat(fd.as_raw_fd()).map_err(|errno| Error::Sys {
        step: format!("fstat({})", trace::quote(path)),
        errno,
    })?;
    Ok(Some((fd, stat)))
}

/// The directory `path` inside `root`, for creating entries in.
fn dir_in_root(root: &OwnedFd, path: &Path) -> Result<OwnedFd> {
    match lookup(root, path, true)? {
        Some((fd, stat)) if kind_of(&stat) == Kind::Dir => Ok(fd),
        Some(_) => Err(Error::Usage(format!(
            "{} is not a directory",
            path.display()
        ))),
        None => Err(Error::Usage(format!(
            "{}: no such directory",
            path.display()
        ))),
    }
}

/// An `O_PATH` fd opened again for reading (through its `/proc/self/fd`
/// magic link, which leads to the object itself, whatever its path is by
/// now: nothing is resolved again).
fn reopen(fd: &OwnedFd, extra: OFlag) -> Result<OwnedFd> {
    let link = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let fd = nix::fcntl::open(
        &link,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | extra,
        Mode::empty(),
    )
    .map_err(|errno| Error::Sys {
        step: format!("open({})", trace::quote(&link)),
        errno,
    })?;
    // SAFETY: open just returned this fd to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Link,
    Other,
}

fn kind_of(stat: &FileStat) -> Kind {
    match SFlag::from_bits_truncate(stat.st_mode & libc::S_IFMT) {
        SFlag::S_IFDIR => Kind::Dir,
        SFlag::S_IFREG => Kind::File,
        SFlag::S_IFLNK => Kind::Link,
        _ => Kind::Other,
    }
}

/// What `cp` copies: the object SRC names, opened (not its path).
struct Source {
    fd: OwnedFd,
    stat: FileStat,
    /// SRC as typed, for messages and docker's rules (`dir/.`).
    typed: String,
}

impl Source {
    fn at(root: &OwnedFd, path: &Path, typed: &str, follow: bool) -> Result<Source> {
        let (fd, stat) = lookup(root, path, follow)?
            .ok_or_else(|| Error::Usage(format!("{typed}: no such file or directory")))?;
        Ok(Source {
            fd,
            stat,
            typed: typed.to_string(),
        })
    }

    fn kind(&self) -> Kind {
        kind_of(&self.stat)
    }

    /// `dir/.`: the directory's contents, not the directory.
    fn contents_only(&self) -> bool {
        self.kind() == Kind::Dir && (self.typed == "." || self.typed.ends_with("/."))
    }

    /// Its name, for the archive `cp … -` writes (`.` for `/`).
    fn base_name(&self) -> PathBuf {
        match Path::new(&self.typed).file_name() {
            Some(name) if !self.contents_only() => PathBuf::from(name),
            _ => PathBuf::from("."),
        }
    }

    /// Pack it, its top entry named `name`.
    fn pack<W: Write>(&self, packer: &mut Packer<W>, name: &Path) -> Result<()> {
        match self.kind() {
            Kind::Dir => {
                let dir = reopen(&self.fd, OFlag::O_DIRECTORY)?;
                packer.append_dir(name, &self.stat)?;
                packer.walk(&dir, name)
            }
            Kind::File => {
                let file = File::from(reopen(&self.fd, OFlag::empty())?);
                let stat = fstat(file.as_raw_fd()).map_err(|errno| Error::Sys {
                    step: format!("fstat({})", self.typed),
                    errno,
                })?;
                packer.append_file(name, file, &stat)
            }
            Kind::Link => {
                let target =
                    nix::fcntl::readlinkat(Some(self.fd.as_raw_fd()), "").map_err(|errno| {
                        Error::Sys {
                            step: format!("readlink({})", self.typed),
                            errno,
                        }
                    })?;
                packer.append_symlink(name, Path::new(&target), &self.stat)
            }
            Kind::Other => Err(Error::Usage(format!(
                "{}: not a file, directory or symbolic link",
                self.typed
            ))),
        }
    }
}

/// Where the copy lands, by docker's rules for DEST: the directory its top
/// entry goes into, and that entry's name (`.`: the contents go there).
struct Target {
    dir: PathBuf,
    name: PathBuf,
}

impl Target {
    /// `typed` is DEST as given, `dest` its path, `existing` what is there.
    fn of(source: &Source, typed: &str, dest: &Path, existing: Option<Kind>) -> Result<Target> {
        let is_dir = source.kind() == Kind::Dir;
        let parent_and_name = || -> Result<Target> {
            match (dest.parent(), dest.file_name()) {
                (Some(parent), Some(name)) => Ok(Target {
                    dir: if parent.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        parent.to_path_buf()
                    },
                    name: PathBuf::from(name),
                }),
                _ => Err(Error::Usage(format!("{typed}: not a path to copy to"))),
            }
        };
        match existing {
            Some(Kind::Dir) if source.contents_only() => Ok(Target {
                dir: dest.to_path_buf(),
                name: PathBuf::from("."),
            }),
            Some(Kind::Dir) => Ok(Target {
                dir: dest.to_path_buf(),
                name: source.base_name(),
            }),
            Some(_) if is_dir => Err(Error::Usage(format!(
                "cannot copy a directory to a file: {typed}"
            ))),
            Some(_) => parent_and_name(),
            None if typed.ends_with('/') && !is_dir => Err(Error::Usage(format!(
                "destination directory {typed} does not exist"
            ))),
            None => parent_and_name(),
        }
    }
}

/// `cp CONTAINER:SRC HOSTPATH`: packed to a scratch file, then unpacked
/// with the directory it lands in as the root (so nothing the container
/// made, a symlink included, can put a file anywhere else on the host).
fn copy_to_host(source: &Source, dest: &str, options: CpOptions) -> Result<Vec<String>> {
    let dest_path = PathBuf::from(dest);
    let existing = match std::fs::metadata(&dest_path) {
        Ok(meta) if meta.is_dir() => Some(Kind::Dir),
        Ok(_) => Some(Kind::File),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(format!("stat {dest}"), e)),
    };
    let target = Target::of(source, dest, &dest_path, existing)?;
    let mut packer = Packer::new(scratch_file()?);
    source.pack(&mut packer, &target.name)?;
    let (mut archive, mut skipped) = packer.finish()?;
    archive
        .rewind()
        .map_err(|e| Error::io("rewind the archive", e))?;
    let root = open_path(libc::AT_FDCWD, &target.dir, OFlag::O_DIRECTORY)?;
    let mut unpacker = Unpacker::new(&root, PathBuf::from("/"), options.archive, true);
    unpacker.unpack(archive, &source.typed)?;
    skipped.append(&mut unpacker.skipped);
    Ok(skipped)
}

/// Unpacks an archive under `dest`, a directory inside `root`.
struct Unpacker<'a> {
    root: &'a OwnedFd,
    dest: PathBuf,
    /// `-a`: give entries the archive's owners (else: ours, root).
    archive: bool,
    /// Onto the host: no set-user-ID or set-group-ID bits unless `-a`.
    to_host: bool,
    skipped: Vec<String>,
    /// Directories' times, set last (their entries change them).
    dir_times: Vec<(PathBuf, u64)>,
}

impl<'a> Unpacker<'a> {
    fn new(root: &'a OwnedFd, dest: PathBuf, archive: bool, to_host: bool) -> Unpacker<'a> {
        Unpacker {
            root,
            dest,
            archive,
            to_host,
            skipped: Vec::new(),
            dir_times: Vec::new(),
        }
    }

    fn unpack(&mut self, reader: impl Read, what: &str) -> Result<()> {
        let damaged = |e: std::io::Error| {
            Error::Usage(format!("{what} is not a tar archive, or is damaged: {e}"))
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(damaged)? {
            let mut entry = entry.map_err(damaged)?;
            let name = entry.path().map_err(damaged)?.into_owned();
            let Some(relative) = relative(&name) else {
                return Err(Error::Usage(format!(
                    "unsafe entry {:?} in {what}: it climbs out with ..",
                    name.display()
                )));
            };
            if relative.as_os_str().is_empty() {
                continue; // `.` itself: the destination, which exists.
            }
            self.entry(&mut entry, &relative)?;
        }
        for (path, mtime) in std::mem::take(&mut self.dir_times).into_iter().rev() {
            let (dir, name) = self.parent_of(&path)?;
            let time = nix::sys::time::TimeSpec::new(mtime as i64, 0);
            let _ = nix::sys::stat::utimensat(
                Some(dir.as_raw_fd()),
                name.as_os_str(),
                &time,
                &time,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
        Ok(())
    }

    /// The directory that will hold `relative` (resolved inside the
    /// root), and the entry's name in it.
    fn parent_of(&self, relative: &Path) -> Result<(OwnedFd, OsString)> {
        let full = self.dest.join(relative);
        let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
            return Err(Error::Usage(format!("{}: no name", relative.display())));
        };
        Ok((dir_in_root(self.root, parent)?, name.to_os_string()))
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<R>, relative: &Path) -> Result<()> {
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mode = if self.to_host && !self.archive {
            mode & 0o1777
        } else {
            mode
        };
        let owner = (header.uid().ok(), header.gid().ok());
        let mtime = header.mtime().unwrap_or(0);
        let (dir, name) = self.parent_of(relative)?;
        let at = Some(dir.as_raw_fd());
        let shown = relative.display().to_string();
        let sys = |step: &str, errno: Errno| Error::Sys {
            step: format!("{step}({shown})"),
            errno,
        };
        let existing =
            match nix::sys::stat::fstatat(at, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(stat) => Some(kind_of(&stat)),
                Err(Errno::ENOENT) => None,
                Err(errno) => return Err(sys("fstatat", errno)),
            };
        let is_dir = kind == tar::EntryType::Directory;
        match existing {
            Some(Kind::Dir) if is_dir => {}
            Some(Kind::Dir) => {
                return Err(Error::Usage(format!(
                    "cannot overwrite directory {shown} with a non-directory"
                )))
            }
            // Replaced, not written through: it may be a link, or linked.
            Some(_) => nix::unistd::unlinkat(
                at,
                name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            )
            .map_err(|e| sys("unlinkat", e))?,
            None => {}
        }
        match kind {
            tar::EntryType::Directory => {
                if existing.is_none() {
                    nix::sys::stat::mkdirat(at, name.as_os_str(), Mode::from_bits_truncate(0o700))
                        .map_err(|e| sys("mkdirat", e))?;
                }
                self.dir_times.push((relative.to_path_buf(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let how = OpenHow::new()
                    .flags(
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                    )
                    .mode(Mode::from_bits_truncate(0o600))
                    .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
                let fd = openat2(dir.as_raw_fd(), name.as_os_str(), how)
                    .map_err(|e| sys("openat2", e))?;
                // SAFETY: openat2 just returned this fd to us alone.
                let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                std::io::copy(entry, &mut file)
                    .map_err(|e| Error::io(format!("write {shown}"), e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| Error::io(format!("read the link of {shown}"), e))?
                    .ok_or_else(|| Error::Usage(format!("symlink {shown} has no target")))?;
                nix::unistd::symlinkat(target.as_os_str(), at, name.as_os_str())
                    .map_err(|e| sys("symlinkat", e))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| Error::io(format!("read the link of {shown}"), e))?
                    .ok_or_else(|| Error::Usage(format!("link {shown} has no target")))?;
                let target = relative_or_refuse(&target, &shown)?;
                let (target_dir, target_name) = self.parent_of(&target)?;
                nix::unistd::linkat(
                    Some(target_dir.as_raw_fd()),
                    target_name.as_os_str(),
                    at,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| sys("linkat", e))?;
                return Ok(());
            }
            _ => {
                trace::note(
                    format!("skip {}", trace::quote(relative)),
                    Some("a device node, FIFO or socket: cp does not carry it".into()),
                );
                self.skipped.push(shown);
                return Ok(());
            }
        }
        if self.archive {
            if let (Some(uid), Some(gid)) = owner {
                nix::unistd::fchownat(
                    at,
                    name.as_os_str(),
                    Some(nix::unistd::Uid::from_raw(uid as u32)),
                    Some(nix::unistd::Gid::from_raw(gid as u32)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| sys("fchownat", e))?;
            }
        }
        if kind == tar::EntryType::Symlink {
            return Ok(()); // a link's own mode means nothing
        }
        // After the owner: chown clears the set-ID bits.
        nix::sys::stat::fchmodat(
            at,
            name.as_os_str(),
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
        .or_else(|errno| match errno {
            // Older kernels refuse AT_SYMLINK_NOFOLLOW here; the entry is
            // known not to be a link (just made, under O_NOFOLLOW).
            Errno::EOPNOTSUPP => nix::sys::stat::fchmodat(
                at,
                name.as_os_str(),
                Mode::from_bits_truncate(mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            ),
            other => Err(other),
        })
        .map_err(|e| sys("fchmodat", e))?;
        if kind != tar::EntryType::Directory {
            let time = nix::sys::time::TimeSpec::new(mtime as i64, 0);
            let _ = nix::sys::stat::utimensat(
                at,
                name.as_os_str(),
                &time,
                &time,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
        Ok(())
    }
}

/// An archive's entry name as a relative path: `/` and `.` dropped;
/// `None` if it climbs with `..`.
fn relative(name: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn relative_or_refuse(name: &Path, entry: &str) -> Result<PathBuf> {
    relative(name).ok_or_else(|| {
        Error::Usage(format!(
            "unsafe link {entry} -> {:?}: it climbs out with ..",
            name.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_read_as_docker_reads_them() {
        assert_eq!(Location::parse("-"), Location::Stream);
        assert_eq!(
            Location::parse("web:/etc/hosts"),
            Location::Container {
                name: "web".into(),
                path: "/etc/hosts".into()
            }
        );
        assert_eq!(Location::parse("./a:b"), Location::Host("./a:b".into()));
        assert_eq!(Location::parse("/tmp/x"), Location::Host("/tmp/x".into()));
        assert_eq!(Location::parse(":x"), Location::Host(":x".into()));
        assert_eq!(in_container("etc/hosts"), PathBuf::from("/etc/hosts"));
    }

    #[test]
    fn entry_names_stay_below_the_destination() {
        assert_eq!(relative(Path::new("./a/b")), Some(PathBuf::from("a/b")));
        assert_eq!(relative(Path::new("/etc/x")), Some(PathBuf::from("etc/x")));
        assert_eq!(relative(Path::new(".")), Some(PathBuf::new()));
        assert_eq!(relative(Path::new("a/../../x")), None);
    }
}
