//! The limits `run` takes (docker's flags) and how their values are
//! checked. Each parser checks one flag alone, so `-m 100x` fails before
//! anything is created; [`Limits::check`] checks flags against each other.

use crate::error::{Error, Result};
use std::fs;

/// Docker's floor: below this a container cannot even start its runtime.
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;
/// The CFS period `--cpus` is expressed in (docker's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// A limit that may also be "none": `-1` on the command line, `max` in v2
/// files, `-1` in v1 files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    At(u64),
    Unlimited,
}

impl Limit {
    /// As cgroup v2 files spell it.
    pub fn v2(self) -> String {
        match self {
            Limit::At(n) => n.to_string(),
            Limit::Unlimited => "max".into(),
        }
    }

    /// As cgroup v1 files spell it.
    pub fn v1(self) -> String {
        match self {
            Limit::At(n) => n.to_string(),
            Limit::Unlimited => "-1".into(),
        }
    }
}

/// Resource limits, already validated. `None`: the flag was not given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Limits {
    /// Bytes of memory.
    pub memory: Option<u64>,
    /// Memory + swap, in bytes (`--memory-swap`).
    pub memory_swap: Option<Limit>,
    /// CFS quota per [`CPU_PERIOD_US`], from `--cpus`.
    pub cpu_quota_us: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_max: Option<Limit>,
}

impl Limits {
    /// Checks between flags (each flag is checked alone by its parser).
    pub fn check(&self) -> Result<()> {
        match (self.memory, self.memory_swap) {
            (None, Some(_)) => Err(Error::Usage(
                "--memory-swap needs --memory (it is memory plus swap)".into(),
            )),
            (Some(memory), Some(Limit::At(swap))) if swap < memory => Err(Error::Usage(format!(
                "--memory-swap {} is below --memory {}: it counts memory plus swap",
                human_bytes(swap),
                human_bytes(memory)
            ))),
            _ => Ok(()),
        }
    }

    /// Swap beyond memory: none unless `--memory-swap` allows it, so `-m`
    /// means what it says.
    pub fn swap_beyond_memory(&self, memory: u64) -> Limit {
        match self.memory_swap {
            None => Limit::At(0),
            Some(Limit::Unlimited) => Limit::Unlimited,
            Some(Limit::At(total)) => Limit::At(total.saturating_sub(memory)),
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

/// `--memory-swap`: bytes, or `-1` for unlimited swap.
pub fn parse_memory_swap(text: &str) -> std::result::Result<Limit, String> {
    if text.trim() == "-1" {
        return Ok(Limit::Unlimited);
    }
    parse_bytes(text).map(Limit::At)
}

/// `--cpus 0.5` → a quota of 50000 µs per 100000 µs period.
pub fn parse_cpus(text: &str) -> std::result::Result<u64, String> {
    let cpus: f64 = text
        .trim()
        .parse()
        .map_err(|_| "expected a number of CPUs, like 0.5".to_string())?;
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
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
pub fn parse_pids_limit(text: &str) -> std::result::Result<Limit, String> {
    match text.trim() {
        "-1" => Ok(Limit::Unlimited),
        n => match n.parse::<u64>() {
            Ok(0) | Err(_) => Err("expected a positive whole number, or -1 for no limit".into()),
            Ok(limit) => Ok(Limit::At(limit)),
        },
    }
}

/// `--cpuset-cpus 0-1,3`: a valid list whose CPUs this machine has.
pub fn parse_cpuset_cpus(text: &str) -> std::result::Result<String, String> {
    let cpus = parse_id_list(text)?;
    let online_text = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let online = parse_id_list(online_text.trim()).unwrap_or_default();
    if let Some(missing) = cpus.iter().find(|cpu| !online.contains(cpu)) {
        return Err(format!(
            "CPU {missing} is not online here (online: {})",
            online_text.trim()
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

/// `64 MiB`, for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size && bytes % size == 0 {
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
    fn unlimited_is_spelled_per_version() {
        assert_eq!(parse_pids_limit("-1"), Ok(Limit::Unlimited));
        assert_eq!(Limit::Unlimited.v2(), "max");
        assert_eq!(Limit::Unlimited.v1(), "-1");
        assert_eq!(
            parse_memory_swap("128m").map(Limit::v2),
            Ok("134217728".into())
        );
    }
}
