//! cgroups: resource limits, on cgroup v2 and on v1 (legacy or hybrid).
//!
//! A cgroup is a directory in a special file system; its limits are files
//! in that directory, and a process joins it by having its pid written into
//! `cgroup.procs`. The two versions differ in layout:
//!
//! * **v2** (every current systemd distribution): one tree at
//!   `/sys/fs/cgroup`. A controller (memory, cpu, …) only works in a cgroup
//!   if its parent lists it in `cgroup.subtree_control`, and ("no internal
//!   processes") a cgroup that holds processes cannot hand controllers
//!   down. So controllers are enabled on every *ancestor*, never on the
//!   leaf that holds the container.
//! * **v1**: one tree per controller (`/sys/fs/cgroup/memory`,
//!   `/sys/fs/cgroup/cpu`, …), each with its own directory for the
//!   container and its own `cgroup.procs` to join. In *hybrid* mode a v2 tree
//!   is mounted at `/sys/fs/cgroup/unified` too, but without controllers.
//!
//! The mode is read from the file system (`statfs` magic and the mount
//! table), never asked of the user.

use crate::error::{Error, Result};
use crate::trace;
use nix::errno::Errno;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// Where cgroup file systems live.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The parent cgroup containers go under unless `--cgroup-parent` says
/// otherwise (runc and docker use a parent of their own in the same way).
pub const DEFAULT_PARENT: &str = "minibox";
/// The controllers a container is placed in.
pub const CONTROLLERS: [&str; 4] = ["cpu", "cpuset", "memory", "pids"];
/// Docker's floor: below this a container cannot even start its runtime.
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;
/// The CFS period `--cpus` is expressed in (docker's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

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
        trees: Vec<(&'static str, PathBuf)>,
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
                .map(|(c, p)| format!("{c} at {}", p.display()))
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
                    for controller in CONTROLLERS {
                        if options.split(',').any(|o| o == controller)
                            && !trees.iter().any(|(c, _)| *c == controller)
                        {
                            trees.push((controller, PathBuf::from(mount_point)));
                        }
                    }
                }
                _ => {}
            }
        }
        if trees.is_empty() {
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

/// Resource limits, already validated (see the `parse_*` functions).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Bytes of memory.
    pub memory: Option<u64>,
    /// Memory + swap, in bytes; `Some(None)` is unlimited swap (`-1`).
    pub memory_swap: Option<Option<u64>>,
    /// CFS quota per [`CPU_PERIOD_US`], from `--cpus`.
    pub cpu_quota_us: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    /// `None` inside: unlimited (`-1`).
    pub pids_max: Option<Option<u64>>,
}

impl Limits {
    /// Checks between flags (each flag is checked alone by its parser).
    pub fn check(&self) -> Result<()> {
        match (self.memory, self.memory_swap) {
            (None, Some(_)) => Err(Error::Usage(
                "--memory-swap needs --memory (it is memory plus swap)".into(),
            )),
            (Some(memory), Some(Some(swap))) if swap < memory => Err(Error::Usage(format!(
                "--memory-swap {} is below --memory {}: it counts memory plus swap",
                human_bytes(swap),
                human_bytes(memory)
            ))),
            _ => Ok(()),
        }
    }
}

/// `100m` → 104857600. Suffixes b, k, m, g (any case), as docker.
pub fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(format!("unknown unit {unit:?}: use b, k, m or g")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| "expected a number with an optional b, k, m or g suffix".to_string())?;
    let bytes = value * multiplier as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err("out of range".into());
    }
    Ok(bytes as u64)
}

/// `-m`: at least [`MIN_MEMORY`].
pub fn parse_memory(text: &str) -> std::result::Result<u64, String> {
    let bytes = parse_bytes(text)?;
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{} is below the minimum of {}",
            human_bytes(bytes),
            human_bytes(MIN_MEMORY)
        ));
    }
    Ok(bytes)
}

/// A limit that may also be "none" (`-1` on the command line, `max` in v2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaybeUnlimited {
    Limit(u64),
    Unlimited,
}

impl MaybeUnlimited {
    pub fn as_option(self) -> Option<u64> {
        match self {
            MaybeUnlimited::Limit(n) => Some(n),
            MaybeUnlimited::Unlimited => None,
        }
    }
}

/// `--memory-swap`: bytes, or `-1` for unlimited swap.
pub fn parse_memory_swap(text: &str) -> std::result::Result<MaybeUnlimited, String> {
    if text.trim() == "-1" {
        return Ok(MaybeUnlimited::Unlimited);
    }
    parse_bytes(text).map(MaybeUnlimited::Limit)
}

/// `--cpus 0.5` → a quota of 50000 µs per 100000 µs period.
pub fn parse_cpus(text: &str) -> std::result::Result<u64, String> {
    let cpus: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number of CPUs, like 0.5".to_string())?;
    let online = online_cpu_count();
    if !(cpus >= 0.01 && cpus <= online as f64) {
        return Err(format!(
            "must be between 0.01 and {online} (the CPUs this machine has)"
        ));
    }
    Ok((cpus * CPU_PERIOD_US as f64).round() as u64)
}

/// `--cpu-shares`: 2 to 262144, the range the kernel accepts for `cpu.shares`.
pub fn parse_cpu_shares(text: &str) -> std::result::Result<u64, String> {
    let shares: u64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a whole number".to_string())?;
    if !(2..=262_144).contains(&shares) {
        return Err("must be between 2 and 262144".into());
    }
    Ok(shares)
}

/// `--pids-limit`: a positive number, or `-1` for no limit.
pub fn parse_pids_limit(text: &str) -> std::result::Result<MaybeUnlimited, String> {
    match text.trim() {
        "-1" => Ok(MaybeUnlimited::Unlimited),
        n => match n.parse::<u64>() {
            Ok(0) | Err(_) => Err("expected a positive whole number, or -1 for no limit".into()),
            Ok(limit) => Ok(MaybeUnlimited::Limit(limit)),
        },
    }
}

/// `--cpuset-cpus 0-1,3`: a valid list whose CPUs this machine has.
pub fn parse_cpuset_cpus(text: &str) -> std::result::Result<String, String> {
    let cpus = parse_id_list(text)?;
    let online = fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse_id_list(s.trim()).ok())
        .unwrap_or_default();
    if let Some(missing) = cpus.iter().find(|cpu| !online.contains(cpu)) {
        return Err(format!(
            "CPU {missing} is not online here (online: {})",
            fs::read_to_string("/sys/devices/system/cpu/online")
                .unwrap_or_default()
                .trim()
        ));
    }
    Ok(text.trim().to_string())
}

/// `--cpuset-mems 0`: a valid list of memory nodes.
pub fn parse_cpuset_mems(text: &str) -> std::result::Result<String, String> {
    parse_id_list(text)?;
    Ok(text.trim().to_string())
}

/// `0-2,5` → [0, 1, 2, 5]; `9-3` is an error.
pub fn parse_id_list(text: &str) -> std::result::Result<Vec<u32>, String> {
    let mut ids = Vec::new();
    for part in text.trim().split(',') {
        let bad = || format!("{text:?} is not a list like 0-2,5");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(format!("range {part} runs backwards"));
                }
                ids.extend(a..=b);
            }
            None => ids.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(ids)
}

fn online_cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `64 MiB`, for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// runc's mapping from v1 `cpu.shares` (2..262144) to v2 `cpu.weight`
/// (1..10000): linear, so the default 1024 shares land near weight 39.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + ((shares.saturating_sub(2)) * 9999) / 262_142
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
    /// Parent directories this run created, deepest last (removed if empty).
    created_parents: Vec<PathBuf>,
    removed: bool,
}

impl Cgroup {
    /// Create the container's cgroup under `parent` and write `limits`.
    /// On failure, whatever was created is removed again.
    pub fn create(hierarchy: Hierarchy, parent: &str, id: &str, limits: &Limits) -> Result<Cgroup> {
        let mut cgroup = Cgroup {
            hierarchy,
            relative: Path::new(parent).join(id),
            created_parents: Vec::new(),
            removed: false,
        };
        // Another container's `run` may remove an empty parent between our
        // mkdir of the parent and of the leaf: try again from the top.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match cgroup.make_directories(parent) {
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
        if let Err(err) = cgroup.write_limits(limits) {
            let _ = cgroup.remove();
            return Err(err);
        }
        Ok(cgroup)
    }

    /// Every directory of this cgroup: one per tree.
    pub fn dirs(&self) -> Vec<(&'static str, PathBuf)> {
        match &self.hierarchy {
            Hierarchy::Unified { root } => vec![("unified", root.join(&self.relative))],
            Hierarchy::Legacy { trees, .. } => distinct_trees(trees)
                .into_iter()
                .map(|(controller, tree)| (controller, tree.join(&self.relative)))
                .collect(),
        }
    }

    fn make_directories(&mut self, parent: &str) -> Result<()> {
        match self.hierarchy.clone() {
            Hierarchy::Unified { root } => {
                let available = read_trimmed(&root.join("cgroup.controllers")).unwrap_or_default();
                let wanted: Vec<&str> = CONTROLLERS
                    .into_iter()
                    .filter(|c| available.split(' ').any(|a| a == *c))
                    .collect();
                // Enable the controllers on the root and on every parent, but
                // not on the leaf: it will hold processes.
                let mut dir = root.clone();
                self.enable_controllers(&dir, &wanted)?;
                for component in Path::new(parent).components() {
                    dir.push(component);
                    self.mkdir_parent(&dir)?;
                    self.enable_controllers(&dir, &wanted)?;
                }
                mkdir_leaf(&root.join(&self.relative))
            }
            Hierarchy::Legacy { trees, .. } => {
                for (controller, tree) in distinct_trees(&trees) {
                    let mut dir = tree.clone();
                    for component in Path::new(parent).components() {
                        let above = dir.clone();
                        dir.push(component);
                        self.mkdir_parent(&dir)?;
                        if controller == "cpuset" {
                            fill_cpuset(&above, &dir)?;
                        }
                    }
                    mkdir_leaf(&tree.join(&self.relative))?;
                }
                Ok(())
            }
        }
    }

    /// mkdir a parent if missing; true if this call created it.
    fn mkdir_parent(&mut self, dir: &Path) -> Result<bool> {
        if dir.is_dir() {
            return Ok(false);
        }
        match mkdir(dir) {
            Ok(()) => {
                self.created_parents.push(dir.to_path_buf());
                Ok(true)
            }
            Err(Error::Sys {
                errno: Errno::EEXIST,
                ..
            }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    fn enable_controllers(&self, dir: &Path, wanted: &[&str]) -> Result<()> {
        let file = dir.join("cgroup.subtree_control");
        let enabled = read_trimmed(&file).unwrap_or_default();
        let missing: Vec<String> = wanted
            .iter()
            .filter(|c| !enabled.split(' ').any(|e| e == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        write(&file, &missing.join(" "))
    }

    fn write_limits(&self, limits: &Limits) -> Result<()> {
        match &self.hierarchy {
            Hierarchy::Unified { root } => {
                let dir = root.join(&self.relative);
                if let Some(memory) = limits.memory {
                    write(&dir.join("memory.max"), &memory.to_string())?;
                    // No swap unless --memory-swap allows it: the limit means what it says.
                    let swap = match limits.memory_swap {
                        None => "0".to_string(),
                        Some(None) => "max".to_string(),
                        Some(Some(total)) => (total - memory).to_string(),
                    };
                    write_if_present(&dir.join("memory.swap.max"), &swap)?;
                    // One OOM kill ends the whole container, not a random process in it.
                    write(&dir.join("memory.oom.group"), "1")?;
                }
                if let Some(quota) = limits.cpu_quota_us {
                    write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                }
                if let Some(shares) = limits.cpu_shares {
                    write(
                        &dir.join("cpu.weight"),
                        &shares_to_weight(shares).to_string(),
                    )?;
                }
                if let Some(cpus) = &limits.cpuset_cpus {
                    write(&dir.join("cpuset.cpus"), cpus)?;
                }
                if let Some(mems) = &limits.cpuset_mems {
                    write(&dir.join("cpuset.mems"), mems)?;
                }
                if let Some(pids) = limits.pids_max {
                    write(
                        &dir.join("pids.max"),
                        &pids.map_or("max".into(), |n| n.to_string()),
                    )?;
                }
            }
            Hierarchy::Legacy { .. } => {
                for (controller, dir) in self.dirs() {
                    match controller {
                        "memory" => {
                            if let Some(memory) = limits.memory {
                                write(&dir.join("memory.limit_in_bytes"), &memory.to_string())?;
                                let total = match limits.memory_swap {
                                    None => Some(memory),
                                    Some(total) => total,
                                };
                                let total = total.map_or("-1".to_string(), |t| t.to_string());
                                write_if_present(&dir.join("memory.memsw.limit_in_bytes"), &total)?;
                            }
                        }
                        "cpu" => {
                            if let Some(quota) = limits.cpu_quota_us {
                                write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                                write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                            }
                            if let Some(shares) = limits.cpu_shares {
                                write(&dir.join("cpu.shares"), &shares.to_string())?;
                            }
                        }
                        "cpuset" => {
                            // A new v1 cpuset is empty, and a process cannot
                            // join an empty cpuset (ENOSPC): fill it in.
                            let above = dir.parent().unwrap_or(&dir).to_path_buf();
                            let cpus = match &limits.cpuset_cpus {
                                Some(cpus) => cpus.clone(),
                                None => read_trimmed(&above.join("cpuset.cpus"))?,
                            };
                            let mems = match &limits.cpuset_mems {
                                Some(mems) => mems.clone(),
                                None => read_trimmed(&above.join("cpuset.mems"))?,
                            };
                            write(&dir.join("cpuset.cpus"), &cpus)?;
                            write(&dir.join("cpuset.mems"), &mems)?;
                        }
                        "pids" => {
                            if let Some(pids) = limits.pids_max {
                                write(
                                    &dir.join("pids.max"),
                                    &pids.map_or("max".into(), |n| n.to_string()),
                                )?;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Move `pid` into the cgroup (every tree of it, in v1).
    pub fn add_process(&self, pid: nix::unistd::Pid) -> Result<()> {
        for (_, dir) in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// How many processes the kernel's OOM killer ended in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (file, dir) = match &self.hierarchy {
            Hierarchy::Unified { root } => ("memory.events", root.join(&self.relative)),
            Hierarchy::Legacy { .. } => match self.dirs().into_iter().find(|(c, _)| *c == "memory")
            {
                Some((_, dir)) => ("memory.oom_control", dir),
                None => return 0,
            },
        };
        let path = dir.join(file);
        let count = fs::read_to_string(&path)
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
            })
            .unwrap_or(0);
        trace::note(
            format!("read {}", path.display()),
            Some(format!("oom_kill {count}")),
        );
        count
    }

    /// Empty the cgroup (SIGKILL whatever is left), remove its directories,
    /// and the parents this run created if they are now empty.
    pub fn remove(&mut self) -> Result<()> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        let mut first_error = None;
        for (_, dir) in self.dirs() {
            if !dir.exists() {
                continue;
            }
            if let Err(err) = kill_all_and_rmdir(&dir) {
                first_error.get_or_insert(err);
            }
        }
        // Parents go too once empty, deepest first, if this run made them or
        // they carry minibox's name (a parent shared by concurrent runs is
        // removed by whichever finishes last). Never anyone else's directory.
        for (_, dir) in self.dirs() {
            let mut parent = dir.parent().map(Path::to_path_buf);
            while let Some(current) = parent {
                let ours = self.created_parents.contains(&current)
                    || current
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(DEFAULT_PARENT));
                // ENOTEMPTY/EBUSY: another container still uses it.
                if !ours || fs::remove_dir(&current).is_err() {
                    break;
                }
                trace::note(format!("rmdir({:?})", current.display().to_string()), None);
                parent = current.parent().map(Path::to_path_buf);
            }
        }
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

/// Each v1 tree once: cpu and cpuacct may share one tree, and so one
/// directory per container.
fn distinct_trees(trees: &[(&'static str, PathBuf)]) -> Vec<(&'static str, PathBuf)> {
    let mut seen: Vec<&Path> = Vec::new();
    let mut distinct = Vec::new();
    for (controller, tree) in trees {
        if !seen.contains(&tree.as_path()) {
            seen.push(tree);
            distinct.push((*controller, tree.clone()));
        }
    }
    distinct
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
fn write(file: &Path, value: &str) -> Result<()> {
    use std::io::Write;
    let step = format!("write({:?}, {value:?})", file.display().to_string());
    let result = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(file)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    let result = result.map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
    trace::step(step, result)
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

/// A new v1 cpuset starts empty; copy the parent's CPUs and memory nodes
/// into it. Checked on every run, not only by the run that made the
/// directory: a concurrent run may have made it a moment ago.
fn fill_cpuset(from: &Path, to: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read_trimmed(&to.join(file))?.is_empty() {
            let value = read_trimmed(&from.join(file))?;
            write(&to.join(file), &value)?;
        }
    }
    Ok(())
}

fn read_trimmed(file: &Path) -> Result<String> {
    // As a syscall error with its errno: a parent that a concurrent run has
    // just removed (ENOENT, or ENODEV while it is going) makes `create`
    // start over.
    fs::read_to_string(file)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::Sys {
            step: format!("read({:?})", file.display().to_string()),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })
}

/// Remove cgroups under `parent` left by runs that died without cleaning
/// up (SIGKILL, a crash): empty, and no live run holds their lock.
pub fn remove_stale(hierarchy: &Hierarchy, parent: &str) -> Result<usize> {
    let probe = Cgroup {
        hierarchy: hierarchy.clone(),
        relative: PathBuf::from(parent),
        created_parents: Vec::new(),
        removed: true,
    };
    let mut removed = 0;
    let Some((_, first_tree_parent)) = probe.dirs().into_iter().next() else {
        return Ok(0);
    };
    let Ok(entries) = fs::read_dir(&first_tree_parent) else {
        return Ok(0);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.path().is_dir() || !is_container_id(&name) {
            continue;
        }
        let lock_path = crate::paths::ContainerLock::path(&name);
        let mut stale = Cgroup {
            hierarchy: hierarchy.clone(),
            relative: Path::new(parent).join(&name),
            created_parents: Vec::new(),
            removed: true,
        };
        let abandoned = match crate::paths::ContainerLock::owner_alive(&lock_path) {
            // A free lock: the run that made this cgroup is gone, and so is
            // its container (init dies with run: PR_SET_PDEATHSIG). A held
            // lock: a live run, perhaps still between mkdir and moving init in.
            Some(alive) => !alive,
            // No lock file: made under another MINIBOX_ROOT; only an empty
            // cgroup is surely abandoned.
            None => stale.dirs().iter().all(|(_, dir)| {
                fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty())
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

/// Container ids are 12 lowercase hex digits: nothing else under a parent
/// is ours to remove.
pub fn is_container_id(name: &str) -> bool {
    name.len() == 12
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_take_docker_suffixes_in_any_case() {
        assert_eq!(parse_bytes("100"), Ok(100));
        assert_eq!(parse_bytes("64m"), Ok(64 << 20));
        assert_eq!(parse_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1.5k"), Ok(1536));
        assert!(parse_bytes("100x").is_err());
        assert!(parse_bytes("m").is_err());
        assert!(parse_bytes("-5m").is_err());
        assert!(parse_memory("1k")
            .unwrap_err()
            .contains("below the minimum"));
    }

    #[test]
    fn id_lists_and_their_mistakes() {
        assert_eq!(parse_id_list("0-2,5"), Ok(vec![0, 1, 2, 5]));
        assert!(parse_id_list("9-3").unwrap_err().contains("backwards"));
        assert!(parse_id_list("a").is_err());
        assert!(parse_id_list("").is_err());
    }

    #[test]
    fn shares_map_to_weights_as_runc_does() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
    }

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
        assert!(trees.contains(&("cpu", PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))));
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
            pids_max: Some(Some(20)),
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
            memory_swap: Some(None),
            pids_max: Some(None),
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
                ("cpu", tree("cpu,cpuacct")),
                ("cpuset", cpuset.clone()),
                ("memory", tree("memory")),
                ("pids", tree("pids")),
            ],
        };
        let limits = Limits {
            memory: Some(64 << 20),
            cpu_quota_us: Some(20_000),
            cpu_shares: Some(512),
            pids_max: Some(Some(10)),
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
