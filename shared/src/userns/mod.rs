//! Stage 10's idea: a user namespace, so root in the container is nobody
//! on the host.
//!
//! Inside a user namespace a process can hold every capability — over the
//! namespaces that user namespace owns, and over files whose owners are
//! mapped into it — and none over the host. Its ids are translated by the
//! namespace's maps ([`maps`]): container root is host uid 100000 (as host
//! root with `--userns=remap`), or the very user who ran the container
//! (rootless).
//!
//! Making one takes three processes, as runc's `nsexec` does
//! ([`nsexec`]): only a process *outside* the new user namespace may write
//! its maps, and a new PID namespace applies only to children.

pub mod layer;
pub mod maps;
pub mod mounts;
pub mod nsexec;

pub use layer::{Lower, PreparedLayer};
pub use maps::{IdMaps, IdRange, Writer};

use crate::error::{Error, Result};
use crate::trace;

/// `--userns`: whether and how a container gets a user namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum UsernsMode {
    /// Container 0–65535 → a subordinate range (as root: /etc/subuid's
    /// `minibox` entry; as a user: that user's own, via newuidmap).
    #[default]
    Remap,
    /// Container root is the calling user and no other id exists inside.
    Single,
    /// No user namespace: root inside is host root (stages 01–09).
    Host,
}

/// Stage 10's flag.
#[derive(clap::Args, Clone, Debug)]
pub struct UsernsOptions {
    /// The container's user namespace: `remap` (container 0–65535 → a
    /// range of /etc/subuid), `single` (container root = you, nothing
    /// else), `host` (none: container root is host root; root only)
    #[arg(long, value_enum, default_value_t, value_name = "MODE")]
    pub userns: UsernsMode,
}

impl UsernsOptions {
    /// The container's user namespace (`None` with `--userns=host`),
    /// decided before anything exists: a missing range or helper is a
    /// one-line error here, not a half-made container.
    pub fn user_namespace(&self) -> Result<Option<UserNamespace>> {
        let uid = nix::unistd::geteuid();
        let gid = nix::unistd::getegid();
        let maps = match (self.userns, uid.is_root()) {
            (UsernsMode::Host, true) => return Ok(None),
            (UsernsMode::Host, false) => {
                return Err(Error::Usage(
                    "--userns=host needs root: an ordinary user's container always has a user namespace".into(),
                ))
            }
            (UsernsMode::Remap, true) => maps::remapped_root()?,
            (UsernsMode::Remap, false) => {
                let user = nix::unistd::User::from_uid(uid)
                    .ok()
                    .flatten()
                    .ok_or_else(|| {
                        Error::Usage(format!(
                            "uid {uid} has no name in /etc/passwd: newuidmap needs one (or use --userns=single)"
                        ))
                    })?;
                maps::rootless(&user.name, uid.as_raw(), gid.as_raw())?
            }
            (UsernsMode::Single, _) => maps::single(uid.as_raw(), gid.as_raw()),
        };
        trace::note(
            format!("--userns={}", self.userns.name()),
            Some(format!(
                "uid map {:?}, gid map {:?}, setgroups {}",
                maps::map_text(&maps.uids).trim_end().replace('\n', "; "),
                maps::map_text(&maps.gids).trim_end().replace('\n', "; "),
                if maps.deny_setgroups { "deny" } else { "allow" }
            )),
        );
        Ok(Some(UserNamespace { maps, layer: None }))
    }
}

impl UsernsMode {
    fn name(self) -> &'static str {
        match self {
            UsernsMode::Remap => "remap",
            UsernsMode::Single => "single",
            UsernsMode::Host => "host",
        }
    }
}

/// A container's user namespace, as run plans it.
#[derive(Debug)]
pub struct UserNamespace {
    pub maps: IdMaps,
    layer: Option<PreparedLayer>,
}

impl UserNamespace {
    /// Make the container's layer usable by its root (see [`layer`]) and
    /// rewrite `config`'s layer, root and files to where init finds them.
    pub fn prepare_layer(&mut self, config: &mut crate::config::InitConfig) -> Result<()> {
        let Some(host) = config.layer.clone() else {
            return Err(Error::Protocol("a container without a layer".into()));
        };
        // The image must be shifted when container root is not its owner on
        // the host: as host root (remap) that is every image; rootless, the
        // user's own images already belong to container root.
        let image_owner = std::fs::metadata(&host.lower)
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .map_err(|e| Error::io(format!("stat {}", host.lower.display()), e))?;
        let how = if nix::unistd::geteuid().is_root()
            && self.maps.host_uid(image_owner) != Some(image_owner)
        {
            Lower::Shifted
        } else {
            Lower::AsIs
        };
        let prepared = PreparedLayer::prepare(&host, &self.maps, how)?;
        let paths = prepared.paths_for_init(&host);
        config.root = Some(paths.merged.clone());
        config.layer = Some(paths);
        for file in &mut config.files {
            file.host = prepared.reachable(&file.host);
        }
        self.layer = Some(prepared);
        Ok(())
    }

    /// The prepared layer, if any.
    pub fn layer(&self) -> Option<&PreparedLayer> {
        self.layer.as_ref()
    }
}

/// The container's cgroup. As root, stage 05's. An ordinary user may
/// write no cgroup on a v1 (or hybrid) machine — the trees are root's —
/// so there a rootless container gets none, and asking for limits is an
/// error rather than limits silently dropped. On v2 a user may have a
/// *delegated* subtree: systemd's `user@UID.service` (and the tests) chown
/// a cgroup and its `cgroup.procs`, `cgroup.subtree_control` and
/// `cgroup.threads` to the user, who may then make cgroups below it, enable
/// the controllers it was given, and move their own processes between
/// them. The container's cgroup goes to `DELEGATED/PARENT/ID`, where
/// DELEGATED is the topmost cgroup above the user's own that the user may
/// write.
pub fn cgroup(
    hierarchy: crate::cgroups::Hierarchy,
    parent: &str,
    id: &str,
    limits: &crate::cgroups::Limits,
) -> Result<crate::cgroups::Cgroup> {
    use crate::cgroups::{Cgroup, Hierarchy};
    if nix::unistd::geteuid().is_root() {
        return Cgroup::create(hierarchy, parent, id, limits);
    }
    let limited = *limits != crate::cgroups::Limits::default();
    let why = match &hierarchy {
        Hierarchy::Unified { root } => {
            let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            let own = own
                .lines()
                .find_map(|l| l.strip_prefix("0::/"))
                .unwrap_or("")
                .to_string();
            match delegated_top(root, &own) {
                Some(top) => {
                    let dir = root.join(&top);
                    trace::note(
                        format!("access({:?}, W_OK)", dir.display().to_string()),
                        Some("the top of the cgroup subtree delegated to you: the container's cgroup goes below it".into()),
                    );
                    check_delegated(&dir, &top, limits)?;
                    // `start` runs the container again with the parent
                    // its record kept, the delegated prefix included.
                    let parent = match parent.starts_with(&format!("{top}/")) {
                        true => parent.to_string(),
                        false => format!("{top}/{parent}"),
                    };
                    return Cgroup::create_delegated(hierarchy, &top, &parent, id, limits);
                }
                None => format!(
                    "your cgroup /{own} is not delegated to you (not writable): start minibox inside one that is, e.g. with `systemd-run --user --scope`"
                ),
            }
        }
        Hierarchy::Legacy { mode, .. } => {
            format!("cgroup {mode}: its trees belong to root, and rootless containers get cgroups only from a delegated cgroup v2 subtree")
        }
    };
    if limited {
        return Err(Error::Usage(format!(
            "resource limits are unavailable to a rootless container here: {why}"
        )));
    }
    trace::note("no cgroup", Some(format!("rootless: {why}")));
    Ok(Cgroup::none(hierarchy.mode()))
}

/// The topmost cgroup from `own` upwards (relative to the v2 `root`) that
/// the caller may write: the top of a delegated subtree. `None` when not
/// even `own` is writable (an ordinary login session's scope is root's).
fn delegated_top(root: &std::path::Path, own: &str) -> Option<String> {
    let writable =
        |dir: &std::path::Path| nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_ok();
    let mut top = None;
    let mut path = std::path::PathBuf::from(own);
    while !path.as_os_str().is_empty() && writable(&root.join(&path)) {
        top = Some(path.display().to_string());
        path.pop();
    }
    top
}

/// Refuse, in one line, what the delegated subtree cannot give: a limit
/// whose controller was not delegated, or controllers that would have to be
/// enabled on a cgroup that holds processes itself (v2 enables controllers
/// only for the children of a cgroup without processes).
fn check_delegated(
    dir: &std::path::Path,
    top: &str,
    limits: &crate::cgroups::Limits,
) -> Result<()> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let offered = read("cgroup.controllers");
    let needed = [
        (
            "memory",
            limits.memory.is_some() || limits.memory_swap.is_some(),
        ),
        (
            "cpu",
            limits.cpu_quota_us.is_some() || limits.cpu_shares.is_some(),
        ),
        (
            "cpuset",
            limits.cpuset_cpus.is_some() || limits.cpuset_mems.is_some(),
        ),
        ("pids", limits.pids_max.is_some()),
    ];
    for (controller, asked) in needed {
        if asked && !offered.split_whitespace().any(|c| c == controller) {
            return Err(Error::Usage(format!(
                "the {controller} controller is not delegated to you in /{top} ({}): ask for fewer limits, or delegate {controller} too (systemd: Delegate= in user@.service)",
                match offered.trim() {
                    "" => "it offers none".to_string(),
                    some => format!("it offers {some}"),
                }
            )));
        }
    }
    let enabled = read("cgroup.subtree_control");
    let missing = crate::cgroups::v2::available_controllers(dir)
        .into_iter()
        .any(|c| !enabled.split_whitespace().any(|e| e == c));
    if missing && !read("cgroup.procs").trim().is_empty() {
        return Err(Error::Usage(format!(
            "your delegated cgroup /{top} holds processes itself, so no controller can be enabled below it (cgroup v2's no-internal-processes rule): start minibox from a cgroup below /{top}"
        )));
    }
    Ok(())
}

/// Rootless: `--network none` unless another mode was typed — a bridge
/// and its veths are made in the host's network namespace, which only
/// root may change; `host` is allowed (the container then shares the
/// user's own network).
pub fn rootless_network(options: &mut crate::cli::NetworkOptions) -> Result<()> {
    use crate::network::Mode;
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let typed = crate::cli::typed_args()
        .iter()
        .any(|a| a == "--network" || a.starts_with("--network="));
    match &options.network {
        Mode::Network(name) if typed => Err(Error::Usage(format!(
            "--network {name} needs root (its bridge and veths live in the host's network namespace): use --network none or host"
        ))),
        Mode::Network(_) => {
            trace::note("--network none", Some("rootless default: a bridge needs root".into()));
            options.network = Mode::None;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Rootless: delete `dir` as container root — in a fresh user namespace
/// with the user's maps, where the files the container's other users made
/// (host ids of the subordinate range) are root's to delete. podman does
/// the same (`podman unshare`).
pub fn remove_as_container_root(dir: &std::path::Path) -> Result<()> {
    use nix::unistd::{ForkResult, Uid};
    let uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .ok_or_else(|| Error::Usage(format!("uid {uid} has no name in /etc/passwd")))?;
    let gid = nix::unistd::getegid().as_raw();
    // Without a subordinate range, the container had only the user's own
    // id (`--userns=single`): that map is enough to delete its files.
    let maps = maps::rootless(&user.name, uid.as_raw(), gid)
        .unwrap_or_else(|_| maps::single(uid.as_raw(), gid));
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Sys {
            step: "pipe2".into(),
            errno,
        })?;
    let (go_r, go_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Sys {
            step: "pipe2".into(),
            errno,
        })?;
    // SAFETY: single-threaded; the child makes syscalls, deletes, exits.
    match unsafe { nix::unistd::fork() } {
        Err(errno) => trace::step("fork()", Err(errno)),
        Ok(ForkResult::Child) => {
            drop(ready_r);
            drop(go_w);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok()
                && nix::unistd::write(&ready_w, b"u").is_ok()
                && nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&go_r), &mut [0u8; 1])
                    .is_ok_and(|n| n == 1)
                && nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0))
                    .is_ok()
                && std::fs::remove_dir_all(dir).is_ok();
            // SAFETY: _exit skips the exit handlers, which are the parent's.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Ok(ForkResult::Parent { child }) => {
            drop(ready_w);
            drop(go_r);
            let mut byte = [0u8; 1];
            let ready = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&ready_r), &mut byte)
                .is_ok_and(|n| n == 1);
            let written = ready && maps::write(child.as_raw(), &maps).is_ok();
            if written {
                let _ = nix::unistd::write(&go_w, b"g");
            }
            drop(go_w);
            let status = nix::sys::wait::waitpid(child, None);
            let ok = written && matches!(status, Ok(nix::sys::wait::WaitStatus::Exited(_, 0)));
            let step = format!(
                "rm -r {:?} as container root (a user namespace with your maps)",
                dir.display().to_string()
            );
            trace::step(
                step,
                if ok {
                    Ok(())
                } else {
                    Err(nix::errno::Errno::EACCES)
                },
            )
        }
    }
}
