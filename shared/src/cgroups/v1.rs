//! cgroup v1: one tree per controller, one directory per container in each,
//! limits in v1's file names.

use super::{read_trimmed, wait_until, write, write_if_present, Controller, Limits};
use crate::error::Result;
use crate::trace;
use std::path::{Path, PathBuf};

/// Each v1 tree once: cpu and cpuacct may share one tree, and so one
/// directory per container.
pub fn distinct_trees(trees: &[(Controller, PathBuf)]) -> Vec<(Controller, PathBuf)> {
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

/// A new v1 cpuset starts empty; copy the parent's CPUs and memory nodes
/// into it. Checked on every run, not only by the run that made the
/// directory: a concurrent run may have made it a moment ago.
pub fn fill_cpuset(from: &Path, to: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if read_trimmed(&to.join(file))?.is_empty() {
            let value = read_trimmed(&from.join(file))?;
            write(&to.join(file), &value)?;
        }
    }
    Ok(())
}

/// The limits, each in its controller's tree.
pub fn write_limits(dirs: &[(Controller, PathBuf)], limits: &Limits) -> Result<()> {
    for (controller, dir) in dirs {
        match controller {
            Controller::Memory => {
                if let Some(memory) = limits.memory {
                    write(&dir.join("memory.limit_in_bytes"), &memory.to_string())?;
                    // v1 counts memory + swap in one number.
                    let total = match limits.swap_beyond_memory(memory) {
                        super::Limit::At(swap) => super::Limit::At(memory + swap),
                        unlimited => unlimited,
                    };
                    write_if_present(&dir.join("memory.memsw.limit_in_bytes"), &total.v1())?;
                }
            }
            Controller::Cpu => {
                if let Some(quota) = limits.cpu_quota_us {
                    write(
                        &dir.join("cpu.cfs_period_us"),
                        &super::limits::CPU_PERIOD_US.to_string(),
                    )?;
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                if let Some(shares) = limits.cpu_shares {
                    write(&dir.join("cpu.shares"), &shares.to_string())?;
                }
            }
            Controller::Cpuset => {
                // A new v1 cpuset is empty, and a process cannot join an
                // empty cpuset (ENOSPC): fill it in.
                let above = dir.parent().unwrap_or(dir).to_path_buf();
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
            Controller::Pids => {
                if let Some(pids) = limits.pids_max {
                    write(&dir.join("pids.max"), &pids.v1())?;
                }
            }
            Controller::Freezer | Controller::Devices => {}
        }
    }
    Ok(())
}

/// The freezer's `freezer.state`: `FREEZING` until every task has stopped,
/// then `FROZEN`.
pub fn set_frozen(dirs: &[(Controller, PathBuf)], frozen: bool) -> Result<()> {
    let Some((_, dir)) = dirs.iter().find(|(c, _)| *c == Controller::Freezer) else {
        return Err(crate::Error::Usage(
            "this machine has no v1 freezer hierarchy: the container cannot be frozen".into(),
        ));
    };
    let state = dir.join("freezer.state");
    let want = if frozen { "FROZEN" } else { "THAWED" };
    write(&state, want)?;
    // A cgroup that went meanwhile (its last process exited once thawed,
    // and its monitor removed it) has nothing left to freeze or thaw.
    wait_until("freezing the container", || {
        read_trimmed(&state).is_ok_and(|s| s == want) || !dir.exists()
    })?;
    trace::note(format!("read {}", state.display()), Some(want.into()));
    Ok(())
}
