//! The outer cgroup: every runtime under test runs inside
//! `minibox-check-PID` (memory and pids limited), in its leaf `runtime`,
//! so a runtime that enforces nothing cannot hurt the machine. Templates
//! put their containers' cgroups below it with `{cgroup_parent}`.
//!
//! cgroup v2 (`/sys/fs/cgroup` is cgroup2): one directory; the limits are
//! written on it, its leaf holds the runtime, and its subtree_control
//! passes memory and pids down (v2's "no internal processes" rule is why
//! the runtime sits in a leaf). v1 and hybrid: one directory in the memory
//! hierarchy and one in the pids hierarchy.

use crate::error::{Error, Result};
use crate::rootfs::{dead_owner, PREFIX};
use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The outer limits: far above what one probe run needs, far below what
/// could hurt the machine.
pub const OUTER_MEMORY: u64 = 512 << 20;
pub const OUTER_PIDS: u64 = 512;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Whether `path` is a cgroup2 mount.
pub fn is_cgroup2(path: &str) -> bool {
    let Ok(c_path) = CString::new(path) else {
        return false;
    };
    // SAFETY: an all-zero statfs is a valid value of this plain C struct.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a NUL-terminated string and buf a valid, writable
    // statfs that outlives the call.
    let ret = unsafe { libc::statfs(c_path.as_ptr(), &mut buf) };
    ret == 0 && buf.f_type as i64 == CGROUP2_SUPER_MAGIC
}

/// Whether the host is hybrid: v1 hierarchies under a tmpfs at
/// /sys/fs/cgroup, and cgroup2 at /sys/fs/cgroup/unified.
pub fn is_hybrid() -> bool {
    !is_cgroup2(CGROUP_ROOT) && is_cgroup2(&format!("{CGROUP_ROOT}/unified"))
}

/// The cgroup2 hierarchy: `/sys/fs/cgroup` on v2, `/sys/fs/cgroup/unified`
/// on a hybrid host, none on pure v1.
pub fn v2_root() -> Option<PathBuf> {
    if is_cgroup2(CGROUP_ROOT) {
        return Some(PathBuf::from(CGROUP_ROOT));
    }
    let unified = format!("{CGROUP_ROOT}/unified");
    is_cgroup2(&unified).then(|| PathBuf::from(unified))
}

/// The directory of a controller's cgroup at `path` (as /proc/PID/cgroup
/// names it): the v1 hierarchy of that controller if there is one, else v2.
pub fn controller_dir(controller: &str, proc_cgroup: &str) -> Option<PathBuf> {
    let mut v2_path = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == controller) {
            let dir = Path::new(CGROUP_ROOT).join(controller);
            return Some(join(&dir, path));
        }
    }
    Some(join(&v2_root()?, &v2_path?))
}

fn join(base: &Path, cgroup_path: &str) -> PathBuf {
    base.join(cgroup_path.trim_start_matches('/'))
}

/// The path of `controller`'s cgroup in /proc/PID/cgroup text.
pub fn controller_path(controller: &str, proc_cgroup: &str) -> Option<String> {
    let mut v2_path = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path.to_string());
        } else if controllers.split(',').any(|c| c == controller) {
            return Some(path.to_string());
        }
    }
    v2_path
}

/// The checker's cgroup.
pub struct Outer {
    /// `minibox-check-PID`: `{cgroup_parent}`.
    pub name: String,
    /// The leaves the runtime process joins (`…/runtime/cgroup.procs`).
    procs_files: Vec<CString>,
    /// Where the runtime runs, as /proc/PID/cgroup shows it.
    pub runtime_path: String,
    /// Why the outer limits are missing, if they are.
    pub warning: Option<String>,
}

impl Outer {
    /// Create the outer cgroup and its `runtime` leaf, after removing
    /// those of checker processes that are gone.
    pub fn create() -> Result<Self> {
        remove_dead();
        let name = format!("{PREFIX}{}", std::process::id());
        let runtime_path = format!("/{name}/runtime");
        let mut procs_files = Vec::new();
        let mut warning = None;
        if is_cgroup2(CGROUP_ROOT) {
            let outer = Path::new(CGROUP_ROOT).join(&name);
            make_dir(&outer)?;
            let available =
                fs::read_to_string(outer.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| available.split_whitespace().any(|a| a == c);
            if has("memory") && has("pids") {
                write_file(&outer.join("memory.max"), &OUTER_MEMORY.to_string())?;
                // No swap: a hog is killed at the limit instead of swapping.
                let _ = fs::write(outer.join("memory.swap.max"), "0");
                write_file(&outer.join("pids.max"), &OUTER_PIDS.to_string())?;
                write_file(&outer.join("cgroup.subtree_control"), "+memory +pids")?;
            } else {
                warning = Some(format!(
                    "the root cgroup does not pass memory and pids down (cgroup.subtree_control of {CGROUP_ROOT}): the outer cgroup has no limits"
                ));
            }
            let leaf = outer.join("runtime");
            make_dir(&leaf)?;
            procs_files.push(procs_file(&leaf)?);
        } else {
            for (controller, limits) in [
                (
                    "memory",
                    vec![
                        ("memory.limit_in_bytes", OUTER_MEMORY),
                        ("memory.memsw.limit_in_bytes", OUTER_MEMORY),
                    ],
                ),
                ("pids", vec![("pids.max", OUTER_PIDS)]),
            ] {
                let hierarchy = Path::new(CGROUP_ROOT).join(controller);
                if !hierarchy.is_dir() {
                    return Err(Error::Environment(format!(
                        "no {controller} cgroup hierarchy at {}: the checker runs every runtime in a memory- and pids-limited cgroup",
                        hierarchy.display()
                    )));
                }
                let outer = hierarchy.join(&name);
                make_dir(&outer)?;
                for (file, value) in limits {
                    let path = outer.join(file);
                    // memsw exists only with swap accounting.
                    if path.exists() {
                        write_file(&path, &value.to_string())?;
                    }
                }
                let leaf = outer.join("runtime");
                make_dir(&leaf)?;
                procs_files.push(procs_file(&leaf)?);
            }
        }
        Ok(Outer {
            name,
            procs_files,
            runtime_path,
            warning,
        })
    }

    /// The `cgroup.procs` files a runtime process writes "0" to before
    /// exec (see [`crate::run`]).
    pub fn procs_files(&self) -> &[CString] {
        &self.procs_files
    }

    /// Every directory of ours, in every hierarchy (v1 controllers, the
    /// unified one), outermost first.
    pub fn trees(&self) -> Vec<PathBuf> {
        trees_named(&self.name)
    }

    /// Every process in our cgroups, in any hierarchy: all of them were
    /// started by the checker (runtimes and what they left).
    pub fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for tree in self.trees() {
            collect_procs(&tree, &mut pids);
        }
        pids.sort_unstable();
        pids.dedup();
        pids.retain(|&p| p != std::process::id() as i32);
        pids
    }

    /// SIGKILL every process in our cgroups.
    pub fn kill_all(&self) {
        for pid in self.processes() {
            // SAFETY: kill has no memory effects; the pid was just read
            // from one of our own cgroups, so it is a process we started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// The cgroup directories below ours that a runtime made and left
    /// (the leaf `runtime` is ours, not the runtime's).
    pub fn leftover_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for tree in self.trees() {
            for entry in fs::read_dir(&tree).into_iter().flatten().flatten() {
                if entry.path().is_dir() && entry.file_name() != "runtime" {
                    dirs.push(entry.path());
                }
            }
        }
        dirs
    }

    /// Remove our cgroups (and what the runtimes made below them) in every
    /// hierarchy: rmdir, deepest first; only empty cgroups go.
    pub fn remove(&self) {
        self.kill_all();
        for tree in self.trees() {
            remove_cgroup_tree(&tree);
        }
    }
}

impl Drop for Outer {
    fn drop(&mut self) {
        self.remove();
    }
}

fn procs_file(leaf: &Path) -> Result<CString> {
    let path = leaf.join("cgroup.procs");
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Environment(format!("{} contains a NUL byte", path.display())))
}

fn make_dir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Environment(format!(
            "cannot create the checker's cgroup {}: {e} (minibox-check runs as root on a machine with cgroups)",
            dir.display()
        ))),
    }
}

fn write_file(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| Error::io(format!("write {value} to {}", path.display()), e))
}

/// `/sys/fs/cgroup/NAME` and `/sys/fs/cgroup/*/NAME` that exist.
fn trees_named(name: &str) -> Vec<PathBuf> {
    let mut trees = Vec::new();
    let top = Path::new(CGROUP_ROOT).join(name);
    if top.is_dir() && is_cgroup2(CGROUP_ROOT) {
        trees.push(top);
    }
    for entry in fs::read_dir(CGROUP_ROOT).into_iter().flatten().flatten() {
        let dir = entry.path().join(name);
        if dir.is_dir() {
            trees.push(dir);
        }
    }
    trees
}

fn collect_procs(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&entry.path(), pids);
        }
    }
}

fn remove_cgroup_tree(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Cgroups of checker processes that are gone (empty ones only: a process
/// still in one keeps it).
fn remove_dead() {
    let mut hierarchies = vec![PathBuf::from(CGROUP_ROOT)];
    hierarchies.extend(
        fs::read_dir(CGROUP_ROOT)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path()),
    );
    for hierarchy in hierarchies {
        for entry in fs::read_dir(&hierarchy).into_iter().flatten().flatten() {
            if entry.path().is_dir() && dead_owner(&entry.file_name()).is_some() {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_paths_prefer_v1_hierarchies() {
        let text = "5:pids:/a/b\n4:memory:/m\n0::/u\n";
        assert_eq!(controller_path("memory", text).as_deref(), Some("/m"));
        assert_eq!(controller_path("pids", text).as_deref(), Some("/a/b"));
        assert_eq!(controller_path("cpu", text).as_deref(), Some("/u"));
        assert_eq!(
            controller_dir("memory", text),
            Some(PathBuf::from("/sys/fs/cgroup/memory/m"))
        );
    }
}
