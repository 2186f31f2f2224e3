//! cgroup v2: one tree, controllers handed down through
//! `cgroup.subtree_control`, limits in v2's file names.

use super::{read_trimmed, wait_until, write, write_if_present, Controller, Limits};
use crate::error::Result;
use crate::trace;
use std::path::Path;

/// The controllers we want that this tree's root offers.
pub fn available_controllers(root: &Path) -> Vec<&'static str> {
    let available = read_trimmed(&root.join("cgroup.controllers")).unwrap_or_default();
    Controller::LIMITED
        .iter()
        .map(|c| c.name())
        .filter(|name| available.split(' ').any(|a| a == *name))
        .collect()
}

/// Enable `wanted` for the children of `dir` (never called on a leaf that
/// holds processes: v2's "no internal processes" rule).
pub fn enable_controllers(dir: &Path, wanted: &[&str]) -> Result<()> {
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

/// The limits, in v2's files of the container's directory.
pub fn write_limits(dir: &Path, limits: &Limits) -> Result<()> {
    if let Some(memory) = limits.memory {
        write(&dir.join("memory.max"), &memory.to_string())?;
        write_if_present(
            &dir.join("memory.swap.max"),
            &limits.swap_beyond_memory(memory).v2(),
        )?;
        // One OOM kill ends the whole container, not a random process in it.
        write(&dir.join("memory.oom.group"), "1")?;
    }
    if let Some(quota) = limits.cpu_quota_us {
        write(
            &dir.join("cpu.max"),
            &format!("{quota} {}", super::limits::CPU_PERIOD_US),
        )?;
    }
    if let Some(shares) = limits.cpu_shares {
        write(
            &dir.join("cpu.weight"),
            &super::limits::shares_to_weight(shares).to_string(),
        )?;
    }
    if let Some(cpus) = &limits.cpuset_cpus {
        write(&dir.join("cpuset.cpus"), cpus)?;
    }
    if let Some(mems) = &limits.cpuset_mems {
        write(&dir.join("cpuset.mems"), mems)?;
    }
    if let Some(pids) = limits.pids_max {
        write(&dir.join("pids.max"), &pids.v2())?;
    }
    Ok(())
}

/// `cgroup.freeze`: the kernel freezes the tasks asynchronously and says
/// so in `cgroup.events` (`frozen 1`).
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<()> {
    write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    let events = dir.join("cgroup.events");
    // A cgroup that went meanwhile (its last process exited once thawed,
    // and its monitor removed it) has nothing left to freeze or thaw.
    wait_until("freezing the container", || {
        read_trimmed(&events).is_ok_and(|text| text.lines().any(|l| l == want)) || !dir.exists()
    })?;
    trace::note(format!("read {}", events.display()), Some(want.into()));
    Ok(())
}
