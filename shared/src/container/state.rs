//! Container records (stage 07): `containers/<id>/state.json`, beside the
//! container's log and layer.
//!
//! Several shells may run `run`, `ps`, `stop` and `rm` at once, so:
//! * `state.json` is written to a temporary file and *renamed* over the old
//!   one: a reader sees the old state or the new one, never half a file;
//! * changes that must see everyone's state (is this name free?) happen
//!   under one short-held lock, the [`StateLock`];
//! * a stored process is trusted only through its [`ProcessStamp`] (pid,
//!   start time and boot id): pids are reused, and after a reboot even a
//!   start time can match a stranger;
//! * whether the run (or monitor) behind a container is alive is told by
//!   its [`ContainerLock`], which it holds for the container's whole life.
//!
//! No fsync: after a crash of the machine the records are out of date
//! anyway (the boot id tells), and a crash of a process cannot lose a
//! renamed file.

use crate::error::{Error, Result};
use crate::layer::{container_dir, containers_dir};
use crate::lock::{ContainerLock, StateLock};
use crate::process::ProcessStamp;
use crate::{id, paths};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// What the record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

/// What is true now: the record, checked against the processes and locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Its run is alive and still setting up.
    Starting,
    Running,
    Exited,
    /// Its run (or monitor) died before recording an end: SIGKILL, a crash,
    /// a reboot. The container died with it (PR_SET_PDEATHSIG); `cleanup`
    /// or `rm` removes what is left.
    Dead,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    /// The environment init exec'd the command with (`exec` uses it too).
    pub env: Vec<String>,
    pub hostname: String,
    /// The image's root filesystem (overlay lower layer), for `commit`.
    pub lower: PathBuf,
    pub created: f64,
    pub status: Status,
    /// The container's init, once it runs.
    pub init: Option<ProcessStamp>,
    pub exit_code: Option<i32>,
    pub finished: Option<f64>,
    pub oom_killed: bool,
    pub cgroup_parent: String,
    /// Remove everything when the container exits (`--rm`).
    pub auto_remove: bool,
    /// When init exec'd the command.
    #[serde(default)]
    pub started_at: Option<f64>,
    /// `--label KEY=VALUE`, shown by `inspect`, filtered by `ps --filter`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Frozen by `pause` (the freezer on v1, `cgroup.freeze` on v2).
    #[serde(default)]
    pub paused: bool,
    /// `--stop-signal`: what `stop` sends first [default: SIGTERM].
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: seconds `stop` waits before SIGKILL [default: 10].
    #[serde(default)]
    pub stop_timeout: Option<u64>,
    /// `-w`: the command's working directory [default: /].
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `--entrypoint`: the program the command's arguments were given to.
    #[serde(default)]
    pub entrypoint: Option<String>,
    /// The cgroup limits it was started with (`inspect`'s HostConfig).
    #[serde(default)]
    pub limits: RecordedLimits,
    /// `-v` volumes and `--tmpfs` mounts (`inspect`'s Mounts).
    #[serde(default)]
    pub mounts: Vec<RecordedMount>,
    /// `--ulimit`s.
    #[serde(default)]
    pub ulimits: Vec<super::inside::Ulimit>,
    /// The flags `run` was given, less those `start` decides (`-d`, `-i`,
    /// `-t`, `--rm`, `--trace`): `start` gives them to `run` again.
    #[serde(default)]
    pub run_flags: Vec<String>,
    /// IMAGE COMMAND… as typed after the flags.
    #[serde(default)]
    pub run_image: Vec<String>,
    /// The directory `run` was typed in: relative paths in its flags
    /// (`-v ./data:/data`, `--env-file`) mean the same to `start`.
    #[serde(default)]
    pub run_dir: Option<PathBuf>,
    /// `-u UID:GID` (stages 07 and 08): `exec` runs as it too.
    #[serde(default)]
    pub user: Option<(u32, u32)>,
    /// `--init`: minibox's init is PID 1, the command its child.
    #[serde(default)]
    pub init_process: bool,
}

/// The limits of a container as `inspect` shows them (docker's units).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedLimits {
    /// Bytes (0: none).
    pub memory: u64,
    /// Bytes of memory plus swap (0: none given, -1: unlimited).
    pub memory_swap: i64,
    /// Billionths of a CPU (`--cpus 0.5`: 500000000).
    pub nano_cpus: u64,
    pub cpu_shares: u64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// 0: none given, -1: unlimited.
    pub pids_limit: i64,
}

/// One mount of a container as `inspect` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedMount {
    /// `bind` or `tmpfs`.
    pub kind: String,
    pub source: String,
    pub destination: String,
    pub read_write: bool,
}

impl RecordedLimits {
    pub fn of(limits: &crate::cgroups::Limits) -> RecordedLimits {
        use crate::cgroups::Limit;
        let signed = |l: Option<Limit>| match l {
            None => 0,
            Some(Limit::Unlimited) => -1,
            Some(Limit::At(n)) => i64::try_from(n).unwrap_or(i64::MAX),
        };
        RecordedLimits {
            memory: limits.memory.unwrap_or(0),
            memory_swap: signed(limits.memory_swap),
            nano_cpus: limits.cpu_quota_us.map_or(0, |q| {
                q.saturating_mul(1_000_000_000) / crate::cgroups::limits::CPU_PERIOD_US
            }),
            cpu_shares: limits.cpu_shares.unwrap_or(0),
            cpuset_cpus: limits.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: limits.cpuset_mems.clone().unwrap_or_default(),
            pids_limit: signed(limits.pids_max),
        }
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn log_path(id: &str) -> PathBuf {
    container_dir(id).join("container.log")
}

/// Where a `--rm` container's exit code is written as it goes: `wait`
/// holds this file open, so it can read the code after the directory is
/// gone (see [`super::control::wait`]).
pub fn exit_code_path(id: &str) -> PathBuf {
    container_dir(id).join("exit-code")
}

fn state_path(id: &str) -> PathBuf {
    container_dir(id).join("state.json")
}

/// Is there a record for `id` (whatever its condition)?
pub fn exists(id: &str) -> bool {
    state_path(id).exists()
}

impl ContainerState {
    /// Write the record (atomically: a temporary file renamed over it).
    pub fn save(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Protocol(format!("encode state: {e}")))?;
        let path = state_path(&self.id);
        let written = paths::write_atomic(&path, &json, false);
        let step = format!("rename(<new state>, {:?})", path.display().to_string());
        let status = format!("{:?}", self.status).to_lowercase();
        match written {
            Ok(()) => {
                crate::trace::note(step, Some(status));
                Ok(())
            }
            Err(err) => {
                if let Error::Io { cause, .. } = &err {
                    crate::trace::failed(step, crate::error::errno_of(cause));
                }
                Err(err)
            }
        }
    }

    /// Record a new container, refusing a name already in use (as a name,
    /// or as another container's id). Until the returned reservation is
    /// kept, dropping it removes the record again: a run that fails before
    /// its container starts leaves nothing.
    pub fn create(&self) -> Result<Reservation> {
        crate::process::checkpoint()?;
        let _lock = StateLock::acquire()?;
        if exists(&self.id) {
            return self.create_again();
        }
        for other in list() {
            if let Entry::Ok(other) = other {
                if other.name == self.name || other.id == self.name || other.name == self.id {
                    return Err(Error::NameInUse {
                        name: self.name.clone(),
                        id: other.id.clone(),
                    });
                }
            }
        }
        paths::state_dir("containers")?;
        let dir = container_dir(&self.id);
        crate::trace::step(
            format!("mkdir({:?}, 0700)", dir.display().to_string()),
            nix::unistd::mkdir(&dir, nix::sys::stat::Mode::from_bits_truncate(0o700)),
        )?;
        let reservation = Reservation {
            dir,
            kept: false,
            before: None,
        };
        self.save()?;
        Ok(reservation)
    }

    /// `start`: the record of a stopped container becomes this one. If the
    /// run fails before the container starts, the old record comes back.
    fn create_again(&self) -> Result<Reservation> {
        let before = load(&self.id)?;
        if matches!(before.condition(), Condition::Running | Condition::Starting) {
            return Err(Error::Usage(format!(
                "container {} is running already",
                before.name
            )));
        }
        let path = state_path(&self.id);
        let bytes =
            fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let reservation = Reservation {
            dir: container_dir(&self.id),
            kept: false,
            before: Some(bytes),
        };
        self.save()?;
        Ok(reservation)
    }

    /// The record checked against reality.
    pub fn condition(&self) -> Condition {
        let run_alive = || ContainerLock::is_held(&self.id) == Some(true);
        match self.status {
            Status::Exited => Condition::Exited,
            Status::Created if run_alive() => Condition::Starting,
            Status::Created => Condition::Dead,
            Status::Running if self.init.as_ref().is_some_and(ProcessStamp::is_alive) => {
                Condition::Running
            }
            // init has exited and its monitor is recording that right now.
            Status::Running if run_alive() => Condition::Running,
            Status::Running => Condition::Dead,
        }
    }

    pub fn is_running(&self) -> bool {
        self.condition() == Condition::Running
            && self.init.as_ref().is_some_and(ProcessStamp::is_alive)
    }
}

/// See [`ContainerState::create`].
#[derive(Debug)]
pub struct Reservation {
    dir: PathBuf,
    kept: bool,
    /// `start`: the record as it was, to put back.
    before: Option<Vec<u8>>,
}

impl Reservation {
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        match (&self.before, self.kept) {
            (_, true) => {}
            (None, false) => {
                let _ = fs::remove_dir_all(&self.dir);
            }
            (Some(before), false) => {
                let _ = paths::write_atomic(&self.dir.join("state.json"), before, false);
            }
        }
    }
}

/// `--name`: like an image name, plus capitals (docker's rule).
pub fn parse_name(name: &str) -> std::result::Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(name.to_string())
    } else {
        Err("use letters, digits, '.', '_' and '-', starting with a letter or digit".into())
    }
}

/// `-e KEY=VALUE`: docker's rule (a key without white space) plus no
/// leading `-`, so `-e -x=1` is refused here, by name, rather than read
/// as a flag by anything later.
pub fn parse_env(kv: &str) -> std::result::Result<String, String> {
    let Some((key, _)) = kv.split_once('=') else {
        return Err("expected KEY=VALUE".into());
    };
    let ok = !key.is_empty()
        && !key.starts_with('-')
        && !key.chars().any(|c| c.is_whitespace() || c == '\0');
    if ok {
        Ok(kv.to_string())
    } else {
        Err(format!(
            "{key:?} is not a variable name (KEY=VALUE, no white space, no leading -)"
        ))
    }
}

/// `--label KEY=VALUE` (or `KEY`, an empty value, as docker).
pub fn parse_label(text: &str) -> std::result::Result<(String, String), String> {
    let (key, value) = text.split_once('=').unwrap_or((text, ""));
    if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{key:?} is not a label key (KEY=VALUE, no white space)"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// The user's environment: `--env-file` lines first, then `-e` flags.
pub fn user_environment(flags: &[String], files: &[PathBuf]) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for file in files {
        let text = fs::read_to_string(file)
            .map_err(|e| Error::io(format!("read --env-file {}", file.display()), e))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            env.push(parse_env(line).map_err(|why| {
                Error::Usage(format!("{} line {}: {why}", file.display(), n + 1))
            })?);
        }
    }
    env.extend(flags.iter().cloned());
    Ok(env)
}

/// What a detached container writes its stdout and stderr to: a pipe
/// whose other end the monitor copies into the log (0600), with each
/// line's time beside it (see [`super::logging`]).
pub fn open_log(id: &str) -> Result<fs::File> {
    super::logging::open(id)
}

/// Change a container's record where others may change it too (`rename`,
/// `pause`, its monitor recording the end): under the [`StateLock`], load
/// it fresh, let `change` edit it, save it. The saved record is returned.
pub fn update(
    id: &str,
    change: impl FnOnce(&mut ContainerState) -> Result<()>,
) -> Result<ContainerState> {
    let _lock = StateLock::acquire()?;
    let mut record = load(id)?;
    change(&mut record)?;
    record.save()?;
    Ok(record)
}

pub fn load(id: &str) -> Result<ContainerState> {
    let path = state_path(id);
    let bytes = fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::StateDamaged {
        id: id.to_string(),
        why: e.to_string(),
    })
}

/// One directory under `containers/`.
#[derive(Debug)]
pub enum Entry {
    Ok(Box<ContainerState>),
    /// A directory without a readable record, and no live run behind it: a
    /// crash mid-start, or a damaged file.
    Broken {
        id: String,
        reason: String,
    },
}

/// Every container directory, newest first. A directory whose run still
/// holds its lock but has not written a record yet is not listed.
pub fn list() -> Vec<Entry> {
    let Ok(dirs) = fs::read_dir(containers_dir()) else {
        return Vec::new();
    };
    let mut entries: Vec<Entry> = dirs
        .flatten()
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|id| id::is_valid(id))
        .filter_map(|id| match load(&id) {
            Ok(state) => Some(Entry::Ok(Box::new(state))),
            Err(_) if ContainerLock::is_held(&id) == Some(true) => None,
            Err(err) => Some(Entry::Broken {
                reason: match err {
                    Error::StateDamaged { why, .. } => format!("damaged record: {why}"),
                    _ => "no record: its run died while starting".into(),
                },
                id,
            }),
        })
        .collect();
    entries.sort_by(|a, b| {
        let created = |e: &Entry| match e {
            Entry::Ok(s) => s.created,
            Entry::Broken { .. } => 0.0,
        };
        created(b).total_cmp(&created(a))
    });
    entries
}

/// What `find` found: a record, or a directory without one.
pub enum Found {
    Ok(Box<ContainerState>),
    Broken(String),
}

/// Find a container by name, id, or unique id prefix.
pub fn find_any(name_or_id: &str) -> Result<Found> {
    let entries = list();
    let id_of = |e: &Entry| match e {
        Entry::Ok(s) => s.id.clone(),
        Entry::Broken { id, .. } => id.clone(),
    };
    if let Some(entry) = entries.iter().find(|e| match e {
        Entry::Ok(s) => s.name == name_or_id || s.id == name_or_id,
        Entry::Broken { id, .. } => id == name_or_id,
    }) {
        return Ok(match entry {
            Entry::Ok(s) => Found::Ok(s.clone()),
            Entry::Broken { id, .. } => Found::Broken(id.clone()),
        });
    }
    let matches: Vec<&Entry> = entries
        .iter()
        .filter(|e| !name_or_id.is_empty() && id_of(e).starts_with(name_or_id))
        .collect();
    match matches.as_slice() {
        [Entry::Ok(s)] => Ok(Found::Ok(s.clone())),
        [Entry::Broken { id, .. }] => Ok(Found::Broken(id.clone())),
        [] => Err(Error::NoSuchContainer(name_or_id.to_string())),
        _ => Err(Error::AmbiguousContainer(name_or_id.to_string())),
    }
}

/// Find a container with a readable record.
pub fn find(name_or_id: &str) -> Result<ContainerState> {
    match find_any(name_or_id)? {
        Found::Ok(state) => Ok(*state),
        Found::Broken(id) => Err(Error::StateDamaged {
            id,
            why: "no readable record".into(),
        }),
    }
}

/// `Up 3 minutes`, `Exited (137) 10 seconds ago`: docker's STATUS column.
pub fn describe(state: &ContainerState, now: f64) -> String {
    match state.condition() {
        Condition::Starting => "Starting".into(),
        Condition::Running if state.paused => format!("Up {} (Paused)", ago(now - state.created)),
        Condition::Running => format!("Up {}", ago(now - state.created)),
        Condition::Dead => "Dead (its run was killed; `cleanup` or `rm` removes it)".into(),
        Condition::Exited => match (state.exit_code, state.finished) {
            (Some(code), Some(finished)) => {
                format!("Exited ({code}) {} ago", ago(now - finished))
            }
            _ => "Exited".into(),
        },
    }
}

/// `3 minutes`: how long ago, in docker's words.
pub fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (n, unit) = match s {
        0..=1 => return "Less than a second".into(),
        2..=59 => (s, "second"),
        60..=3599 => (s / 60, "minute"),
        3600..=86_399 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(ago(0.3), "Less than a second");
        assert_eq!(ago(10.0), "10 seconds");
        assert_eq!(ago(60.0), "1 minute");
        assert_eq!(ago(7200.0), "2 hours");
    }

    #[test]
    fn env_keys_must_be_variable_names() {
        assert_eq!(parse_env("A_1=x=y"), Ok("A_1=x=y".into()));
        assert_eq!(parse_env("EMPTY="), Ok("EMPTY=".into()));
        for bad in ["-x", "-x=1", "=v", "A B=v", "novalue"] {
            assert!(parse_env(bad).is_err(), "{bad}");
        }
    }
}
