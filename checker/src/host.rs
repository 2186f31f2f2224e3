//! What only the host can see: its own namespaces, host name, root and
//! mount table, to compare the container's with.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

/// The host's side of every comparison.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// Namespace inodes of the checker itself (the host's).
    pub ns: BTreeMap<String, u64>,
    pub hostname: String,
    /// st_dev and st_ino of the host's `/`.
    pub root_dev: u64,
    pub root_ino: u64,
    /// The host's root mount: device ("maj:min") and root within it.
    pub root_mount: Option<(String, String)>,
    /// Peer groups of the host's shared mounts (`shared:N`).
    pub shared_groups: Vec<String>,
}

impl HostFacts {
    pub fn gather() -> Self {
        let mut ns = BTreeMap::new();
        for name in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
            if let Ok(meta) = std::fs::metadata(format!("/proc/self/ns/{name}")) {
                ns.insert(name.to_string(), meta.ino());
            }
        }
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let (root_dev, root_ino) = std::fs::metadata("/").map_or((0, 0), |m| (m.dev(), m.ino()));
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mounts = parse_mountinfo(&mountinfo);
        let root_mount = mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == "/")
            .map(|m| (m.dev.clone(), m.root.clone()));
        let mut shared_groups: Vec<String> = mounts
            .iter()
            .flat_map(|m| m.tags.iter().filter(|t| t.starts_with("shared:")).cloned())
            .collect();
        shared_groups.sort();
        shared_groups.dedup();
        HostFacts {
            ns,
            hostname,
            root_dev,
            root_ino,
            root_mount,
            shared_groups,
        }
    }

    /// `DEV:INO` of the host's root, for the probe's chroot escape.
    pub fn root_arg(&self) -> String {
        format!("{}:{}", self.root_dev, self.root_ino)
    }
}

/// One host mount, the fields the checks compare.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct HostMount {
    pub dev: String,
    pub root: String,
    pub mount_point: String,
    pub tags: Vec<String>,
    pub fstype: String,
    pub source: String,
}

pub fn parse_mountinfo(text: &str) -> Vec<HostMount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let mut rest = after.split(' ');
            Some(HostMount {
                dev: fields.get(2)?.to_string(),
                root: fields.get(3)?.to_string(),
                mount_point: fields.get(4)?.to_string(),
                tags: fields
                    .get(6..)
                    .unwrap_or_default()
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                fstype: rest.next()?.to_string(),
                source: rest.next().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// The host mounts a runtime could leak: those under the checker's work
/// directory, and the places a container mounts its own file systems.
/// (Other mounts come and go with the rest of the machine.)
pub fn watched_mounts(work_dir: &str) -> Vec<String> {
    const WATCHED: [&str; 8] = [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys/fs/cgroup",
    ];
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<String> = parse_mountinfo(&text)
        .into_iter()
        .filter(|m| {
            WATCHED.contains(&m.mount_point.as_str())
                || m.mount_point.starts_with(&format!("{work_dir}/"))
        })
        .map(|m| format!("{} {} {}", m.mount_point, m.fstype, m.source))
        .collect();
    mounts.sort();
    mounts
}

/// What `after` has that `before` did not (as multisets).
pub fn added(before: &[String], after: &[String]) -> Vec<String> {
    let mut remaining = before.to_vec();
    let mut new = Vec::new();
    for mount in after {
        if let Some(i) = remaining.iter().position(|m| m == mount) {
            remaining.swap_remove(i);
        } else {
            new.push(mount.clone());
        }
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_parse() {
        let text = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n";
        let m = &parse_mountinfo(text)[0];
        assert_eq!(m.dev, "98:0");
        assert_eq!(m.root, "/mnt1");
        assert_eq!(m.mount_point, "/mnt2");
        assert_eq!(m.tags, ["master:1", "shared:7"]);
        assert_eq!(m.fstype, "ext3");
    }

    #[test]
    fn added_is_a_multiset_difference() {
        let a = vec!["x".to_string(), "y".to_string()];
        let b = vec!["x".to_string(), "x".to_string(), "y".to_string()];
        assert_eq!(added(&a, &b), ["x"]);
        assert!(added(&b, &a).is_empty());
    }
}
