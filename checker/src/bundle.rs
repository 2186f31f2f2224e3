//! `{bundle}`: an OCI bundle for runc, crun and their kind. The checker
//! starts from `runc spec` (or `crun spec`) and makes it docker-like:
//! docker's capabilities, `/proc` nosuid/noexec/nodev, a writable root,
//! `terminal: false` — plus what the run needs: the probe command, the
//! limits, the volumes, the host name, a cgroup below the checker's.
//! (docker's seccomp profile is not added: see the book.)

use crate::error::{Error, Result};
use crate::rootfs::{VOLUME_RO_TARGET, VOLUME_RW_TARGET};
use serde_json::{json, Value};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// docker's default capability set (moby's `oci/caps/defaults.go`).
pub const DOCKER_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The paths docker masks (moby's `oci/defaults.go`).
pub const DOCKER_MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// What goes into config.json.
pub struct Spec<'a> {
    pub rootfs: &'a Path,
    pub args: &'a [OsString],
    pub hostname: &'a str,
    /// `linux.cgroupsPath`: `/{cgroup_parent}/{name}`.
    pub cgroups_path: String,
    pub memory: u64,
    pub pids: u64,
    pub volume_rw: &'a Path,
    pub volume_ro: &'a Path,
}

/// Write `dir/config.json`.
pub fn write(dir: &Path, spec: &Spec<'_>) -> Result<PathBuf> {
    let config = dir.join("config.json");
    let _ = std::fs::remove_file(&config);
    let mut made = false;
    let mut tried = Vec::new();
    for tool in ["runc", "crun"] {
        match Command::new(tool).arg("spec").current_dir(dir).output() {
            Ok(out) if out.status.success() && config.is_file() => {
                made = true;
                break;
            }
            Ok(out) => tried.push(format!(
                "`{tool} spec` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => tried.push(format!("`{tool} spec`: {e}")),
        }
    }
    if !made {
        return Err(Error::Environment(format!(
            "{{bundle}} starts from `runc spec` or `crun spec`, and neither worked ({}): install runc",
            tried.join("; ")
        )));
    }
    let text = std::fs::read_to_string(&config)
        .map_err(|e| Error::io(format!("read {}", config.display()), e))?;
    let mut value: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: config.clone(),
        source,
    })?;
    edit(&mut value, spec);
    let text = serde_json::to_string_pretty(&value).map_err(|source| Error::Json {
        path: config.clone(),
        source,
    })?;
    std::fs::write(&config, text)
        .map_err(|e| Error::io(format!("write {}", config.display()), e))?;
    Ok(config)
}

/// Make a `runc spec` config docker-like and fill in the run.
pub fn edit(config: &mut Value, spec: &Spec<'_>) {
    let args: Vec<String> = spec
        .args
        .iter()
        // JSON strings are UTF-8: a non-UTF-8 argument cannot travel in
        // config.json (the argv checks mark that not applicable).
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let caps = json!(DOCKER_CAPABILITIES);
    let process = &mut config["process"];
    process["terminal"] = json!(false);
    process["args"] = json!(args);
    process["cwd"] = json!("/");
    process["noNewPrivileges"] = json!(false);
    process["capabilities"] = json!({
        "bounding": caps,
        "effective": caps,
        "permitted": caps,
        "inheritable": [],
    });
    config["root"] = json!({ "path": spec.rootfs, "readonly": false });
    config["hostname"] = json!(spec.hostname);

    let mut mounts = config["mounts"].as_array().cloned().unwrap_or_default();
    for mount in &mut mounts {
        if mount["destination"] == "/proc" {
            mount["options"] = json!(["nosuid", "noexec", "nodev"]);
        }
    }
    mounts.push(json!({
        "destination": VOLUME_RW_TARGET,
        "type": "bind",
        "source": spec.volume_rw,
        "options": ["rbind", "rprivate"],
    }));
    mounts.push(json!({
        "destination": VOLUME_RO_TARGET,
        "type": "bind",
        "source": spec.volume_ro,
        "options": ["rbind", "rprivate", "ro"],
    }));
    config["mounts"] = json!(mounts);

    let linux = &mut config["linux"];
    linux["cgroupsPath"] = json!(spec.cgroups_path);
    // docker masks a few more paths than `runc spec`.
    let mut masked: Vec<Value> = linux["maskedPaths"].as_array().cloned().unwrap_or_default();
    for path in DOCKER_MASKED_PATHS {
        if !masked.iter().any(|m| m == path) {
            masked.push(json!(path));
        }
    }
    linux["maskedPaths"] = json!(masked);
    let resources = &mut linux["resources"];
    resources["memory"] = json!({ "limit": spec.memory, "swap": spec.memory });
    resources["pids"] = json!({ "limit": spec.pids });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runc_spec_becomes_docker_like() {
        let mut config = json!({
            "process": {"terminal": true, "args": ["sh"], "capabilities": {"bounding": ["CAP_KILL"]}},
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"resources": {"devices": []}, "namespaces": [{"type": "pid"}]},
        });
        let args = [OsString::from("/probe"), OsString::from("a b")];
        edit(
            &mut config,
            &Spec {
                rootfs: Path::new("/w/rootfs"),
                args: &args,
                hostname: "h",
                cgroups_path: "/p/n".into(),
                memory: 64 << 20,
                pids: 16,
                volume_rw: Path::new("/w/rw"),
                volume_ro: Path::new("/w/ro"),
            },
        );
        assert_eq!(config["process"]["terminal"], false);
        assert_eq!(config["process"]["args"], json!(["/probe", "a b"]));
        assert_eq!(
            config["process"]["capabilities"]["bounding"]
                .as_array()
                .map(Vec::len),
            Some(14)
        );
        assert_eq!(
            config["root"],
            json!({"path": "/w/rootfs", "readonly": false})
        );
        assert_eq!(
            config["mounts"][0]["options"],
            json!(["nosuid", "noexec", "nodev"])
        );
        assert_eq!(
            config["mounts"][2]["options"],
            json!(["rbind", "rprivate", "ro"])
        );
        assert_eq!(config["linux"]["resources"]["pids"]["limit"], 16);
        assert_eq!(config["linux"]["resources"]["devices"], json!([]));
        assert_eq!(config["linux"]["namespaces"], json!([{"type": "pid"}]));
        assert_eq!(config["linux"]["cgroupsPath"], "/p/n");
    }
}
