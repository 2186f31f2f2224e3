//! The probe (`probe/probe.c`, built by build.rs) and what it reports.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The static probe binary, embedded at build time.
pub const PROBE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe"));

/// The arguments the argv checks send through the runtime, after `--`:
/// each one is a way a runtime can mangle a command line.
pub const ARGV_CASES: [(&str, &[u8]); 7] = [
    ("spaces", b"two  spaces and a tab\tinside "),
    ("quotes", b"it's \"quoted\" \\ and 'single'"),
    ("empty", b""),
    ("newline", b"line one\nline two"),
    ("non-utf8", b"bytes \xff\xfe\x80 end"),
    ("shell", b"$HOME * ; | $(id) `id` ~"),
    ("flags", b"--help"),
];

/// One mount of `/proc/self/mountinfo`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Mount {
    pub id: u64,
    pub parent: u64,
    pub dev: String,
    pub root: String,
    pub mount_point: String,
    pub options: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub fstype: String,
    pub source: String,
    #[serde(default)]
    pub super_options: String,
}

impl Mount {
    pub fn has_option(&self, option: &str) -> bool {
        self.options.split(',').any(|o| o == option)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Process {
    pub pid: i64,
    pub comm: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Escape {
    pub result: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DevEntry {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub major: Option<u64>,
    pub minor: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RootWrite {
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Interface {
    pub name: String,
    pub up: bool,
    #[serde(default)]
    pub ipv4: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    pub iface: String,
    pub gateway: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Network {
    pub interfaces: Option<Vec<Interface>>,
    pub sys_class_net: Option<Vec<String>>,
    pub default_route: Option<Route>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Volume {
    pub token: String,
    pub write_ok: bool,
    pub write_error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Volumes {
    pub rw: Option<Volume>,
    pub ro: Option<Volume>,
}

/// What the probe saw, in `report` and `hold` modes.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub mode: String,
    pub pid: i64,
    pub ppid: i64,
    pub argv_hex: Vec<String>,
    pub hostname: Option<String>,
    pub proc_self_pid: Option<i64>,
    pub processes: Option<Vec<Process>>,
    #[serde(default)]
    pub process_count: u64,
    pub ns: BTreeMap<String, Option<u64>>,
    pub mounts: Option<Vec<Mount>>,
    pub token: Option<String>,
    pub root: Option<FileId>,
    pub root_write: Option<RootWrite>,
    pub escape: Option<Escape>,
    pub dev: Option<Vec<DevEntry>>,
    pub cgroup: Option<Vec<String>>,
    /// Uid, Gid, capabilities, Seccomp, NoNewPrivs, NSpid from /proc/self/status
    /// (null without /proc).
    pub status: Option<BTreeMap<String, String>>,
    /// docker's masked paths: whether each exists in the container.
    #[serde(default)]
    pub masked_paths: BTreeMap<String, bool>,
    /// docker's read-only paths: whether each exists.
    #[serde(default)]
    pub read_only_paths: BTreeMap<String, bool>,
    /// /proc/self/uid_map and gid_map, line by line (null without /proc).
    #[serde(default)]
    pub uid_map: Option<Vec<String>>,
    #[serde(default)]
    pub gid_map: Option<Vec<String>>,
    /// /proc/self/setgroups: "allow" or "deny".
    #[serde(default)]
    pub setgroups: Option<String>,
    #[serde(default)]
    pub net: Network,
    #[serde(default)]
    pub volumes: Volumes,
}

/// One line of an id map: `INSIDE OUTSIDE COUNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inside: u64,
    pub outside: u64,
    pub count: u64,
}

/// The identity map of the initial user namespace.
pub const IDENTITY_MAP: IdRange = IdRange {
    inside: 0,
    outside: 0,
    count: 4_294_967_295,
};

/// The ranges of an id map; lines that do not parse are left out.
pub fn parse_map(lines: &[String]) -> Vec<IdRange> {
    lines
        .iter()
        .filter_map(|line| {
            let mut n = line.split_whitespace().map(|f| f.parse::<u64>().ok());
            Some(IdRange {
                inside: n.next()??,
                outside: n.next()??,
                count: n.next()??,
            })
        })
        .collect()
}

/// The host id an id inside maps to, if the map has it.
pub fn map_id(map: &[IdRange], id: u64) -> Option<u64> {
    map.iter()
        .find(|r| id >= r.inside && id - r.inside < r.count)
        .map(|r| r.outside + (id - r.inside))
}

impl Report {
    /// The arguments as bytes (argv[0] is the probe itself).
    pub fn argv(&self) -> Vec<Vec<u8>> {
        self.argv_hex.iter().map(|h| unhex(h)).collect()
    }

    /// The arguments after the probe's `--`.
    pub fn test_args(&self) -> Option<Vec<Vec<u8>>> {
        let argv = self.argv();
        let dashes = argv.iter().position(|a| a == b"--")?;
        Some(argv[dashes + 1..].to_vec())
    }

    /// The mount a path is on: the last of the longest mount points that
    /// are the path or one of its parents.
    pub fn mount_covering(&self, path: &str) -> Option<&Mount> {
        let mounts = self.mounts.as_ref()?;
        let covers = |m: &&Mount| {
            m.mount_point == path
                || m.mount_point == "/"
                || path.starts_with(&format!("{}/", m.mount_point))
        };
        let longest = mounts
            .iter()
            .filter(covers)
            .map(|m| m.mount_point.len())
            .max()?;
        mounts
            .iter()
            .rev()
            .filter(covers)
            .find(|m| m.mount_point.len() == longest)
    }

    /// A capability set from /proc/self/status, as a bit mask.
    pub fn capabilities(&self, set: &str) -> Option<u64> {
        let hex = self.status.as_ref()?.get(set)?;
        u64::from_str_radix(hex.trim(), 16).ok()
    }

    /// The last mount at a mount point (the one on top).
    pub fn mount_at(&self, mount_point: &str) -> Option<&Mount> {
        self.mounts
            .as_ref()?
            .iter()
            .rev()
            .find(|m| m.mount_point == mount_point)
    }
}

/// `hog` mode: how far the allocation got.
#[derive(Debug, Clone, Deserialize)]
pub struct Hog {
    pub allocated_mib: u64,
    pub done: bool,
    pub error: Option<String>,
}

/// `fork` mode: how many children the kernel allowed.
#[derive(Debug, Clone, Deserialize)]
pub struct Forks {
    pub wanted: u64,
    pub forked: u64,
    pub error: Option<String>,
}

/// The last line of `output` that parses as a probe object of `mode`, with
/// the raw JSON.
pub fn last_object(output: &[u8], mode: &str) -> Option<serde_json::Value> {
    String::from_utf8_lossy(output)
        .lines()
        .rev()
        .filter_map(|line| {
            // A runtime may put its own text before the probe's on a line
            // (a tty, a log prefix): start at the probe's opening brace.
            let start = line.find("{\"probe\":")?;
            serde_json::from_str::<serde_json::Value>(&line[start..]).ok()
        })
        .find(|v| v["mode"] == mode || (mode == "report" && v["mode"] == "hold"))
}

pub fn unhex(hex: &str) -> Vec<u8> {
    hex.as_bytes()
        .chunks(2)
        .filter_map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 16).ok())
        })
        .collect()
}

/// Bytes as a readable string: printable ASCII as is, the rest escaped.
pub fn show_bytes(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_is_a_static_elf() {
        assert_eq!(&PROBE[..4], b"\x7fELF");
        assert!(!crate::rootfs::has_interpreter(PROBE));
    }

    #[test]
    fn a_report_without_proc_parses() {
        // What the probe prints in a chroot without /proc: nulls everywhere.
        let text = r#"{"probe":1,"mode":"report","pid":1,"ppid":0,"argv_hex":["2f70726f6265"],
            "hostname":"h","proc_self_pid":null,"processes":null,"ns":{"pid":null},
            "mounts":null,"token":null,"root":{"dev":1,"ino":2},"root_dotdot":{"dev":1,"ino":2},
            "root_write":null,"escape":{"result":"reached-host-root"},"dev":null,"cgroup":null,
            "visible_limits":{"memory_max":null},"status":null,"uid_map":null,"gid_map":null,
            "net":{"interfaces":null,"sys_class_net":null,"default_route":null},
            "volumes":{"rw":null,"ro":null}}"#;
        let report: Report = serde_json::from_str(text).unwrap();
        assert_eq!(report.pid, 1);
        assert!(report.status.is_none() && report.mounts.is_none());
    }

    #[test]
    fn id_maps_parse_and_map() {
        let lines = [
            "         0       1500          1".to_string(),
            "1 200000 65535".into(),
            "junk".into(),
        ];
        let map = parse_map(&lines);
        assert_eq!(map.len(), 2);
        assert_eq!(map_id(&map, 0), Some(1500));
        assert_eq!(map_id(&map, 65534), Some(265_533));
        assert_eq!(map_id(&map, 65536), None);
        let identity = parse_map(&["0 0 4294967295".to_string()]);
        assert_eq!(identity, [IDENTITY_MAP]);
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex("ff0041"), vec![0xff, 0, b'A']);
        assert_eq!(show_bytes(b"a\"\n\xff"), r#""a\"\n\xff""#);
    }

    #[test]
    fn the_last_report_wins_and_prefixes_are_skipped() {
        let out = b"noise\nlog: {\"probe\":1,\"mode\":\"hog\",\"allocated_mib\":4,\"done\":false}\n{\"probe\":1,\"mode\":\"hog\",\"allocated_mib\":8,\"done\":false}\n";
        let v = last_object(out, "hog").unwrap();
        assert_eq!(v["allocated_mib"], 8);
        assert!(last_object(out, "report").is_none());
    }
}
