//! The runtime under test: a template given with `--runtime`, or a preset
//! (minibox's stages, runc, crun, bwrap).

use crate::checks::LAST_STAGE;
use crate::error::{Error, Result};
use crate::template::Template;
use std::path::{Path, PathBuf};

/// The commands around a detached container (stage 07). Only presets
/// have them: a `--runtime` template describes a foreground run.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    /// Start in the background; print an id.
    pub detach: Template,
    /// Print what the container wrote, following it until it exits.
    pub logs: Template,
    /// List containers, exited ones too.
    pub ps_all: Template,
    /// List running containers.
    pub ps: Template,
    pub stop: Template,
    pub rm: Template,
}

#[derive(Debug, Clone)]
pub struct Runtime {
    /// How the output names it: "minibox 04-pivot-root", "runc", "custom".
    pub label: String,
    pub template: Template,
    /// `{minibox}`: the stage binary, for the minibox presets.
    pub minibox: Option<PathBuf>,
    pub lifecycle: Option<Lifecycle>,
    /// Checks that do not apply to this runtime, and why.
    pub not_applicable: Vec<(&'static str, &'static str)>,
}

/// The presets `--runtime` accepts by name.
pub const PRESETS: [(&str, &str); 5] = [
    (
        "minibox",
        "minibox's own binary for the stage checked (target/debug/NN-*)",
    ),
    (
        "minibox:N",
        "minibox's stage N binary, checked against the stage asked for",
    ),
    ("runc", "runc, from a docker-like bundle the checker writes"),
    ("crun", "crun, from the same bundle"),
    (
        "bwrap",
        "bubblewrap: a sandbox, not a container runtime (a partial example)",
    ),
];

const OCI_LIFECYCLE: &str = "an OCI runtime has run -d, list, kill and delete but keeps no logs: the lifecycle of stage 07 is the engine's (containerd, podman)";

const OCI_NO_USERNS: &str = "the checker's bundle, like docker's default, has no user namespace (docker needs --userns-remap for one): an OCI runtime makes one only when config.json asks for it";

const OCI_NOT_APPLICABLE: [(&str, &str); 15] = [
    (
        "09.seccomp",
        "the checker's bundle carries no seccomp profile: docker's default profile is the engine's to add, runc applies what config.json gives it",
    ),
    ("07.detach", OCI_LIFECYCLE),
    ("07.ps", OCI_LIFECYCLE),
    ("07.logs", OCI_LIFECYCLE),
    ("07.stop", OCI_LIFECYCLE),
    ("07.rm", OCI_LIFECYCLE),
    (
        "03.argv-non-utf8",
        "an OCI config.json is JSON: process.args cannot carry non-UTF-8 bytes",
    ),
    (
        "06.image-unchanged",
        "an OCI runtime runs a prepared bundle: image layers are the engine's job (containerd, podman)",
    ),
    (
        "08.net-eth0",
        "an OCI runtime only makes the empty network namespace: interfaces are the engine's job (CNI)",
    ),
    (
        "08.net-route",
        "an OCI runtime only makes the empty network namespace: routes are the engine's job (CNI)",
    ),
    ("10.userns", OCI_NO_USERNS),
    ("10.root-unmapped", OCI_NO_USERNS),
    ("10.id-range", OCI_NO_USERNS),
    ("10.setgroups", OCI_NO_USERNS),
    ("10.volume-owner", OCI_NO_USERNS),
];

impl Runtime {
    /// `--runtime VALUE` (a preset name or a template); `stage` is the
    /// stage checked, `bin_dir` where minibox's stage binaries are.
    pub fn resolve(value: Option<&str>, stage: u8, bin_dir: &Path) -> Result<Self> {
        let value = value.unwrap_or("minibox");
        if value == "minibox" {
            return minibox(stage, bin_dir);
        }
        if let Some(n) = value.strip_prefix("minibox:") {
            let n: u8 = n
                .parse()
                .ok()
                .filter(|n| (1..=LAST_STAGE).contains(n))
                .ok_or_else(|| Error::Usage(format!("{value}: N is a stage, 1 to {LAST_STAGE}")))?;
            return minibox(n, bin_dir);
        }
        match value {
            "runc" | "crun" => oci(value),
            "bwrap" => Ok(Runtime {
                label: "bwrap".into(),
                template: Template::parse(BWRAP)?,
                minibox: None,
                lifecycle: None,
                not_applicable: Vec::new(),
            }),
            _ if !value.contains(char::is_whitespace) && !value.contains('{') => {
                Err(Error::Usage(format!(
                    "unknown runtime {value:?}: a preset ({}) or a template with placeholders, like './my-runtime run {{rootfs}} {{cmd}}'",
                    PRESETS.iter().map(|(p, _)| *p).collect::<Vec<_>>().join(", ")
                )))
            }
            _ => {
                let template = Template::parse(value)?;
                template.validate_for_run()?;
                Ok(Runtime {
                    label: "custom template".into(),
                    template,
                    minibox: None,
                    lifecycle: None,
                    not_applicable: Vec::new(),
                })
            }
        }
    }

    /// Why a check does not apply to this runtime, if it does not.
    pub fn not_applicable(&self, check: &str) -> Option<&'static str> {
        self.not_applicable
            .iter()
            .find(|(id, _)| *id == check)
            .map(|(_, why)| *why)
    }
}

/// The bwrap template: every namespace, the rootfs bound at `/`, a fresh
/// `/proc` and a minimal `/dev`, the volumes.
pub const BWRAP: &str = "bwrap --unshare-all --die-with-parent --bind {rootfs} / --proc /proc --dev /dev --hostname {hostname} --bind {volume_rw} /vol/rw --ro-bind {volume_ro} /vol/ro -- {cmd}";

fn oci(tool: &str) -> Result<Runtime> {
    let template = Template::parse(&format!(
        "{tool} --root {{state}} run --bundle {{bundle}} {{name}}"
    ))?;
    Ok(Runtime {
        label: tool.to_string(),
        template,
        minibox: None,
        lifecycle: None,
        not_applicable: OCI_NOT_APPLICABLE.to_vec(),
    })
}

/// The stage binary `NN-*` in `bin_dir`.
pub fn minibox_binary(stage: u8, bin_dir: &Path) -> Result<PathBuf> {
    let prefix = format!("{stage:02}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(bin_dir)
        .map_err(|e| Error::io(format!("list {}", bin_dir.display()), e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_none()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && !n.contains('.'))
        })
        .collect();
    found.sort();
    found.into_iter().next().ok_or_else(|| {
        Error::Usage(format!(
            "no minibox stage {stage:02} binary in {} (build it: cargo build --workspace; or check another runtime with --runtime)",
            bin_dir.display()
        ))
    })
}

/// The minibox preset for stage binary `n`: the flags that stage has.
fn minibox(n: u8, bin_dir: &Path) -> Result<Runtime> {
    let binary = minibox_binary(n, bin_dir)?;
    let mut flags = String::from("--trace off --hostname {hostname}");
    if n >= 5 {
        flags.push_str(
            " -m {memory} --memory-swap {memory} --pids-limit {pids} --cgroup-parent {cgroup_parent}",
        );
    }
    if n >= 6 {
        flags.push_str(" -v {volume_rw}:/vol/rw -v {volume_ro}:/vol/ro:ro");
    }
    if n >= 8 {
        flags.push_str(" --network {network}");
    }
    let template = match n {
        1..=3 => format!("{{minibox}} run {flags} -- {{host_cmd}}"),
        4..=6 => format!("{{minibox}} run {flags} --rootfs {{rootfs}} -- {{cmd}}"),
        _ => format!("{{minibox}} run --rm --name {{name}} {flags} --rootfs {{rootfs}} -- {{cmd}}"),
    };
    let lifecycle = if n >= 7 {
        Some(Lifecycle {
            detach: Template::parse(&format!(
                "{{minibox}} run -d --name {{name}} {flags} --rootfs {{rootfs}} -- {{cmd}}"
            ))?,
            logs: Template::parse("{minibox} logs -f {name}")?,
            ps_all: Template::parse("{minibox} ps -a")?,
            ps: Template::parse("{minibox} ps")?,
            stop: Template::parse("{minibox} stop -t 10 --trace off {name}")?,
            rm: Template::parse("{minibox} rm {name}")?,
        })
    } else {
        None
    };
    let label = binary
        .file_name()
        .map_or_else(|| format!("{n:02}"), |f| f.to_string_lossy().into_owned());
    Ok(Runtime {
        label: format!("minibox {label}"),
        template: Template::parse(&template)?,
        minibox: Some(binary),
        lifecycle,
        not_applicable: Vec::new(),
    })
}
