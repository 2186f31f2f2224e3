//! What init does inside the new root for `run`'s stage 07 flags, after
//! the root's own mounts and before it gives anything up: `--tmpfs`
//! mounts, `--ulimit`s (`prlimit` on itself: the command inherits them
//! across exec), and `-w` (made if missing, as docker does, then entered).
//!
//! Each happens only when its flag was given, so a plain run's trace is
//! the same as before.

use crate::config::InitConfig;
use crate::error::{Error, Result};
use crate::trace;
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// `--tmpfs PATH[:OPTIONS]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tmpfs {
    pub path: PathBuf,
    pub read_only: bool,
    pub noexec: bool,
    pub nosuid: bool,
    pub nodev: bool,
    /// tmpfs's own options, checked: `size=64m,mode=1777,uid=0,…`.
    pub data: String,
}

impl Tmpfs {
    /// docker's default options: `rw,noexec,nosuid,nodev`; each may be
    /// turned around (`exec`, `suid`, `dev`, `ro`), and tmpfs's `size=`,
    /// `mode=`, `uid=`, `gid=`, `nr_inodes=` are passed on.
    pub fn parse(text: &str) -> std::result::Result<Tmpfs, String> {
        let (path, options) = text.split_once(':').unwrap_or((text, ""));
        let path = container_path(path)?;
        let mut tmpfs = Tmpfs {
            path,
            read_only: false,
            noexec: true,
            nosuid: true,
            nodev: true,
            data: String::new(),
        };
        let mut data = Vec::new();
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match option {
                "rw" => tmpfs.read_only = false,
                "ro" => tmpfs.read_only = true,
                "exec" => tmpfs.noexec = false,
                "noexec" => tmpfs.noexec = true,
                "suid" => tmpfs.nosuid = false,
                "nosuid" => tmpfs.nosuid = true,
                "dev" => tmpfs.nodev = false,
                "nodev" => tmpfs.nodev = true,
                other => {
                    let (key, value) = other.split_once('=').unwrap_or((other, ""));
                    let ok = match key {
                        "size" | "nr_inodes" => {
                            crate::cgroups::limits::parse_bytes(value).is_ok()
                                || value.ends_with('%')
                                    && value[..value.len() - 1].parse::<u8>().is_ok()
                        }
                        "mode" => u32::from_str_radix(value, 8).is_ok_and(|m| m <= 0o7777),
                        "uid" | "gid" => value.parse::<u32>().is_ok(),
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "unknown tmpfs option {other:?} (rw, ro, exec, noexec, suid, nosuid, dev, nodev, size=, mode=, uid=, gid=, nr_inodes=)"
                        ));
                    }
                    data.push(other.to_string());
                }
            }
        }
        tmpfs.data = data.join(",");
        Ok(tmpfs)
    }

    /// The options as docker's `inspect` shows them.
    pub fn options(&self) -> String {
        let mut options = vec![if self.read_only { "ro" } else { "rw" }];
        if self.noexec {
            options.push("noexec");
        }
        if self.nosuid {
            options.push("nosuid");
        }
        if self.nodev {
            options.push("nodev");
        }
        if !self.data.is_empty() {
            options.push(&self.data);
        }
        options.join(",")
    }

    fn mount(&self) -> Result<()> {
        use nix::mount::MsFlags;
        make_dirs(&self.path)?;
        let mut flags = MsFlags::empty();
        for (on, flag) in [
            (self.read_only, MsFlags::MS_RDONLY),
            (self.noexec, MsFlags::MS_NOEXEC),
            (self.nosuid, MsFlags::MS_NOSUID),
            (self.nodev, MsFlags::MS_NODEV),
        ] {
            if on {
                flags |= flag;
            }
        }
        trace::step(
            format!(
                "mount(\"tmpfs\", {}, \"tmpfs\", {}, {:?})",
                trace::quote(&self.path),
                self.options(),
                self.data
            ),
            nix::mount::mount(
                Some("tmpfs"),
                &self.path,
                Some("tmpfs"),
                flags,
                Some(self.data.as_str()),
            ),
        )
    }
}

/// An absolute path inside the container, without `..` (`-w`, `--tmpfs`).
pub fn container_path(text: &str) -> std::result::Result<PathBuf, String> {
    let path = PathBuf::from(text);
    if !path.is_absolute() {
        return Err(format!("{text:?} is not an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{text:?} has a '..' in it"));
    }
    if path == Path::new("/") {
        return Err("/ is the container's root itself".into());
    }
    Ok(path)
}

/// `-w`: an absolute path (`/` itself allowed: docker's default).
pub fn parse_workdir(text: &str) -> std::result::Result<PathBuf, String> {
    if text == "/" {
        return Ok(PathBuf::from("/"));
    }
    container_path(text)
}

/// `--ulimit NAME=SOFT[:HARD]`, as docker writes it (`-1`: unlimited).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// The resources `--ulimit` takes: docker's names and the kernel's.
const ULIMITS: [(&str, u32); 16] = [
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
    ("as", libc::RLIMIT_AS),
];

impl Ulimit {
    pub fn parse(text: &str) -> std::result::Result<Ulimit, String> {
        let (name, values) = text
            .split_once('=')
            .ok_or("expected NAME=SOFT[:HARD], like nofile=1024:2048")?;
        if !ULIMITS.iter().any(|(n, _)| *n == name) {
            let names: Vec<&str> = ULIMITS.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "unknown limit {name:?} (one of {})",
                names.join(", ")
            ));
        }
        let number = |v: &str| match v.parse::<i64>() {
            Ok(n) if n >= -1 => Ok(n),
            _ => Err(format!("{v:?} is not a limit (a number, or -1 for none)")),
        };
        let (soft, hard) = match values.split_once(':') {
            Some((soft, hard)) => (number(soft)?, number(hard)?),
            None => (number(values)?, number(values)?),
        };
        let unlimited = |n: i64| if n < 0 { u64::MAX } else { n as u64 };
        if unlimited(soft) > unlimited(hard) {
            return Err(format!("soft limit {soft} is above the hard limit {hard}"));
        }
        Ok(Ulimit {
            name: name.to_string(),
            soft,
            hard,
        })
    }

    fn apply(&self) -> Result<()> {
        let resource = ULIMITS
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, r)| *r)
            .ok_or_else(|| Error::Protocol(format!("unknown ulimit {:?}", self.name)))?;
        let value = |n: i64| {
            if n < 0 {
                libc::RLIM_INFINITY
            } else {
                n as libc::rlim_t
            }
        };
        let limit = libc::rlimit {
            rlim_cur: value(self.soft),
            rlim_max: value(self.hard),
        };
        // SAFETY: prlimit on this process (pid 0) reads `limit`, which
        // outlives the call, and writes nothing (a NULL old limit).
        let ret = unsafe { libc::prlimit(0, resource, &limit, std::ptr::null_mut()) };
        trace::step(
            format!(
                "prlimit(0, RLIMIT_{}, {{{}, {}}})",
                self.name.to_ascii_uppercase(),
                self.soft,
                self.hard
            ),
            nix::errno::Errno::result(ret).map(drop),
        )
    }
}

/// `mkdir -p` inside the container's root (init has pivoted: a symlink in
/// the image resolves inside it).
fn make_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        trace::failed(
            format!("mkdir -p {}", trace::quote(dir)),
            crate::error::errno_of(&e),
        );
        Error::io(format!("create {} in the container", dir.display()), e)
    })?;
    trace::note(format!("mkdir -p {}", trace::quote(dir)), None);
    Ok(())
}

/// init, in the new root: `--tmpfs`, `--ulimit`, `-w`, then `-u` (last:
/// the rest needs root), and `--init` for the exec to come.
pub fn prepare(config: &InitConfig) -> Result<()> {
    // -t: the container's own terminal, before anything changes the user
    // (opening it and binding /dev/console take root).
    if config.terminal {
        crate::console::attach_init()?;
    }
    for tmpfs in &config.tmpfs {
        tmpfs.mount()?;
    }
    for ulimit in &config.ulimits {
        ulimit.apply()?;
    }
    if let Some(dir) = &config.workdir {
        make_dirs(dir)?;
        trace::step(
            format!("chdir({})", trace::quote(dir)),
            nix::unistd::chdir(dir),
        )?;
    }
    if let Some((uid, gid)) = config.user {
        become_user(uid, gid)?;
    }
    if config.init {
        super::reaper::enable();
    }
    Ok(())
}

/// `-u UID[:GID]`: no supplementary groups, the group, then the user
/// (while we still may change the others).
fn become_user(uid: u32, gid: u32) -> Result<()> {
    use nix::unistd::{Gid, Uid};
    trace::step("setgroups([])", nix::unistd::setgroups(&[]))?;
    let gid = Gid::from_raw(gid);
    trace::step(
        format!("setresgid({gid}, {gid}, {gid})"),
        nix::unistd::setresgid(gid, gid, gid),
    )?;
    crate::console::hand_over(uid);
    let uid = Uid::from_raw(uid);
    trace::step(
        format!("setresuid({uid}, {uid}, {uid})"),
        nix::unistd::setresuid(uid, uid, uid),
    )
}

/// `-u UID[:GID]` as docker takes a number: a UID without a group runs in
/// group 0 (docker's default when the image's /etc/passwd does not name
/// it; names come with stage 09).
pub fn parse_user(text: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || "expected UID or UID:GID (numbers; names come with stage 09)".to_string();
    let number = |n: &str| n.parse::<u32>().map_err(|_| bad());
    match text.split_once(':') {
        Some((uid, gid)) => Ok((number(uid)?, number(gid)?)),
        None => Ok((number(text)?, 0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmpfs_options_default_to_dockers() {
        let t = Tmpfs::parse("/run").unwrap();
        assert_eq!(t.options(), "rw,noexec,nosuid,nodev");
        let t = Tmpfs::parse("/cache:exec,size=64m,mode=1770").unwrap();
        assert_eq!(t.options(), "rw,nosuid,nodev,size=64m,mode=1770");
        assert!(!t.noexec);
        for bad in [
            "run",
            "/a/../b",
            "/",
            "/x:bogus",
            "/x:mode=99a",
            "/x:size=lots",
        ] {
            assert!(Tmpfs::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ulimits_take_dockers_form() {
        let u = Ulimit::parse("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (1024, 2048));
        let u = Ulimit::parse("core=-1").unwrap();
        assert_eq!((u.soft, u.hard), (-1, -1));
        for bad in ["nofile", "nofiles=1", "nofile=2:1", "nofile=x", "nofile=-2"] {
            assert!(Ulimit::parse(bad).is_err(), "{bad}");
        }
    }
}
