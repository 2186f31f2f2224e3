//! Container state (stage 07): one directory per container under
//! `$MINIBOX_ROOT/containers/<id>` holding `state.json`, the container's log
//! and its layer.
//!
//! Several shells may run `run`, `ps`, `stop` and `rm` at once, so:
//! * `state.json` is written to a temporary file and *renamed* over the old
//!   one: a reader sees the old state or the new one, never half a file;
//! * changes that must see everyone's state (is this name free?) happen
//!   under one short-held lock, `run/state.lock`;
//! * a stored PID is trusted only together with the process's start time
//!   (field 22 of `/proc/PID/stat`): PIDs are reused, start times are not.

use crate::error::{Error, Result};
use crate::layer::containers_dir;
use crate::paths::{runtime_dir, ContainerLock};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    /// The container's environment, `KEY=VALUE`: `exec` uses it too.
    pub env: Vec<String>,
    pub hostname: String,
    /// The image's root filesystem (overlay lower layer), for `commit`.
    pub lower: PathBuf,
    pub created: f64,
    pub status: Status,
    /// init's host pid and its start time (clock ticks since boot).
    pub pid: Option<i32>,
    pub pid_start: Option<u64>,
    pub exit_code: Option<i32>,
    pub finished: Option<f64>,
    pub oom_killed: bool,
    /// The container's cgroup directories, for `exec` to join.
    pub cgroup_dirs: Vec<PathBuf>,
    pub cgroup_parent: String,
    /// Remove everything when the container exits (`--rm`).
    pub auto_remove: bool,
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn container_dir(id: &str) -> PathBuf {
    containers_dir().join(id)
}

pub fn log_path(id: &str) -> PathBuf {
    container_dir(id).join("container.log")
}

fn state_path(id: &str) -> PathBuf {
    container_dir(id).join("state.json")
}

/// The lock every state change that reads others' state happens under.
pub struct StateLock(#[allow(dead_code)] nix::fcntl::Flock<File>);

pub fn lock() -> Result<StateLock> {
    let dir = runtime_dir();
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let path = dir.join("state.lock");
    let file = File::create(&path).map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map(StateLock)
        .map_err(|(_, errno)| Error::Sys {
            step: format!("flock({})", path.display()),
            errno,
        })
}

impl ContainerState {
    /// Write atomically: a temporary file in the same directory, then rename.
    pub fn save(&self) -> Result<()> {
        let path = state_path(&self.id);
        let tmp = path.with_extension(format!("json.tmp-{}", std::process::id()));
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Protocol(format!("encode state: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::io(format!("write {}", path.display()), e)
        })
    }

    /// Record a new container, refusing a name already in use. Until the
    /// returned reservation is kept, dropping it removes the record again:
    /// a run that fails before its container starts leaves nothing.
    pub fn create(&self) -> Result<Reservation> {
        let _lock = lock()?;
        for other in list() {
            if let Entry::Ok(other) = other {
                if other.name == self.name {
                    return Err(Error::Usage(format!(
                        "the name {:?} is in use by container {}: remove it or pick another --name",
                        self.name, other.id
                    )));
                }
            }
        }
        let dir = container_dir(&self.id);
        fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let reservation = Reservation { dir, kept: false };
        self.save()?;
        Ok(reservation)
    }

    /// Is init still the process we started? (pid *and* start time match)
    pub fn is_running(&self) -> bool {
        match (self.status, self.pid, self.pid_start) {
            (Status::Running, Some(pid), Some(start)) => process_start_time(pid) == Some(start),
            _ => false,
        }
    }

    /// Recorded as running, but its process is gone and no monitor holds
    /// its lock: the monitor died (SIGKILL, a crash) before recording the end.
    pub fn is_dead(&self) -> bool {
        self.status == Status::Running
            && !self.is_running()
            && ContainerLock::owner_alive(&ContainerLock::path(&self.id)) != Some(true)
    }
}

/// See [`ContainerState::create`].
#[derive(Debug)]
pub struct Reservation {
    dir: PathBuf,
    kept: bool,
}

impl Reservation {
    pub fn keep(&mut self) {
        self.kept = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_dir_all(&self.dir);
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

/// `-e KEY=VALUE`.
pub fn parse_env(kv: &str) -> std::result::Result<String, String> {
    match kv.split_once('=') {
        Some((key, _)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
            Ok(kv.to_string())
        }
        _ => Err("expected KEY=VALUE".into()),
    }
}

/// The user's environment: `--env-file` lines first, then `-e` flags,
/// later ones winning.
pub fn environment(flags: &[String], files: &[PathBuf]) -> Result<Vec<String>> {
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

/// `defaults` (PATH, HOSTNAME, HOME, …) overridden by `user`'s KEY=VALUE.
pub fn with_defaults(
    defaults: Vec<std::ffi::OsString>,
    user: &[String],
) -> Vec<std::ffi::OsString> {
    let key = |kv: &str| {
        kv.split_once('=')
            .map_or(kv.to_string(), |(k, _)| k.to_string())
    };
    let mut env: Vec<std::ffi::OsString> = defaults
        .into_iter()
        .filter(|d| !user.iter().any(|u| key(u) == key(&d.to_string_lossy())))
        .collect();
    // Later flags win over earlier ones with the same key.
    for (i, kv) in user.iter().enumerate() {
        if !user[i + 1..].iter().any(|later| key(later) == key(kv)) {
            env.push(kv.into());
        }
    }
    env
}

/// The `PATH` in a container's environment.
pub fn path_of(env: &[String]) -> String {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .map_or(crate::command::DEFAULT_PATH.to_string(), str::to_string)
}

/// The log a detached container writes its stdout and stderr to.
pub fn open_log(id: &str) -> Result<File> {
    let path = log_path(id);
    File::options()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))
}

/// A container directory without a readable state (a crash mid-start).
pub fn is_broken(id: &str) -> bool {
    crate::cgroups::is_container_id(id) && container_dir(id).is_dir() && load(id).is_err()
}

pub fn load(id: &str) -> Result<ContainerState> {
    let path = state_path(id);
    let bytes = fs::read(&path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Protocol(format!("{} is damaged: {e}", path.display())))
}

/// One directory under `containers/`.
#[derive(Debug)]
pub enum Entry {
    Ok(Box<ContainerState>),
    /// A directory without a readable state: left by a crash mid-start.
    Broken {
        id: String,
        reason: String,
    },
}

pub fn list() -> Vec<Entry> {
    let Ok(dirs) = fs::read_dir(containers_dir()) else {
        return Vec::new();
    };
    let mut entries: Vec<Entry> = dirs
        .flatten()
        .filter(|d| d.path().is_dir())
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|id| crate::cgroups::is_container_id(id))
        .map(|id| match load(&id) {
            Ok(state) => Entry::Ok(Box::new(state)),
            Err(err) => Entry::Broken {
                id,
                reason: err.to_string(),
            },
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

/// Find a container by name, id, or unique id prefix.
pub fn find(name_or_id: &str) -> Result<ContainerState> {
    let states: Vec<ContainerState> = list()
        .into_iter()
        .filter_map(|e| match e {
            Entry::Ok(s) => Some(*s),
            Entry::Broken { .. } => None,
        })
        .collect();
    if let Some(state) = states
        .iter()
        .find(|s| s.name == name_or_id || s.id == name_or_id)
    {
        return Ok(state.clone());
    }
    let matches: Vec<&ContainerState> = states
        .iter()
        .filter(|s| s.id.starts_with(name_or_id))
        .collect();
    match matches.as_slice() {
        [one] if !name_or_id.is_empty() => Ok((*one).clone()),
        [] | [_] => {
            // A broken directory may still be named by its id.
            if container_dir(name_or_id).is_dir() && crate::cgroups::is_container_id(name_or_id) {
                return Err(Error::Usage(format!(
                    "container {name_or_id} has no readable state (left by a crash): `rm` removes it"
                )));
            }
            Err(Error::Usage(format!("no such container: {name_or_id}")))
        }
        _ => Err(Error::Usage(format!(
            "{name_or_id:?} matches several containers: give more of the id"
        ))),
    }
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks
/// since boot. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted after its closing parenthesis.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    // after_name starts at field 3, the state; field 22 is 19 further.
    // A zombie has exited, whoever has yet to reap it: not running.
    let mut fields = after_name.split(' ');
    if matches!(fields.next()?, "Z" | "X") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// `Up 3 minutes`, `Exited (137) 10 seconds ago`: docker's STATUS column.
pub fn describe(state: &ContainerState, now: f64) -> String {
    if state.is_running() {
        return format!("Up {}", ago(now - state.created));
    }
    if state.is_dead() {
        return "Dead (its monitor died; `rm` removes it)".into();
    }
    match (state.status, state.exit_code, state.finished) {
        (Status::Exited, Some(code), Some(finished)) => {
            format!("Exited ({code}) {} ago", ago(now - finished))
        }
        (Status::Created, ..) => "Created".into(),
        _ => "Exited".into(),
    }
}

/// `3 minutes`: how long ago, in docker's words.
pub fn describe_age(seconds: f64) -> String {
    ago(seconds)
}

fn ago(seconds: f64) -> String {
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
    fn start_time_survives_odd_command_names() {
        let me = std::process::id() as i32;
        assert!(process_start_time(me).is_some());
        assert_eq!(process_start_time(me), process_start_time(me));
    }

    #[test]
    fn ages_read_like_docker() {
        assert_eq!(ago(0.3), "Less than a second");
        assert_eq!(ago(10.0), "10 seconds");
        assert_eq!(ago(60.0), "1 minute");
        assert_eq!(ago(7200.0), "2 hours");
    }
}
