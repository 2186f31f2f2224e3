//! The runtime under test: a template given with `--runtime`, or a preset
//! (minibox's stages, runc, crun, podman, bwrap).

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
    /// A runtime known to refuse hybrid cgroup hosts (v1 controllers with
    /// cgroup2 at /sys/fs/cgroup/unified), and what to do instead. When it
    /// does refuse (its first run reports nothing on such a host), no
    /// check applies there: a SKIP with this reason, never a fake FAIL.
    pub refuses_hybrid_cgroups: Option<&'static str>,
}

/// The presets `--runtime` accepts by name.
pub const PRESETS: [(&str, &str); 6] = [
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
        "podman",
        "podman (rootful, with runc), all of its state in the checker's temporary directories",
    ),
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
        "the checker's bundle carries no seccomp profile: docker's default profile is the engine's to add, the OCI runtime applies what config.json gives it",
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
            "podman" => podman(),
            "bwrap" => Ok(Runtime {
                label: "bwrap".into(),
                template: Template::parse(BWRAP)?,
                minibox: None,
                lifecycle: None,
                not_applicable: Vec::new(),
                refuses_hybrid_cgroups: None,
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
                    refuses_hybrid_cgroups: None,
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

/// crun (1.8) stops at once on a hybrid cgroup host: it wants cgroup v2
/// alone or v1 alone.
const CRUN_HYBRID: &str = "crun refuses hybrid cgroup hosts (cgroup v1 controllers with cgroup2 at /sys/fs/cgroup/unified): check it on pure cgroup v2, as in the test VM (tests/vm/run.sh --cgroup v2 --only check)";

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
        refuses_hybrid_cgroups: (tool == "crun").then_some(CRUN_HYBRID),
    })
}

/// The podman preset. podman is an engine, not a bare OCI runtime: it
/// writes the runtime's config.json itself (11 capabilities, its own
/// seccomp profile, docker-like masks) and drives runc.
///
/// Everything podman would otherwise keep on the machine goes to the
/// run's `{state}` directory or to tmpfs mounts in a mount namespace of
/// its own (verified with `strace -f` on podman 4.3 with `--network none`):
/// - `--root`, `--runroot`, `--tmpdir`: its storage and libpod state;
/// - `--network-config-dir`: the CNI backend opens `cni.lock` there even
///   with `--network none` (by default `/etc/cni/net.d/cni.lock`);
/// - `/run`: runc's state (`/run/runc`) and conmon's;
/// - `/dev/shm`: podman's lock table (`/dev/shm/libpod_lock`), shared with
///   every other podman on the machine otherwise.
///
/// Only `--network none` is used: a bridge network would have the CNI
/// plugins keep leases in `/var/lib/cni` and namespaces in `/run/netns`.
/// `:O` gives the container an overlay over the rootfs, which podman
/// would otherwise write into (`/etc/hosts`, `/run/.containerenv`).
/// `--runtime runc`: crun refuses hybrid cgroup hosts, runc works on every
/// mode. The ulimits are given because podman's defaults (nofile 1048576)
/// can exceed what the checker itself may have. podman runs in `{state}`
/// (`cd`): conmon writes a file `oom` into its working directory when the
/// container is OOM-killed (the hog scenario), which would otherwise be
/// wherever the checker was started.
pub const PODMAN: &str = "unshare --mount --propagation private -- sh -c 'mount -t tmpfs -o mode=0755 minibox-check /run && mount -t tmpfs -o mode=1777 minibox-check /dev/shm && cd \"$1\" && shift && exec \"$@\"' sh {state} podman --root {state}/root --runroot {state}/run --tmpdir {state}/tmp --network-config-dir {state}/net --cgroup-manager cgroupfs --events-backend file --runtime runc run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --hostname {hostname} --memory {memory} --memory-swap {memory} --pids-limit {pids} --cgroup-parent /{cgroup_parent} -v {volume_rw}:/vol/rw -v {volume_ro}:/vol/ro:ro --rootfs {rootfs}:O {cmd}";

const PODMAN_LIFECYCLE: &str = "the preset runs each podman command in a mount namespace of its own with a throwaway /run (so nothing of podman stays on the machine): a detached container's runc state does not outlive the command that started it";

const PODMAN_NO_USERNS: &str = "rootful podman, like docker, makes no user namespace unless asked (--userns=auto or --uidmap): the preset asks for none";

const PODMAN_NO_BRIDGE: &str = "the preset runs podman with --network none only: its bridge network (CNI) would keep leases and namespaces on the machine (/var/lib/cni, /run/netns)";

const PODMAN_NOT_APPLICABLE: [(&str, &str); 13] = [
    ("07.detach", PODMAN_LIFECYCLE),
    ("07.ps", PODMAN_LIFECYCLE),
    ("07.logs", PODMAN_LIFECYCLE),
    ("07.stop", PODMAN_LIFECYCLE),
    ("07.rm", PODMAN_LIFECYCLE),
    (
        "03.argv-non-utf8",
        "podman hands the command to runc in an OCI config.json, which is JSON: arguments cannot carry non-UTF-8 bytes",
    ),
    ("08.net-eth0", PODMAN_NO_BRIDGE),
    ("08.net-route", PODMAN_NO_BRIDGE),
    ("10.userns", PODMAN_NO_USERNS),
    ("10.root-unmapped", PODMAN_NO_USERNS),
    ("10.id-range", PODMAN_NO_USERNS),
    ("10.setgroups", PODMAN_NO_USERNS),
    ("10.volume-owner", PODMAN_NO_USERNS),
];

fn podman() -> Result<Runtime> {
    Ok(Runtime {
        label: "podman".into(),
        template: Template::parse(PODMAN)?,
        minibox: None,
        lifecycle: None,
        not_applicable: PODMAN_NOT_APPLICABLE.to_vec(),
        refuses_hybrid_cgroups: None,
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
        refuses_hybrid_cgroups: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Values;
    use std::ffi::OsString;

    /// The podman preset keeps every path podman writes under `{state}`
    /// and its cgroups under the checker's (an absolute parent, as
    /// podman's cgroupfs manager wants), and gives the rootfs as an overlay.
    #[test]
    fn the_podman_preset_keeps_its_state_in_the_run() {
        let podman = Runtime::resolve(Some("podman"), 10, Path::new("/nonexistent"))
            .expect("the podman preset resolves");
        podman
            .template
            .validate_for_run()
            .expect("the podman preset runs the probe");
        let values = Values {
            rootfs: "/w/rootfs".into(),
            state: "/w/state".into(),
            cgroup_parent: "minibox-check-1".into(),
            probe_inside: "/probe".into(),
            probe_args: vec!["report".into()],
            ..Values::default()
        };
        let argv = podman.template.expand(&values).expect("expands");
        let after = |flag: &str| -> Option<&OsString> {
            argv.iter()
                .position(|a| a == flag)
                .and_then(|i| argv.get(i + 1))
        };
        for (flag, want) in [
            ("--root", "/w/state/root"),
            ("--runroot", "/w/state/run"),
            ("--tmpdir", "/w/state/tmp"),
            ("--network-config-dir", "/w/state/net"),
            ("--cgroup-parent", "/minibox-check-1"),
            ("--network", "none"),
            ("--rootfs", "/w/rootfs:O"),
        ] {
            assert_eq!(after(flag), Some(&OsString::from(want)), "{flag}");
        }
        assert_eq!(argv[0], "unshare");
        // The shell's $1, the directory podman (and conmon) run in: the
        // word before podman itself.
        let podman_at = argv.iter().position(|a| a == "podman");
        assert_eq!(
            podman_at.and_then(|i| argv.get(i - 1)),
            Some(&OsString::from("/w/state"))
        );
        assert!(argv.ends_with(&["/probe".into(), "report".into()]));
        assert!(podman.not_applicable("08.net-eth0").is_some());
        assert!(podman.not_applicable("09.seccomp").is_none());
    }

    /// Only crun is known to refuse hybrid cgroup hosts.
    #[test]
    fn only_crun_refuses_hybrid_cgroups() {
        let dir = Path::new("/nonexistent");
        for (preset, refuses) in [("crun", true), ("runc", false), ("podman", false)] {
            let runtime = Runtime::resolve(Some(preset), 4, dir).expect("resolves");
            assert_eq!(
                runtime.refuses_hybrid_cgroups.is_some(),
                refuses,
                "{preset}"
            );
        }
    }
}
