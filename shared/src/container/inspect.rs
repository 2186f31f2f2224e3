//! `inspect`: a container's record as docker shapes it, and `--format`'s
//! small subset of Go templates (`{{.State.Pid}}`, `{{json .Config}}`).
//!
//! The JSON keeps docker's names and nesting for every field minibox has,
//! so a script written against `docker inspect` reads the same paths here.
//! Fields minibox has no notion of are left out rather than faked.

use super::state::{self, Condition, ContainerState};
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};

/// The JSON object `docker inspect` prints for a container.
pub fn to_json(c: &ContainerState) -> Value {
    let condition = c.condition();
    let running = condition == Condition::Running;
    let status = match condition {
        Condition::Starting => "created",
        Condition::Running if c.paused => "paused",
        Condition::Running => "running",
        Condition::Exited => "exited",
        Condition::Dead => "dead",
    };
    let pid = c
        .init
        .as_ref()
        .filter(|_| running)
        .map_or(0, |init| init.pid);
    let entrypoint_len = usize::from(c.entrypoint.is_some());
    let cmd: Vec<&String> = c.command.iter().skip(entrypoint_len).collect();
    let labels: Map<String, Value> = c
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    // docker lists `-v` binds as Mounts, and `--tmpfs` in HostConfig.Tmpfs.
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .filter(|m| m.kind != "tmpfs")
        .map(|m| {
            json!({
                "Type": m.kind,
                "Source": m.source,
                "Destination": m.destination,
                "Mode": if m.read_write { "" } else { "ro" },
                "RW": m.read_write,
                "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
            })
        })
        .collect();
    let tmpfs: Map<String, Value> = c
        .mounts
        .iter()
        .filter(|m| m.kind == "tmpfs")
        .map(|m| (m.destination.clone(), Value::String(m.source.clone())))
        .collect();
    json!({
        "Id": c.id,
        "Created": rfc3339(c.created),
        "Path": c.command.first().cloned().unwrap_or_default(),
        "Args": c.command.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": status,
            "Running": running,
            "Paused": running && c.paused,
            "Restarting": false,
            "OOMKilled": c.oom_killed,
            "Dead": condition == Condition::Dead,
            "Pid": pid,
            "ExitCode": c.exit_code.unwrap_or(0),
            "Error": "",
            "StartedAt": c.started_at.map_or_else(zero_time, rfc3339),
            "FinishedAt": c.finished.map_or_else(zero_time, rfc3339),
        },
        "Image": c.image,
        "LogPath": if state::log_path(&c.id).exists() {
            state::log_path(&c.id).display().to_string()
        } else {
            String::new()
        },
        "Name": format!("/{}", c.name),
        "HostConfig": {
            "AutoRemove": c.auto_remove,
            "Init": c.init_process,
            "CgroupParent": c.cgroup_parent,
            "Memory": c.limits.memory,
            "MemorySwap": c.limits.memory_swap,
            "NanoCpus": c.limits.nano_cpus,
            "CpuShares": c.limits.cpu_shares,
            "CpusetCpus": c.limits.cpuset_cpus,
            "CpusetMems": c.limits.cpuset_mems,
            "PidsLimit": c.limits.pids_limit,
            "Tmpfs": tmpfs,
            "Ulimits": c.ulimits.iter().map(|u| json!({
                "Name": u.name, "Soft": u.soft, "Hard": u.hard,
            })).collect::<Vec<_>>(),
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": c.hostname,
            "User": c.user.map_or_else(String::new, |(uid, gid)| format!("{uid}:{gid}")),
            "Env": c.env,
            "Cmd": cmd,
            "Image": c.image,
            "WorkingDir": c.working_dir.clone().unwrap_or_default(),
            "Entrypoint": c.entrypoint.as_ref().map(|e| vec![e.clone()]),
            "Labels": labels,
            "StopSignal": c.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into()),
            "StopTimeout": c.stop_timeout.unwrap_or(super::stop::DEFAULT_TIMEOUT),
        },
    })
}

/// Go's zero time, which docker prints for "never".
fn zero_time() -> String {
    "0001-01-01T00:00:00Z".into()
}

/// Seconds since the epoch as RFC 3339 in UTC, with nanoseconds as
/// docker prints them (`2026-12-02T06:24:01.123456789Z`).
pub fn rfc3339(seconds: f64) -> String {
    let whole = seconds.max(0.0).floor();
    let nanos = ((seconds.max(0.0) - whole) * 1e9) as u64;
    let secs = whole as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// One piece of a `--format` template.
#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    /// `{{.A.B}}`: the value at that path.
    Field(Vec<String>),
    /// `{{json .A.B}}`: the value at that path, as JSON.
    Json(Vec<String>),
}

/// A `--format` template, checked before anything is looked up (a bad one
/// is a bad command line: exit 125).
#[derive(Clone, Debug, PartialEq)]
pub struct Template(Vec<Piece>);

impl Template {
    /// The subset of Go templates docker users type: `{{.Path.To.Field}}`
    /// and `{{json .Path}}` (or `{{json .}}`) among plain text.
    pub fn parse(text: &str) -> std::result::Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unclosed action in template {text:?}"))?;
            let action = after[..close].trim().trim_matches('-').trim();
            let (json, path) = match action.strip_prefix("json ") {
                Some(path) => (true, path.trim()),
                None => (false, action),
            };
            let path = parse_path(path).ok_or_else(|| {
                format!("{{{{{action}}}}}: only {{{{.Field.Sub}}}} and {{{{json .Field}}}} are understood")
            })?;
            pieces.push(if json {
                Piece::Json(path)
            } else {
                Piece::Field(path)
            });
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// The template filled in from `value`; a path that is not there is
    /// an error naming it, as Go's `map has no entry for key`.
    pub fn render(&self, value: &Value) -> Result<String> {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Field(path) => out.push_str(&go_format(lookup(value, path)?)),
                Piece::Json(path) => out.push_str(&lookup(value, path)?.to_string()),
            }
        }
        Ok(out)
    }
}

impl Template {
    /// The template with each field replaced by the header `name_of` gives
    /// its last name (`{{.ID}}` → `CONTAINER ID`): `ps --format table`'s
    /// first line.
    pub fn header(&self, name_of: impl Fn(&str) -> String) -> String {
        self.0
            .iter()
            .map(|piece| match piece {
                Piece::Text(text) => text.clone(),
                Piece::Field(path) | Piece::Json(path) => {
                    path.last().map_or_else(String::new, |last| name_of(last))
                }
            })
            .collect()
    }

    /// Does the template name `field` (at its top)?
    pub fn names_field(&self, field: &str) -> bool {
        self.0.iter().any(|piece| match piece {
            Piece::Field(path) | Piece::Json(path) => {
                path.first().is_none_or(|first| first == field)
            }
            Piece::Text(_) => false,
        })
    }
}

/// `.State.Pid` → ["State", "Pid"]; `.` → [].
fn parse_path(text: &str) -> Option<Vec<String>> {
    if text == "." {
        return Some(Vec::new());
    }
    let rest = text.strip_prefix('.')?;
    let parts: Vec<String> = rest.split('.').map(String::from).collect();
    let ok = parts
        .iter()
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    ok.then_some(parts)
}

fn lookup<'v>(value: &'v Value, path: &[String]) -> Result<&'v Value> {
    let mut here = value;
    for (i, key) in path.iter().enumerate() {
        here = here.get(key).ok_or_else(|| {
            Error::Usage(format!(
                "template: no field {key:?} at .{}",
                path[..=i].join(".")
            ))
        })?;
    }
    Ok(here)
}

/// As Go's templates print a value: strings bare, `<no value>` for null,
/// `[a b]` for lists, `map[k:v]` for objects.
fn go_format(value: &Value) -> String {
    match value {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_format).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc3339_in_utc() {
        assert_eq!(rfc3339(0.0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400.5), "2000-02-29T00:00:00.500000000Z");
        assert_eq!(rfc3339(1_798_784_640.0), "2027-01-01T06:24:00.000000000Z");
    }

    #[test]
    fn templates_take_paths_and_json() {
        let value = json!({"State": {"Pid": 42, "Running": true}, "Name": "/web",
            "Config": {"Cmd": ["sleep", "9"], "Labels": {"a": "b"}}});
        let render = |t: &str| Template::parse(t).unwrap().render(&value).unwrap();
        assert_eq!(render("{{.State.Pid}}"), "42");
        assert_eq!(render("{{ .Name }} {{.State.Running}}"), "/web true");
        assert_eq!(render("{{.Config.Cmd}}"), "[sleep 9]");
        assert_eq!(render("{{.Config.Labels}}"), "map[a:b]");
        assert_eq!(render("{{json .Config.Cmd}}"), r#"["sleep","9"]"#);
        assert!(Template::parse("{{.State.Pid").is_err());
        assert!(Template::parse("{{if .State}}x{{end}}").is_err());
        let missing = Template::parse("{{.State.Nope}}").unwrap().render(&value);
        assert!(missing.unwrap_err().to_string().contains("Nope"));
    }
}
