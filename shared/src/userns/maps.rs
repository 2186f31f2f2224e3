//! uid/gid maps: which host ids the ids inside a user namespace stand for.
//!
//! A map line is `INSIDE OUTSIDE COUNT`: ids `INSIDE..INSIDE+COUNT` in the
//! namespace are host ids `OUTSIDE..OUTSIDE+COUNT`. Only a process in the
//! *parent* user namespace may write a child's map, once, and only ids it
//! owns: host root may map anything; an ordinary user may map only its own
//! uid, unless the setuid helpers `newuidmap`/`newgidmap` write ranges that
//! `/etc/subuid` and `/etc/subgid` grant it.

use crate::error::{Error, Result};
use crate::trace;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `/etc/subuid` and `/etc/subgid` entry that `just setup` makes for
/// minibox's remapped containers (`--userns=remap` as root).
pub const REMAP_USER: &str = "minibox";
/// How many ids a container gets: 0–65535, as docker and podman give.
pub const RANGE: u32 = 65536;

/// One line of a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdRange {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

impl IdRange {
    /// The host id that `inside` stands for, if the range covers it.
    pub fn to_host(&self, inside: u32) -> Option<u32> {
        (inside >= self.inside && inside - self.inside < self.count)
            .then(|| self.outside + (inside - self.inside))
    }
}

/// Who writes the maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Writer {
    /// run itself, into `/proc/PID/{uid,gid}_map` (as host root, or an
    /// ordinary user mapping only its own ids).
    Direct,
    /// `newuidmap`/`newgidmap` (setuid root, checking /etc/subuid and
    /// /etc/subgid): an ordinary user mapping a range.
    Helpers,
}

/// A container's uid and gid maps and how they get written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMaps {
    pub uids: Vec<IdRange>,
    pub gids: Vec<IdRange>,
    pub writer: Writer,
    /// `/proc/PID/setgroups`: `deny` is required only when an unprivileged
    /// process writes a gid map itself (else it could drop a group it was
    /// denied by: CVE-2014-8989); otherwise `allow`, so `setgroups()` and
    /// so supplementary groups keep working inside.
    pub deny_setgroups: bool,
}

impl IdMaps {
    /// The host uid of container uid `inside` (what a file created by it
    /// is owned by on the host).
    pub fn host_uid(&self, inside: u32) -> Option<u32> {
        self.uids.iter().find_map(|r| r.to_host(inside))
    }

    pub fn host_gid(&self, inside: u32) -> Option<u32> {
        self.gids.iter().find_map(|r| r.to_host(inside))
    }
}

/// One `/etc/subuid`-style line: `NAME_OR_UID:START:COUNT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubRange {
    pub start: u32,
    pub count: u32,
}

/// The ranges `file` grants to `name` (or to the numeric `uid`).
pub fn subordinate_ranges(file: &Path, name: &str, uid: u32) -> Result<Vec<SubRange>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(format!("read {}", file.display()), e)),
    };
    Ok(parse_subordinate(&text, name, uid))
}

fn parse_subordinate(text: &str, name: &str, uid: u32) -> Vec<SubRange> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let owner = fields.next()?;
            let start = fields.next()?.parse().ok()?;
            let count = fields.next()?.parse().ok()?;
            (owner == name || owner.parse::<u32>().ok() == Some(uid))
                .then_some(SubRange { start, count })
        })
        .collect()
}

/// Host root's remapped container: container 0–65535 → the `minibox`
/// range of /etc/subuid and /etc/subgid. Root writes the maps itself.
pub fn remapped_root() -> Result<IdMaps> {
    let fix = "add one: `just setup`, or `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 minibox` after `useradd --system minibox`";
    let pick = |file: &str| -> Result<SubRange> {
        subordinate_ranges(Path::new(file), REMAP_USER, u32::MAX)?
            .into_iter()
            .find(|r| r.count >= RANGE)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--userns=remap needs a range of {RANGE} ids for {REMAP_USER:?} in {file}: {fix}"
                ))
            })
    };
    // MINIBOX_SUBUID/MINIBOX_SUBGID name other files: for tests, and for
    // machines where /etc is not yours to change. (Only root's remap reads
    // them: newuidmap, rootless, reads /etc's.)
    let file = |var: &str, default: &str| {
        std::env::var(var)
            .ok()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| default.to_string())
    };
    let (uids, gids) = (
        pick(&file("MINIBOX_SUBUID", "/etc/subuid"))?,
        pick(&file("MINIBOX_SUBGID", "/etc/subgid"))?,
    );
    Ok(IdMaps {
        uids: vec![IdRange {
            inside: 0,
            outside: uids.start,
            count: RANGE,
        }],
        gids: vec![IdRange {
            inside: 0,
            outside: gids.start,
            count: RANGE,
        }],
        writer: Writer::Direct,
        deny_setgroups: false,
    })
}

/// An ordinary user's container: container root is the user, container
/// 1–65535 a range of /etc/subuid and /etc/subgid granted to the user,
/// written by newuidmap/newgidmap.
pub fn rootless(user: &str, uid: u32, gid: u32) -> Result<IdMaps> {
    for helper in ["newuidmap", "newgidmap"] {
        if which(helper).is_none() {
            return Err(Error::Usage(format!(
                "{helper} is missing: install the `uidmap` package (it writes the id maps of a rootless container)"
            )));
        }
    }
    let pick = |file: &str| -> Result<SubRange> {
        subordinate_ranges(Path::new(file), user, uid)?
            .into_iter()
            .max_by_key(|r| r.count)
            .filter(|r| r.count >= RANGE - 1)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no range of at least {} ids for {user:?} in {file}: add one with `usermod --add-subuids 200000-265535 --add-subgids 200000-265535 {user}`, or run with --userns=single",
                    RANGE - 1
                ))
            })
    };
    let (subuids, subgids) = (pick("/etc/subuid")?, pick("/etc/subgid")?);
    let two = |own: u32, sub: SubRange| {
        vec![
            IdRange {
                inside: 0,
                outside: own,
                count: 1,
            },
            IdRange {
                inside: 1,
                outside: sub.start,
                count: RANGE - 1,
            },
        ]
    };
    Ok(IdMaps {
        uids: two(uid, subuids),
        gids: two(gid, subgids),
        writer: Writer::Helpers,
        deny_setgroups: false,
    })
}

/// The smallest map: container root is the calling user, and no other id
/// exists inside. An unprivileged process may write it itself, and must
/// then deny setgroups.
pub fn single(uid: u32, gid: u32) -> IdMaps {
    let one = |id| {
        vec![IdRange {
            inside: 0,
            outside: id,
            count: 1,
        }]
    };
    IdMaps {
        uids: one(uid),
        gids: one(gid),
        writer: Writer::Direct,
        deny_setgroups: nix::unistd::geteuid().as_raw() != 0,
    }
}

/// `0 100000 65536\n…`: a map as `/proc/PID/uid_map` takes it (one write).
pub fn map_text(ranges: &[IdRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// Write the maps of the process `pid` (in a new user namespace, waiting
/// for them). gid first: the order runc uses, and the one that keeps
/// `setgroups` decidable before any gid exists.
pub fn write(pid: i32, maps: &IdMaps) -> Result<()> {
    match maps.writer {
        Writer::Direct => {
            let setgroups = if maps.deny_setgroups { "deny" } else { "allow" };
            write_proc(pid, "setgroups", setgroups)?;
            write_proc(pid, "gid_map", &map_text(&maps.gids))?;
            write_proc(pid, "uid_map", &map_text(&maps.uids))
        }
        Writer::Helpers => {
            run_helper("newgidmap", pid, &maps.gids)?;
            run_helper("newuidmap", pid, &maps.uids)
        }
    }
}

fn write_proc(pid: i32, file: &str, text: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{file}");
    let result = std::fs::write(&path, text.as_bytes()).map_err(|e| crate::error::errno_of(&e));
    trace::step(
        format!("write({path:?}, {:?})", text.trim_end().replace('\n', "; ")),
        result,
    )
}

fn run_helper(helper: &str, pid: i32, ranges: &[IdRange]) -> Result<()> {
    let mut args = vec![pid.to_string()];
    for r in ranges {
        args.extend([r.inside, r.outside, r.count].map(|n| n.to_string()));
    }
    let shown = format!("{helper} {}", args.join(" "));
    let out = std::process::Command::new(helper)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("run {helper}"), e))?;
    if out.status.success() {
        trace::note(shown, Some("exit 0".into()));
        Ok(())
    } else {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.lines().last().unwrap_or("failed").trim();
        trace::failed(&shown, nix::errno::Errno::EPERM);
        Err(Error::Usage(format!("{helper} refused the map: {why}")))
    }
}

/// `command -v NAME`, without a shell.
fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/bin:/bin".into())
        .to_string_lossy()
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_match_by_name_or_uid() {
        let text = "alice:100000:65536\n1001:200000:65536\nbob:300000:10\nbroken\n";
        assert_eq!(
            parse_subordinate(text, "alice", 1000),
            [SubRange {
                start: 100000,
                count: 65536
            }]
        );
        assert_eq!(parse_subordinate(text, "carol", 1001)[0].start, 200000);
        assert!(parse_subordinate(text, "dave", 1002).is_empty());
    }

    #[test]
    fn maps_translate_ids_and_print_as_the_kernel_reads_them() {
        let maps = IdMaps {
            uids: vec![
                IdRange {
                    inside: 0,
                    outside: 1000,
                    count: 1,
                },
                IdRange {
                    inside: 1,
                    outside: 200000,
                    count: 65535,
                },
            ],
            gids: vec![],
            writer: Writer::Helpers,
            deny_setgroups: false,
        };
        assert_eq!(maps.host_uid(0), Some(1000));
        assert_eq!(maps.host_uid(1), Some(200000));
        assert_eq!(maps.host_uid(65535), Some(265534));
        assert_eq!(maps.host_uid(65536), None);
        assert_eq!(map_text(&maps.uids), "0 1000 1\n1 200000 65535\n");
    }
}
