//! The verbs that act on a container's processes or record without
//! starting anything: `kill`, `wait`, `rename`, `pause`/`unpause`, `top`,
//! `stats` and `container prune` (docker's meanings, docker's output).
//!
//! Each fails with [`Error::Failed`] (exit 1) when it cannot do what was
//! asked, as docker's do; a bad command line is clap's (exit 125).

use super::state::{self, Condition, ContainerState, Entry};
use super::Extension;
use crate::cgroups::{Cgroup, Controller, Hierarchy};
use crate::error::{Error, Result};
use crate::process::PidFd;
use nix::sys::signal::Signal;
use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A running container, or why not (not running, still starting).
pub fn running(name: &str) -> Result<ContainerState> {
    let container = state::find(name)?;
    match container.condition() {
        Condition::Running => Ok(container),
        Condition::Starting => Err(Error::StillStarting(container.name)),
        Condition::Exited | Condition::Dead => Err(Error::NotRunning(container.name)),
    }
}

fn cgroup_of(container: &ContainerState) -> Result<Cgroup> {
    Ok(Cgroup::existing(
        Hierarchy::detect()?,
        &container.cgroup_parent,
        &container.id,
    ))
}

/// `kill [-s SIG]`: send the container's PID 1 a signal (SIGKILL unless
/// told). PID 1 of a namespace ignores signals it has no handler for, as
/// in docker. A paused container is thawed after, so the signal lands.
pub fn kill(name: &str, signal: Signal) -> Result<()> {
    let container = running(name)?;
    let pidfd = container
        .init
        .as_ref()
        .map(PidFd::open)
        .transpose()?
        .flatten()
        .ok_or_else(|| Error::NotRunning(container.name.clone()))?;
    pidfd.signal(signal)?;
    thaw_if_paused(&container)
}

/// Thaw a paused container (its record read afresh): `kill`, `stop` and
/// `rm -f` send their signal first, then let the container receive it.
pub fn thaw_if_paused(container: &ContainerState) -> Result<()> {
    if !state::load(&container.id).is_ok_and(|c| c.paused) {
        return Ok(());
    }
    cgroup_of(container)?.set_frozen(false)?;
    match state::update(&container.id, |c| {
        c.paused = false;
        Ok(())
    }) {
        // Thawed, it may have exited and (with --rm) taken its record along.
        Err(_) if !state::exists(&container.id) => Ok(()),
        other => other.map(drop),
    }
}

/// `wait`: block until the container has exited; its exit code.
///
/// A `--rm` container takes its record along as it exits. docker's `wait`
/// still prints its code, and so does this one: before waiting it opens
/// the file the container's run writes the code to just before it removes
/// the directory (both under the [`StateLock`](crate::lock::StateLock), so
/// the directory is either whole or gone), and reads it from there.
pub fn wait(name: &str) -> Result<i32> {
    let container = state::find(name)?;
    let code_file = match container.auto_remove {
        true => Some(open_exit_code(&container)?),
        false => None,
    };
    // Its run (or monitor) holds the lock until the end is recorded.
    super::stop::wait_for_monitor(&container.id)?;
    let Ok(ended) = state::load(&container.id) else {
        let mut text = String::new();
        if let Some(mut file) = code_file {
            use std::io::Read;
            let _ = file.read_to_string(&mut text);
        }
        return text.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "container {} was removed without an exit code (its run was killed)",
                container.name
            ))
        });
    };
    match (ended.condition(), ended.exit_code) {
        (Condition::Exited, Some(code)) => Ok(code),
        _ => Err(Error::Usage(format!(
            "container {} died with its run: no exit code was recorded",
            ended.name
        ))),
    }
}

/// The file a `--rm` container's exit code will be written to, opened (and
/// made, if need be) while its directory surely exists.
fn open_exit_code(container: &ContainerState) -> Result<fs::File> {
    let _lock = crate::lock::StateLock::acquire()?;
    if !state::exists(&container.id) {
        return Err(Error::NoSuchContainer(container.name.clone()));
    }
    let path = state::exit_code_path(&container.id);
    fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// `rename OLD NEW` (NEW checked on the command line like `--name`).
pub fn rename(old: &str, new: &str) -> Result<()> {
    let container = state::find(old)?;
    state::update(&container.id, |record| {
        if record.name == new {
            return Err(Error::Usage(format!(
                "container {} is already called {new}",
                record.id
            )));
        }
        for other in state::list() {
            if let Entry::Ok(other) = other {
                if other.id != record.id && (other.name == new || other.id == new) {
                    return Err(Error::NameInUse {
                        name: new.to_string(),
                        id: other.id.clone(),
                    });
                }
            }
        }
        record.name = new.to_string();
        Ok(())
    })
    .map(drop)
}

/// `pause` (true) / `unpause` (false): freeze or thaw every process of the
/// container's cgroup; `ps` shows it `(Paused)` meanwhile and `exec` is
/// refused.
pub fn set_paused(name: &str, paused: bool) -> Result<()> {
    let container = running(name)?;
    match (container.paused, paused) {
        (true, true) => {
            return Err(Error::Usage(format!(
                "container {} is already paused",
                container.name
            )))
        }
        (false, false) => return Err(Error::NotPaused(container.name)),
        _ => {}
    }
    cgroup_of(&container)?.set_frozen(paused)?;
    state::update(&container.id, |c| {
        // It may have been killed meanwhile: an exited container is not paused.
        c.paused = paused && c.status == state::Status::Running;
        Ok(())
    })
    .map(drop)
}

/// `container prune`: remove every container that is not running. The
/// ids removed and the bytes their layers and logs took.
pub fn prune(extensions: &[&dyn Extension]) -> Result<(Vec<String>, u64)> {
    let mut removed = Vec::new();
    let mut bytes = 0;
    for entry in state::list() {
        let id = match entry {
            Entry::Ok(c) if matches!(c.condition(), Condition::Exited | Condition::Dead) => c.id,
            Entry::Broken { id, .. } => id,
            Entry::Ok(_) => continue,
        };
        let size = disk_usage(&crate::layer::container_dir(&id));
        if super::remove(&id, false, extensions).is_ok() {
            removed.push(id);
            bytes += size;
        }
    }
    Ok((removed, bytes))
}

pub(crate) use crate::image::disk_usage;

/// docker's sizes: `1.5MiB`, `64MiB`, `0B` (go-units' BytesSize).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    // Go's %.4g: four significant digits, no trailing zeros.
    let digits = if value >= 1000.0 {
        0
    } else if value >= 100.0 {
        1
    } else if value >= 10.0 {
        2
    } else {
        3
    };
    let mut text = format!("{value:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// One process of a container, as `top` shows it.
struct Process {
    uid: u32,
    pid: i32,
    ppid: i32,
    /// Its pid inside the container's PID namespace.
    container_pid: String,
    /// CPU time, in clock ticks.
    cpu_ticks: u64,
    command: String,
}

fn process(pid: i32) -> Option<Process> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let uid = field("Uid:")?.split_whitespace().next()?.parse().ok()?;
    let ppid = field("PPid:")?.parse().ok()?;
    let container_pid = field("NSpid:")
        .and_then(|ns| ns.split_whitespace().last())
        .unwrap_or("-")
        .to_string();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the name.
    let ticks = |i: usize| after_name.get(i).and_then(|f| f.parse::<u64>().ok());
    let cpu_ticks = ticks(11)? + ticks(12)?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = if cmdline.is_empty() {
        // A kernel thread or a zombie: ps shows the name in brackets.
        let name = stat.get(stat.find('(')? + 1..stat.rfind(')')?)?;
        format!("[{name}]")
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    Some(Process {
        uid,
        pid,
        ppid,
        container_pid,
        cpu_ticks,
        command,
    })
}

/// The host's user names (`/etc/passwd`), as `ps` on the host shows them.
fn host_user(uid: u32) -> String {
    fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.get(2)? == &uid.to_string().as_str()).then(|| fields[0].to_string())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// `top`: the container's processes, with their host pids (PID, PPID) and
/// their pids inside the container (CONTAINER PID).
pub fn top(name: &str) -> Result<String> {
    let container = running(name)?;
    let pids = cgroup_of(&container)?.processes()?;
    let hz = clock_ticks();
    let mut rows = vec![["UID", "PID", "PPID", "CONTAINER PID", "TIME", "CMD"].map(String::from)];
    let mut processes: Vec<Process> = pids.into_iter().filter_map(process).collect();
    processes.sort_by_key(|p| p.pid);
    for p in processes {
        let seconds = p.cpu_ticks / hz;
        rows.push([
            host_user(p.uid),
            p.pid.to_string(),
            p.ppid.to_string(),
            p.container_pid,
            format!(
                "{:02}:{:02}:{:02}",
                seconds / 3600,
                seconds / 60 % 60,
                seconds % 60
            ),
            p.command,
        ]);
    }
    Ok(table(rows.iter().map(|r| r.to_vec()).collect()))
}

/// Columns padded to their widest cell, three spaces apart (as `ps`).
pub fn table(rows: Vec<Vec<String>>) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// What a container's cgroup says at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    /// CPU time used, in nanoseconds.
    cpu_ns: u64,
    memory: u64,
    limit: u64,
    pids: u64,
}

fn read_number(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn stat_field(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|n| n.trim().parse().ok())
    })
}

/// The host's memory, which docker shows as the limit of an unlimited container.
fn host_memory() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .map_or(0, |kib: u64| kib * 1024)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 nearly everywhere).
fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    }
}

/// CPU time of the cgroup's processes and of the children they reaped
/// (fields 14 to 17 of `/proc/PID/stat`), in nanoseconds.
fn process_cpu_ns(cgroup: &Cgroup) -> u64 {
    let ticks: u64 = cgroup
        .processes()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields: Vec<u64> = stat
                .get(stat.rfind(')')? + 2..)?
                .split(' ')
                .skip(11)
                .take(4)
                .filter_map(|f| f.parse().ok())
                .collect();
            Some(fields.iter().sum::<u64>())
        })
        .sum();
    ticks * (1_000_000_000 / clock_ticks())
}

fn sample(cgroup: &Cgroup) -> Sample {
    let host = host_memory();
    let memory_dir = cgroup.controller_dir(Controller::Memory);
    let cpu_dir = cgroup.controller_dir(Controller::Cpu);
    let pids_dir = cgroup.controller_dir(Controller::Pids);
    let unified = cgroup.unified_dir().is_some();
    let (cpu_ns, memory, limit) = if unified {
        let dir = memory_dir.unwrap_or_default();
        let cpu = stat_field(&dir.join("cpu.stat"), "usage_usec").map_or(0, |us| us * 1000);
        let usage = read_number(&dir.join("memory.current")).unwrap_or(0);
        // docker leaves out the page cache the kernel can drop.
        let inactive = stat_field(&dir.join("memory.stat"), "inactive_file").unwrap_or(0);
        let limit = read_number(&dir.join("memory.max")).unwrap_or(host);
        (cpu, usage.saturating_sub(inactive), limit)
    } else {
        // cpuacct shares the cpu tree on most v1 machines; where it is a
        // tree of its own, which containers do not join, the container's
        // processes' own counts (children they reaped included) stand in.
        let cpu = cpu_dir
            .and_then(|d| read_number(&d.join("cpuacct.usage")))
            .unwrap_or_else(|| process_cpu_ns(cgroup));
        let dir = memory_dir.unwrap_or_default();
        let usage = read_number(&dir.join("memory.usage_in_bytes")).unwrap_or(0);
        let inactive = stat_field(&dir.join("memory.stat"), "total_inactive_file").unwrap_or(0);
        let limit = read_number(&dir.join("memory.limit_in_bytes")).unwrap_or(host);
        (cpu, usage.saturating_sub(inactive), limit)
    };
    let pids = pids_dir
        .and_then(|d| read_number(&d.join("pids.current")))
        .unwrap_or(0);
    Sample {
        cpu_ns,
        memory,
        limit: if limit == 0 || limit > host {
            host
        } else {
            limit
        },
        pids,
    }
}

/// `stats --no-stream`: one table of CPU %, memory and PIDs per container
/// (the running ones, or those named; `-a`: all). CPU % is measured over
/// half a second, as a share of one CPU (docker's meaning: 200% is two).
pub fn stats(names: &[String], all: bool) -> Result<String> {
    let containers: Vec<ContainerState> = if names.is_empty() {
        state::list()
            .into_iter()
            .filter_map(|e| match e {
                Entry::Ok(c) if all || c.condition() == Condition::Running => Some(*c),
                _ => None,
            })
            .collect()
    } else {
        names
            .iter()
            .map(|n| state::find(n))
            .collect::<Result<_>>()?
    };
    let hierarchy = Hierarchy::detect()?;
    let cgroups: Vec<Option<Cgroup>> = containers
        .iter()
        .map(|c| {
            (c.condition() == Condition::Running)
                .then(|| Cgroup::existing(hierarchy.clone(), &c.cgroup_parent, &c.id))
        })
        .collect();
    let first: Vec<Option<Sample>> = cgroups.iter().map(|c| c.as_ref().map(sample)).collect();
    let start = Instant::now();
    if first.iter().any(Option::is_some) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let elapsed = start.elapsed().as_nanos().max(1) as f64;
    let mut rows = vec![[
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "PIDS",
    ]
    .map(String::from)
    .to_vec()];
    for ((container, cgroup), before) in containers.iter().zip(&cgroups).zip(first) {
        let (now, before) = match (cgroup, before) {
            (Some(cgroup), Some(before)) => (sample(cgroup), before),
            _ => (Sample::default(), Sample::default()),
        };
        let cpu = now.cpu_ns.saturating_sub(before.cpu_ns) as f64 / elapsed * 100.0;
        let mem_percent = match now.limit {
            0 => 0.0,
            limit => now.memory as f64 / limit as f64 * 100.0,
        };
        rows.push(vec![
            container.id.clone(),
            container.name.clone(),
            format!("{cpu:.2}%"),
            format!("{} / {}", human_size(now.memory), human_size(now.limit)),
            format!("{mem_percent:.2}%"),
            now.pids.to_string(),
        ]);
    }
    Ok(table(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1536), "1.5KiB");
        assert_eq!(human_size(64 << 20), "64MiB");
        assert_eq!(human_size(1_288_490_189), "1.2GiB");
        assert_eq!(human_size(1023), "1023B");
    }
}
