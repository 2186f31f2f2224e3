//! Capabilities: root's power, cut into 41 pieces.
//!
//! A process has five capability sets. Three matter for a container:
//!
//! * **bounding**: the most a process and its descendants can ever hold.
//!   Dropping a capability from it cannot be undone, not even by a setuid
//!   root binary. This is the set that makes a container's root weaker
//!   than the host's.
//! * **inheritable** and **ambient**: what passes through `execve` to a
//!   program without file capabilities. Both stay empty: a non-empty
//!   inheritable set let a program with inheritable file capabilities gain
//!   them inside a container (CVE-2022-24769; docker, runc and podman
//!   emptied it).
//!
//! Permitted and effective follow on their own: when uid 0 execs a
//! program the kernel gives it every capability of the bounding set, so
//! after the final `execve` they equal the bounding set.

use crate::error::Result;
use crate::trace;
use nix::errno::Errno;

/// The kernel's names, indexed by capability number (linux/capability.h).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The 14 capabilities docker leaves a container by default.
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// A set of capabilities: bit N is capability number N, as in the `CapEff:`
/// line of `/proc/PID/status` and in `capget(2)`'s two 32-bit words.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Caps(pub(crate) u64);

impl Caps {
    /// No capability.
    pub const fn empty() -> Caps {
        Caps(0)
    }

    /// Every capability this table knows (0 to 40).
    pub const fn all() -> Caps {
        Caps((1u64 << NAMES.len()) - 1)
    }

    /// The set whose bit N is capability N (`0xa80425fb` is docker's 14).
    pub const fn from_bits(bits: u64) -> Caps {
        Caps(bits)
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    /// docker's default set: `00000000a80425fb`.
    pub fn docker_default() -> Caps {
        DOCKER_DEFAULT
            .iter()
            .filter_map(|name| number(name))
            .fold(Caps::empty(), Caps::with)
    }

    /// This set plus capability `number`.
    pub const fn with(self, number: u8) -> Caps {
        if number < 64 {
            Caps(self.0 | (1u64 << number))
        } else {
            self
        }
    }

    /// This set without capability `number`.
    pub const fn without(self, number: u8) -> Caps {
        if number < 64 {
            Caps(self.0 & !(1u64 << number))
        } else {
            self
        }
    }

    pub const fn contains(self, number: u8) -> bool {
        number < 64 && self.0 & (1u64 << number) != 0
    }

    /// Every capability of `other` is in this set.
    pub const fn contains_all(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// Some capability of `other` is in this set.
    pub const fn intersects(self, other: Caps) -> bool {
        self.0 & other.0 != 0
    }

    /// The kernel's names (`CAP_CHOWN`, …), lowest number first.
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(n, _)| self.0 & (1u64 << n) != 0)
            .map(|(_, name)| *name)
            .collect()
    }

    /// The defaults with `--cap-add` and `--cap-drop` applied, as docker
    /// does: drops first, then adds; `ALL` in either means every one.
    pub fn adjust(self, add: &[String], drop: &[String]) -> std::result::Result<Caps, String> {
        let mut set = self;
        for name in drop {
            set = match parse(name)? {
                None => Caps::empty(),
                Some(cap) => set.without(cap),
            };
        }
        for name in add {
            set = match parse(name)? {
                None => Caps::all(),
                Some(cap) => set.with(cap),
            };
        }
        Ok(set)
    }
}

impl std::fmt::Display for Caps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The number of a capability: `CAP_SYS_ADMIN`, `SYS_ADMIN` and
/// `sys_admin` are all 21.
pub fn number(name: &str) -> Option<u8> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES
        .iter()
        .position(|known| *known == full)
        .and_then(|n| u8::try_from(n).ok())
}

/// A `--cap-add`/`--cap-drop` value: `Some(number)`, or `None` for `ALL`.
pub fn parse(name: &str) -> std::result::Result<Option<u8>, String> {
    if name.trim().eq_ignore_ascii_case("ALL") {
        return Ok(None);
    }
    number(name).map(Some).ok_or_else(|| {
        format!(
            "unknown capability {name:?} (see capabilities(7): e.g. NET_ADMIN, SYS_PTRACE, ALL)"
        )
    })
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`).
fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(NAMES.len() as u8 - 1)
}

/// Shrink the bounding set to `keep` and empty the inheritable and ambient
/// sets. Permitted and effective are left alone: init still needs
/// `CAP_SYS_ADMIN` for the seccomp filter it installs after this, and the
/// final `execve` trims them to the bounding set.
pub fn limit_to(keep: Caps) -> Result<()> {
    let last = last_cap();
    let dropped: Vec<u8> = (0..=last).filter(|&cap| !keep.contains(cap)).collect();
    let mut result = Ok(());
    for &cap in &dropped {
        // SAFETY: prctl with integer arguments only.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if let Err(errno) = Errno::result(ret) {
            result = Err(errno);
            break;
        }
    }
    trace::step_shows(
        format!(
            "prctl(PR_CAPBSET_DROP, …) for {} capabilities",
            dropped.len()
        ),
        result,
        |_| Some(format!("CapBnd {keep}")),
    )?;
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    trace::step(
        "prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)",
        Errno::result(ret).map(drop),
    )?;
    let (permitted, effective) = current()?;
    set(permitted, effective, Caps(0))
}

/// This process's permitted and effective sets (`capget`).
pub fn current() -> Result<(Caps, Caps)> {
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and data are valid for writes; version 3 takes two
    // Data entries, which is what we pass.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    Errno::result(ret).map_err(|errno| crate::error::Error::Sys {
        step: "capget()".into(),
        errno,
    })?;
    let join = |lo: u32, hi: u32| Caps(u64::from(lo) | (u64::from(hi) << 32));
    Ok((
        join(data[0].permitted, data[1].permitted),
        join(data[0].effective, data[1].effective),
    ))
}

/// `capset`: this process's permitted, effective and inheritable sets.
pub fn set(permitted: Caps, effective: Caps, inheritable: Caps) -> Result<()> {
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let split = |set: Caps| (set.0 as u32, (set.0 >> 32) as u32);
    let (p, e, i) = (split(permitted), split(effective), split(inheritable));
    let data = [
        Data {
            effective: e.0,
            permitted: p.0,
            inheritable: i.0,
        },
        Data {
            effective: e.1,
            permitted: p.1,
            inheritable: i.1,
        },
    ];
    // SAFETY: header and data are valid for reads; version 3 takes two
    // Data entries.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    trace::step(
        format!("capset(permitted {permitted}, effective {effective}, inheritable {inheritable})"),
        Errno::result(ret).map(drop),
    )
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_default_is_the_mask_docker_shows() {
        assert_eq!(Caps::docker_default().to_string(), "00000000a80425fb");
        assert_eq!(Caps::docker_default(), Caps::from_bits(0xa804_25fb));
        assert_eq!(Caps::docker_default().names().len(), 14);
    }

    #[test]
    fn names_parse_in_every_spelling() {
        assert_eq!(number("SYS_ADMIN"), Some(21));
        assert_eq!(number("cap_sys_admin"), Some(21));
        assert_eq!(number("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(parse("all"), Ok(None));
        assert!(parse("NOPE").unwrap_err().contains("\"NOPE\""));
    }

    #[test]
    fn drops_come_before_adds_as_in_docker() {
        let base = Caps::docker_default();
        let set = base.adjust(&["NET_ADMIN".into()], &["ALL".into()]).unwrap();
        assert_eq!(set.names(), ["CAP_NET_ADMIN"]);
        let set = base.adjust(&[], &["chown".into()]).unwrap();
        assert!(!set.contains(0) && set.contains(number("KILL").unwrap()));
        assert_eq!(base.adjust(&["ALL".into()], &[]).unwrap(), Caps::all());
    }
}
