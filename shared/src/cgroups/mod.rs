//! cgroups: resource limits, on cgroup v2 and on v1 (legacy or hybrid).
//!
//! A cgroup is a directory in a special file system; its limits are files
//! in that directory, and a process joins it by having its pid written into
//! `cgroup.procs`. The two versions differ in layout:
//!
//! * **v2** ([`v2`], every current systemd distribution): one tree at
//!   `/sys/fs/cgroup`. A controller (memory, cpu, …) only works in a cgroup
//!   if its parent lists it in `cgroup.subtree_control`, and ("no internal
//!   processes") a cgroup that holds processes cannot hand controllers
//!   down. So controllers are enabled on every *ancestor*, never on the
//!   leaf that holds the container.
//! * **v1** ([`v1`]): one tree per controller (`/sys/fs/cgroup/memory`,
//!   `/sys/fs/cgroup/cpu`, …), each with its own directory for the
//!   container and its own `cgroup.procs` to join. In *hybrid* mode a v2 tree
//!   is mounted at `/sys/fs/cgroup/unified` too, but without controllers.
//!
//! The mode is read from the file system (`statfs` magic and the mount
//! table), never asked of the user. What the flags mean is in [`limits`].

pub mod devices;
pub mod limits;
pub mod v1;
pub mod v2;

pub use limits::{Limit, Limits};

use crate::error::{Error, Result};
use crate::{id, lock::ContainerLock, process, trace};
use nix::errno::Errno;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// Where cgroup file systems live.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The parent cgroup containers go under unless `--cgroup-parent` says
/// otherwise (runc and docker use a parent of their own in the same way).
pub const DEFAULT_PARENT: &str = "minibox";

/// The kernel's resource controllers a container is placed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Cpu,
    Cpuset,
    Memory,
    Pids,
    /// v1 only: v2 has `cgroup.freeze` in every cgroup. `commit` freezes
    /// the container while it reads its files.
    Freezer,
    /// v1 only: v2 has no devices controller; a BPF program attached to the
    /// cgroup does its work there (see [`devices`]).
    Devices,
}

impl Controller {
    /// The controllers with limits, in the order they are set up.
    pub const LIMITED: [Controller; 4] = [
        Controller::Cpu,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Pids,
    ];

    /// The v1 hierarchies a container joins.
    pub const V1: [Controller; 6] = [
        Controller::Cpu,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Pids,
        Controller::Freezer,
        Controller::Devices,
    ];

    /// The kernel's name (`memory`), as in mount options and
    /// `cgroup.subtree_control`.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Freezer => "freezer",
            Controller::Devices => "devices",
        }
    }
}

/// Which cgroup world this machine lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Pure cgroup v2.
    Unified,
    /// v1 controllers, plus an empty v2 tree at `unified/`.
    Hybrid,
    /// v1 only.
    Legacy,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Unified => "v2",
            Mode::Hybrid => "hybrid",
            Mode::Legacy => "v1",
        })
    }
}

/// The cgroup file systems to work in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// v2: one tree.
    Unified { root: PathBuf },
    /// v1: each controller's tree (a tree may carry several, e.g. `cpu,cpuacct`).
    Legacy {
        mode: Mode,
        trees: Vec<(Controller, PathBuf)>,
    },
}

impl Hierarchy {
    /// Look at this machine: `statfs(/sys/fs/cgroup)` and `/proc/self/mountinfo`.
    pub fn detect() -> Result<Hierarchy> {
        let fs = nix::sys::statfs::statfs(CGROUP_ROOT).map_err(|errno| Error::Sys {
            step: format!("statfs({CGROUP_ROOT:?})"),
            errno,
        })?;
        if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
            trace::note(
                format!("statfs({CGROUP_ROOT:?})"),
                Some("cgroup2: unified v2 hierarchy".into()),
            );
            return Ok(Hierarchy::Unified {
                root: PathBuf::from(CGROUP_ROOT),
            });
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
        let hierarchy = Self::from_mountinfo(&mountinfo)?;
        if let Hierarchy::Legacy { mode, trees } = &hierarchy {
            let names: Vec<String> = trees
                .iter()
                .map(|(c, p)| format!("{} at {}", c.name(), p.display()))
                .collect();
            trace::note(
                format!("statfs({CGROUP_ROOT:?}) and /proc/self/mountinfo"),
                Some(format!("{mode}: {}", names.join(", "))),
            );
        }
        Ok(hierarchy)
    }

    /// The v1 trees from a mount table: `cgroup` mounts whose super options
    /// name our controllers. A v2 mount beside them makes it hybrid.
    pub fn from_mountinfo(mountinfo: &str) -> Result<Hierarchy> {
        let mut trees = Vec::new();
        let mut has_v2 = false;
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = before.split(' ').nth(4).unwrap_or_default();
            let mut after = after.split(' ');
            let fstype = after.next().unwrap_or_default();
            let options = after.nth(1).unwrap_or_default();
            match fstype {
                "cgroup2" => has_v2 = true,
                "cgroup" => {
                    for controller in Controller::V1 {
                        if options.split(',').any(|o| o == controller.name())
                            && !trees.iter().any(|(c, _)| *c == controller)
                        {
                            trees.push((controller, PathBuf::from(mount_point)));
                        }
                    }
                }
                _ => {}
            }
        }
        if !trees.iter().any(|(c, _)| Controller::LIMITED.contains(c)) {
            return Err(Error::Usage(format!(
                "no cgroup controllers found under {CGROUP_ROOT}: is cgroupfs mounted?"
            )));
        }
        let mode = if has_v2 { Mode::Hybrid } else { Mode::Legacy };
        Ok(Hierarchy::Legacy { mode, trees })
    }

    pub fn mode(&self) -> Mode {
        match self {
            Hierarchy::Unified { .. } => Mode::Unified,
            Hierarchy::Legacy { mode, .. } => *mode,
        }
    }
}

/// `--cgroup-parent`: a relative path of plain names (no `..`, no `/` at
/// either end), so the container cannot be placed outside the hierarchy.
pub fn parse_parent(text: &str) -> std::result::Result<String, String> {
    let ok = !text.is_empty()
        && !text.starts_with('/')
        && !text.ends_with('/')
        && text
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != ".." && !c.starts_with("cgroup."));
    if ok {
        Ok(text.to_string())
    } else {
        Err("expected a relative path of names, like minibox or tests/run1".into())
    }
}

/// One container's cgroup (one directory per v1 tree, one in v2).
#[derive(Debug)]
pub struct Cgroup {
    hierarchy: Hierarchy,
    /// `parent/id`, relative to each tree's root.
    relative: PathBuf,
    /// Removed already, or not ours to remove (an `exec` joining it).
    removed: bool,
}

impl Cgroup {
    /// No cgroup at all (stage 10: a rootless container where no cgroup is
    /// the user's to write): no directories, nothing to add or remove.
    pub fn none(mode: Mode) -> Cgroup {
        Cgroup {
            hierarchy: Hierarchy::Legacy {
                mode,
                trees: Vec::new(),
            },
            relative: PathBuf::new(),
            removed: true,
        }
    }

    /// Create the container's cgroup under `parent` and write `limits`.
    /// On failure, whatever was created is removed again.
    pub fn create(hierarchy: Hierarchy, parent: &str, id: &str, limits: &Limits) -> Result<Cgroup> {
        Cgroup::create_below(hierarchy, None, parent, id, limits)
    }

    /// [`create`](Self::create) in a cgroup v2 subtree delegated to the
    /// caller (stage 10, rootless): `parent` starts with `delegated`, and
    /// controllers are enabled only from `delegated` down — the cgroups
    /// above it are root's, and offer what they already do.
    pub fn create_delegated(
        hierarchy: Hierarchy,
        delegated: &str,
        parent: &str,
        id: &str,
        limits: &Limits,
    ) -> Result<Cgroup> {
        Cgroup::create_below(hierarchy, Some(Path::new(delegated)), parent, id, limits)
    }

    fn create_below(
        hierarchy: Hierarchy,
        delegated: Option<&Path>,
        parent: &str,
        id: &str,
        limits: &Limits,
    ) -> Result<Cgroup> {
        process::checkpoint()?;
        let mut cgroup = Cgroup {
            hierarchy,
            relative: Path::new(parent).join(id),
            removed: false,
        };
        // Another container's `run` may remove an empty parent between our
        // mkdir of the parent and of the leaf: try again from the top.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match cgroup.make_directories(parent, delegated) {
                // ENOENT: the parent is gone; ENODEV: it is being removed
                // right now (a dying cgroup's files answer ENODEV).
                Err(Error::Sys {
                    errno: Errno::ENOENT | Errno::ENODEV,
                    ..
                }) if attempts < 5 => {
                    std::thread::yield_now();
                    continue;
                }
                Err(err) => {
                    let _ = cgroup.remove();
                    return Err(err);
                }
                Ok(()) => break,
            }
        }
        let written = match &cgroup.hierarchy {
            Hierarchy::Unified { root } => v2::write_limits(&root.join(&cgroup.relative), limits),
            Hierarchy::Legacy { .. } => v1::write_limits(&cgroup.v1_dirs(), limits),
        };
        if let Err(err) = written {
            let _ = cgroup.remove();
            return Err(err);
        }
        Ok(cgroup)
    }

    /// The cgroup of a running container, to join (`exec`) or freeze
    /// (`commit`); dropping it removes nothing.
    pub fn existing(hierarchy: Hierarchy, parent: &str, id: &str) -> Cgroup {
        Cgroup {
            hierarchy,
            relative: Path::new(parent).join(id),
            removed: true,
        }
    }

    /// Take responsibility for removing an [`existing`](Self::existing)
    /// cgroup (`rm` of a container whose monitor died).
    pub fn mark_ours(&mut self) {
        self.removed = false;
    }

    /// `parent`, as given to [`create`](Self::create) (and recorded for
    /// `exec`, `stop` and `rm` to find the cgroup again).
    pub fn parent(&self) -> String {
        self.relative
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// Every directory of this cgroup: one per tree.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.hierarchy {
            Hierarchy::Unified { root } => vec![root.join(&self.relative)],
            Hierarchy::Legacy { .. } => self.v1_dirs().into_iter().map(|(_, dir)| dir).collect(),
        }
    }

    /// The one directory on cgroup v2 (`None` on v1): where
    /// `clone3(CLONE_INTO_CGROUP)` can put a new process.
    pub fn unified_dir(&self) -> Option<PathBuf> {
        match &self.hierarchy {
            Hierarchy::Unified { root } => Some(root.join(&self.relative)),
            Hierarchy::Legacy { .. } => None,
        }
    }

    /// v1: each tree's directory, with the first controller of its tree.
    fn v1_dirs(&self) -> Vec<(Controller, PathBuf)> {
        match &self.hierarchy {
            Hierarchy::Unified { .. } => Vec::new(),
            Hierarchy::Legacy { trees, .. } => v1::distinct_trees(trees)
                .into_iter()
                .map(|(controller, tree)| (controller, tree.join(&self.relative)))
                .collect(),
        }
    }

    fn make_directories(&mut self, parent: &str, delegated: Option<&Path>) -> Result<()> {
        match self.hierarchy.clone() {
            Hierarchy::Unified { root } => {
                // Ours to change: the whole tree, or a delegated subtree.
                let top = delegated.map_or_else(|| root.clone(), |d| root.join(d));
                let wanted = v2::available_controllers(&top);
                let enable = |dir: &Path| match dir.starts_with(&top) {
                    true => v2::enable_controllers(dir, &wanted),
                    false => Ok(()),
                };
                // Enable the controllers on the root and on every parent, but
                // not on the leaf: it will hold processes.
                let mut dir = root.clone();
                enable(&dir)?;
                for component in Path::new(parent).components() {
                    dir.push(component);
                    self.mkdir_parent(&dir)?;
                    enable(&dir)?;
                }
                mkdir_leaf(&root.join(&self.relative))
            }
            Hierarchy::Legacy { trees, .. } => {
                for (controller, tree) in v1::distinct_trees(&trees) {
                    let mut dir = tree.clone();
                    for component in Path::new(parent).components() {
                        let above = dir.clone();
                        dir.push(component);
                        self.mkdir_parent(&dir)?;
                        if controller == Controller::Cpuset {
                            v1::fill_cpuset(&above, &dir)?;
                        }
                    }
                    mkdir_leaf(&tree.join(&self.relative))?;
                }
                Ok(())
            }
        }
    }

    /// mkdir a parent if missing (a concurrent run may make it first).
    fn mkdir_parent(&mut self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        match mkdir(dir) {
            Err(Error::Sys {
                errno: Errno::EEXIST,
                ..
            }) => Ok(()),
            other => other,
        }
    }

    /// Move `pid` into the cgroup (every tree of it, in v1). A process
    /// born in it (`clone3(CLONE_INTO_CGROUP)` on v2) is already there.
    pub fn add_process(&self, pid: nix::unistd::Pid) -> Result<()> {
        process::checkpoint()?;
        if let Some(dir) = self.unified_dir() {
            let path = format!("/proc/{pid}/cgroup");
            let want = format!("0::/{}", self.relative.display());
            if fs::read_to_string(&path).is_ok_and(|c| c.lines().any(|l| l == want)) {
                trace::note(
                    format!("read {path}"),
                    Some(format!(
                        "{want}: born in {} (CLONE_INTO_CGROUP)",
                        dir.display()
                    )),
                );
                return Ok(());
            }
        }
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// How many processes the kernel's OOM killer ended in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = match &self.hierarchy {
            Hierarchy::Unified { root } => root.join(&self.relative).join("memory.events"),
            Hierarchy::Legacy { .. } => {
                let memory = self
                    .v1_dirs()
                    .into_iter()
                    .find(|(c, _)| *c == Controller::Memory);
                match memory {
                    Some((_, dir)) => dir.join("memory.oom_control"),
                    None => return 0,
                }
            }
        };
        let count = fs::read_to_string(&file)
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0);
        trace::note(
            format!("read {}", file.display()),
            Some(format!("oom_kill {count}")),
        );
        count
    }

    /// Freeze every process of the cgroup until the guard is dropped (the
    /// freezer on v1, `cgroup.freeze` on v2): a frozen container cannot
    /// change its files while `commit` reads them.
    pub fn freeze(&self) -> Result<Frozen<'_>> {
        self.set_frozen(true)?;
        Ok(Frozen { cgroup: self })
    }

    /// `pause` (true) and `unpause` (false): freeze or thaw every process
    /// of the cgroup and wait until the kernel says it is done.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        match &self.hierarchy {
            Hierarchy::Unified { root } => v2::set_frozen(&root.join(&self.relative), frozen),
            Hierarchy::Legacy { .. } => v1::set_frozen(&self.v1_dirs(), frozen),
        }
    }

    /// The directory holding `controller`'s files: the one directory on
    /// v2, that controller's tree on v1 (`None` if it is not mounted).
    pub fn controller_dir(&self, controller: Controller) -> Option<PathBuf> {
        match &self.hierarchy {
            Hierarchy::Unified { root } => Some(root.join(&self.relative)),
            Hierarchy::Legacy { trees, .. } => trees
                .iter()
                .find(|(c, _)| *c == controller)
                .map(|(_, tree)| tree.join(&self.relative)),
        }
    }

    /// The host pids of the processes in the cgroup (`cgroup.procs`; on
    /// v1 the pids tree's, which every process of the container joins).
    pub fn processes(&self) -> Result<Vec<i32>> {
        let dir = self
            .controller_dir(Controller::Pids)
            .or_else(|| self.dirs().into_iter().next())
            .ok_or_else(|| Error::Usage("the container has no cgroup".into()))?;
        let text = read_trimmed(&dir.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }

    /// Empty the cgroup (SIGKILL whatever is left) and remove its
    /// directories.
    pub fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let mut first_error = None;
        for dir in self.dirs() {
            if !dir.exists() {
                continue;
            }
            if let Err(err) = kill_all_and_rmdir(&dir) {
                first_error.get_or_insert(err);
            }
        }
        // The parents stay, with the controllers enabled in them on v2, for
        // the next run (docker keeps its parent the same way): removing and
        // re-making them on every run is work, and a race with concurrent
        // runs. `cleanup` removes them once empty.
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for Cgroup {
    /// A safety net for early returns; the normal path calls `remove` and
    /// reports its errors.
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// A frozen cgroup; thawed when dropped.
pub struct Frozen<'a> {
    cgroup: &'a Cgroup,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = self.cgroup.set_frozen(false);
    }
}

/// rmdir fails with EBUSY while the cgroup has members. The container's
/// init has been reaped when we get here, which took its PID namespace with
/// it, so this only finds processes someone moved in since.
fn kill_all_and_rmdir(dir: &Path) -> Result<()> {
    for _ in 0..100 {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::yield_now();
    }
    let step = format!("rmdir({:?})", dir.display().to_string());
    let mut result = nix::unistd::unlinkat(None, dir, nix::unistd::UnlinkatFlags::RemoveDir);
    // The kernel drops an exited task from the cgroup a moment after wait
    // returns: retry briefly, starting with very short waits (most of the
    // time the first retry already succeeds), for at most about a second.
    let mut pause = std::time::Duration::from_micros(50);
    let mut waited = std::time::Duration::ZERO;
    while result == Err(Errno::EBUSY) && waited < std::time::Duration::from_secs(1) {
        std::thread::sleep(pause);
        waited += pause;
        pause = (pause * 2).min(std::time::Duration::from_millis(20));
        result = nix::unistd::unlinkat(None, dir, nix::unistd::UnlinkatFlags::RemoveDir);
    }
    trace::step(step, result)
}

/// The leaf is named by our container id, which nobody else uses: if it
/// exists, an earlier attempt of ours made it (see `Cgroup::create`).
fn mkdir_leaf(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    mkdir(dir)
}

fn mkdir(dir: &Path) -> Result<()> {
    trace::step(
        format!("mkdir({:?})", dir.display().to_string()),
        nix::unistd::mkdir(dir, nix::sys::stat::Mode::from_bits_truncate(0o755)),
    )
}

/// One write(2) of `value`: cgroup files take a whole value per write.
/// An fd of a cgroup directory, for `clone3(CLONE_INTO_CGROUP)` and
/// `bpf(BPF_PROG_ATTACH)`, which name a cgroup by fd.
pub fn open_dir(dir: &Path) -> Result<std::os::fd::OwnedFd> {
    let fd = trace::step_shows(
        format!(
            "open({:?}, O_RDONLY|O_DIRECTORY)",
            dir.display().to_string()
        ),
        nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        ),
        |fd| Some(format!("fd {fd}")),
    )?;
    // SAFETY: open just returned this fd to us alone.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) })
}

fn write(file: &Path, value: &str) -> Result<()> {
    use std::io::Write;
    let step = format!("write({:?}, {value:?})", file.display().to_string());
    let result = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(file)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    trace::step(step, result.map_err(|e| crate::error::errno_of(&e)))
}

/// Write only where the kernel offers the file (swap accounting can be off).
fn write_if_present(file: &Path, value: &str) -> Result<()> {
    if file.exists()
        || !file
            .parent()
            .is_some_and(|d| d.join("cgroup.procs").exists())
    {
        write(file, value)
    } else {
        trace::note(
            format!("skip {:?}", file.display().to_string()),
            Some("not offered by this kernel".into()),
        );
        Ok(())
    }
}

fn read_trimmed(file: &Path) -> Result<String> {
    // As a syscall error with its errno: a parent that a concurrent run has
    // just removed (ENOENT, or ENODEV while it is going) makes `create`
    // start over.
    fs::read_to_string(file)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::sys_from_io(format!("read({:?})", file.display().to_string()), &e))
}

/// Wait (briefly, with growing pauses) until `done` says the kernel has
/// finished an asynchronous change such as freezing.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let mut pause = std::time::Duration::from_micros(100);
    let mut waited = std::time::Duration::ZERO;
    while !done() {
        if waited > std::time::Duration::from_secs(5) {
            return Err(Error::Usage(format!(
                "{what} did not happen within 5 seconds"
            )));
        }
        std::thread::sleep(pause);
        waited += pause;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// Remove cgroups under `parent` left by runs that died without cleaning
/// up (SIGKILL, a crash): no live run holds their lock.
pub fn remove_stale(hierarchy: &Hierarchy, parent: &str) -> Result<usize> {
    // Every tree: a run killed halfway through removing its directories
    // leaves some trees with the container's directory and some without.
    let mut ids: Vec<String> = Vec::new();
    for dir in Cgroup::existing(hierarchy.clone(), parent, "").dirs() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && id::is_valid(&name) && !ids.contains(&name) {
                ids.push(name);
            }
        }
    }
    let mut removed = 0;
    for name in ids {
        let mut stale = Cgroup::existing(hierarchy.clone(), parent, &name);
        // A lock we can take: the run that made this cgroup is gone, and so
        // is its container (init dies with run: PR_SET_PDEATHSIG). A held
        // lock: a live run, perhaps still between mkdir and moving init in.
        // No lock file: made under another MINIBOX_ROOT; only an empty
        // cgroup is surely abandoned.
        let abandoned = match ContainerLock::is_held(&name) {
            Some(held) => !held,
            None => stale.dirs().iter().all(|dir| {
                !dir.exists()
                    || fs::read_to_string(dir.join("cgroup.procs"))
                        .is_ok_and(|p| p.trim().is_empty())
            }),
        };
        if !abandoned {
            continue;
        }
        stale.removed = false;
        if stale.remove().is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// `cleanup`: the stale cgroups under `parent` (see [`remove_stale`]), then
/// the parent directories themselves, deepest first, where they are empty
/// and carry minibox's name. A run killed between making a parent and its
/// leaf leaves one; a parent that still has containers stays (rmdir of a
/// non-empty cgroup fails). Returns how many stale cgroups went.
pub fn cleanup(hierarchy: &Hierarchy, parent: &str) -> Result<usize> {
    let removed = remove_stale(hierarchy, parent)?;
    for dir in Cgroup::existing(hierarchy.clone(), parent, "").dirs() {
        let mut current = Some(dir.as_path());
        while let Some(path) = current {
            let ours = path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(DEFAULT_PARENT));
            if !ours || !path.starts_with(CGROUP_ROOT) || fs::remove_dir(path).is_err() {
                break;
            }
            trace::note(format!("rmdir({:?})", path.display().to_string()), None);
            current = path.parent();
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_cannot_escape_the_hierarchy() {
        assert!(parse_parent("minibox").is_ok());
        assert!(parse_parent("a/b").is_ok());
        for bad in ["", "/abs", "a/../b", "..", "a/", "cgroup.procs"] {
            assert!(parse_parent(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hybrid_and_legacy_are_told_apart_by_the_mount_table() {
        let v1 = "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n\
                  32 25 0:28 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n";
        let legacy = Hierarchy::from_mountinfo(v1).unwrap();
        assert_eq!(legacy.mode(), Mode::Legacy);
        let Hierarchy::Legacy { trees, .. } = &legacy else {
            panic!()
        };
        assert!(trees.contains(&(Controller::Cpu, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))));
        let hybrid = format!("{v1}33 25 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
        assert_eq!(
            Hierarchy::from_mountinfo(&hybrid).unwrap().mode(),
            Mode::Hybrid
        );
        assert!(Hierarchy::from_mountinfo("").is_err());
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The v2 steps against a fake cgroupfs: controllers enabled on the root
    /// and each parent but not on the leaf; the limits in v2's files.
    #[test]
    fn v2_enables_controllers_on_ancestors_and_writes_v2_files() {
        let root = tempfile::tempdir().unwrap();
        fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids\n",
        )
        .unwrap();
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: None,
            cpu_quota_us: Some(50_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            cpuset_mems: Some("0".into()),
            pids_max: Some(Limit::At(20)),
        };
        let hierarchy = Hierarchy::Unified {
            root: root.path().to_path_buf(),
        };
        let cgroup = Cgroup::create(hierarchy, "minibox/tests", "abcdef012345", &limits).unwrap();
        for dir in ["", "minibox", "minibox/tests"] {
            assert_eq!(
                read(&root.path().join(dir).join("cgroup.subtree_control")),
                "+cpu +cpuset +memory +pids",
                "in {dir:?}"
            );
        }
        let leaf = root.path().join("minibox/tests/abcdef012345");
        assert!(
            !leaf.join("cgroup.subtree_control").exists(),
            "never on the leaf"
        );
        for (file, value) in [
            ("memory.max", "67108864"),
            ("memory.swap.max", "0"),
            ("memory.oom.group", "1"),
            ("cpu.max", "50000 100000"),
            ("cpu.weight", "20"),
            ("cpuset.cpus", "0"),
            ("cpuset.mems", "0"),
            ("pids.max", "20"),
        ] {
            assert_eq!(read(&leaf.join(file)), value, "{file}");
        }
        cgroup
            .add_process(nix::unistd::Pid::from_raw(4242))
            .unwrap();
        assert_eq!(read(&leaf.join("cgroup.procs")), "4242");
        fs::write(
            leaf.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cgroup.oom_kills(), 1);
        std::mem::forget(cgroup); // the fake tree cannot be rmdir'ed like cgroupfs
    }

    #[test]
    fn v2_unlimited_values_are_max() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "memory pids").unwrap();
        let limits = Limits {
            memory: Some(64 << 20),
            memory_swap: Some(Limit::Unlimited),
            pids_max: Some(Limit::Unlimited),
            ..Limits::default()
        };
        let hierarchy = Hierarchy::Unified {
            root: root.path().to_path_buf(),
        };
        let cgroup = Cgroup::create(hierarchy, "minibox", "abcdef012345", &limits).unwrap();
        let leaf = root.path().join("minibox/abcdef012345");
        assert_eq!(read(&leaf.join("memory.swap.max")), "max");
        assert_eq!(read(&leaf.join("pids.max")), "max");
        assert_eq!(
            read(&root.path().join("cgroup.subtree_control")),
            "+memory +pids"
        );
        std::mem::forget(cgroup);
    }

    /// The v1 steps against fake per-controller trees: a directory in each,
    /// the cpuset filled from its parent, the limits in v1's files.
    #[test]
    fn v1_writes_each_controllers_files_and_fills_cpusets() {
        let base = tempfile::tempdir().unwrap();
        let tree = |name: &str| {
            let dir = base.path().join(name);
            fs::create_dir_all(&dir).unwrap();
            dir
        };
        let cpuset = tree("cpuset");
        fs::write(cpuset.join("cpuset.cpus"), "0-3\n").unwrap();
        fs::write(cpuset.join("cpuset.mems"), "0\n").unwrap();
        // A fresh v1 cpuset directory has empty files.
        fs::create_dir_all(cpuset.join("minibox")).unwrap();
        fs::write(cpuset.join("minibox/cpuset.cpus"), "").unwrap();
        fs::write(cpuset.join("minibox/cpuset.mems"), "").unwrap();
        let hierarchy = Hierarchy::Legacy {
            mode: Mode::Hybrid,
            trees: vec![
                (Controller::Cpu, tree("cpu,cpuacct")),
                (Controller::Cpuset, cpuset.clone()),
                (Controller::Memory, tree("memory")),
                (Controller::Pids, tree("pids")),
            ],
        };
        let limits = Limits {
            memory: Some(64 << 20),
            cpu_quota_us: Some(20_000),
            cpu_shares: Some(512),
            pids_max: Some(Limit::At(10)),
            ..Limits::default()
        };
        let cgroup = Cgroup::create(hierarchy, "minibox", "abcdef012345", &limits).unwrap();
        let leaf = |name: &str| base.path().join(name).join("minibox/abcdef012345");
        assert_eq!(read(&cpuset.join("minibox/cpuset.cpus")), "0-3");
        assert_eq!(read(&leaf("cpuset").join("cpuset.cpus")), "0-3");
        assert_eq!(read(&leaf("cpuset").join("cpuset.mems")), "0");
        assert_eq!(read(&leaf("cpu,cpuacct").join("cpu.cfs_quota_us")), "20000");
        assert_eq!(
            read(&leaf("cpu,cpuacct").join("cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(read(&leaf("cpu,cpuacct").join("cpu.shares")), "512");
        assert_eq!(
            read(&leaf("memory").join("memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(read(&leaf("pids").join("pids.max")), "10");
        assert_eq!(cgroup.dirs().len(), 4);
        std::mem::forget(cgroup);
    }
}
