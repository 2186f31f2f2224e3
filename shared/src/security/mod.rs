//! Stage 09's idea: least privilege. root in the container keeps only
//! what a container needs, and the kernel's global knobs are out of reach.
//!
//! init applies it in an order the kernel imposes:
//!
//! 1. `oom_score_adj`, then non-dumpable: once a process is non-dumpable
//!    its `/proc/self` files belong to root, and (in a user namespace) it
//!    could no longer write its own `oom_score_adj`.
//! 2. The mounts (`/dev/shm`, `/dev/mqueue`, the cgroup namespace and its
//!    read-only `/sys/fs/cgroup`, masked and read-only paths, sysctls, a
//!    read-only root): they need `CAP_SYS_ADMIN`.
//! 3. The capabilities ([`caps`]), the user ([`users`]), `no_new_privs`,
//!    and the seccomp filter last: it would otherwise have to allow every
//!    call the steps before it make, and installing it needs either
//!    `no_new_privs` or `CAP_SYS_ADMIN`, which init still has in its
//!    effective set until `execve`.

pub mod caps;
pub mod masks;
pub mod sealed;
pub mod seccomp;
pub mod users;

use crate::error::Result;
use crate::trace;
use caps::Caps;
use nix::errno::Errno;
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

/// What run decided about the container's privileges (part of `InitConfig`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardening {
    /// `--privileged`: every capability, no masks, no seccomp, every device.
    pub privileged: bool,
    /// The bounding set (`--cap-add`, `--cap-drop` applied to docker's 14).
    pub capabilities: Caps,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--read-only`: the root filesystem mounted read-only.
    pub read_only_root: bool,
    /// `-u USER[:GROUP]`, resolved inside the image.
    pub user: Option<users::UserSpec>,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--sysctl KEY=VALUE`: namespaced sysctls only.
    pub sysctls: Vec<(String, String)>,
    /// cgroup v2: a cgroup namespace and `/sys/fs/cgroup` of its own.
    pub cgroup_namespace: bool,
    /// The seccomp filter, compiled by run (`None`: unconfined, privileged).
    pub seccomp: Option<seccomp::Filter>,
    /// `--device`: nodes to create in the container's `/dev` (the devices
    /// cgroup, set up by run, lets the container open them).
    pub devices: Vec<DeviceNode>,
}

/// A device node init creates for `--device HOST[:CONTAINER[:rwm]]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceNode {
    pub path: std::path::PathBuf,
    pub block: bool,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl From<&crate::cgroups::devices::HostDevice> for DeviceNode {
    fn from(device: &crate::cgroups::devices::HostDevice) -> DeviceNode {
        DeviceNode {
            path: device.container.clone(),
            block: device.kind == crate::cgroups::devices::DeviceKind::Block,
            major: device.major,
            minor: device.minor,
            mode: device.mode,
            uid: device.uid,
            gid: device.gid,
        }
    }
}

/// `--device`: the nodes, in the container's `/dev` (after `pivot_root`),
/// with the host node's mode and owner.
pub fn create_device_nodes(nodes: &[DeviceNode]) -> Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    for node in nodes {
        if let Some(parent) = node.path.parent() {
            if !parent.exists() {
                let made = std::fs::create_dir_all(parent)
                    .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
                trace::step(format!("mkdir -p {:?}", parent.display().to_string()), made)?;
            }
        }
        let kind = if node.block {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFCHR
        };
        trace::step(
            format!(
                "mknod({:?}, {}|{:o}, {}:{})",
                node.path.display().to_string(),
                if node.block { "S_IFBLK" } else { "S_IFCHR" },
                node.mode,
                node.major,
                node.minor
            ),
            mknod(
                &node.path,
                kind,
                Mode::from_bits_truncate(node.mode),
                makedev(node.major.into(), node.minor.into()),
            ),
        )?;
        trace::step(
            format!(
                "chown({:?}, {}, {})",
                node.path.display().to_string(),
                node.uid,
                node.gid
            ),
            nix::unistd::chown(
                &node.path,
                Some(nix::unistd::Uid::from_raw(node.uid)),
                Some(nix::unistd::Gid::from_raw(node.gid)),
            ),
        )?;
    }
    Ok(())
}

/// `--oom-score-adj N`: -1000 (never kill) to 1000 (kill first).
pub fn parse_oom_score_adj(text: &str) -> std::result::Result<i32, String> {
    match text.parse::<i32>() {
        Ok(n) if (-1000..=1000).contains(&n) => Ok(n),
        _ => Err("expected a number from -1000 to 1000".into()),
    }
}

/// The sysctls a container may set: those the kernel keeps per namespace
/// (docker's list). Anything else would change the host.
pub fn parse_sysctl(text: &str) -> std::result::Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| "expected KEY=VALUE".to_string())?;
    let namespaced = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let ok = namespaced.contains(&key)
        || key.starts_with("fs.mqueue.")
        || (key.starts_with("net.") && key != "net.core.rmem_max");
    if !ok || key.contains("..") || key.contains('/') {
        return Err(format!(
            "{key} is not a namespaced sysctl: it would change the host (allowed: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*)"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

/// Step 1: `oom_score_adj`, then non-dumpable. A non-dumpable process's
/// `/proc/PID` entries belong to root and other processes may not ptrace
/// it or open its `/proc/PID/exe`: the container's processes cannot get
/// at the runtime binary init still is (CVE-2019-5736). `execve` makes
/// the command dumpable again.
pub fn protect_init(oom_score_adj: Option<i32>) -> Result<()> {
    if let Some(adj) = oom_score_adj {
        write_proc("/proc/self/oom_score_adj", &adj.to_string())?;
    }
    make_non_dumpable()
}

/// `prctl(PR_SET_DUMPABLE, 0)`, for init and for `exec`'s process.
pub fn make_non_dumpable() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    trace::step("prctl(PR_SET_DUMPABLE, 0)", Errno::result(ret).map(drop))
}

impl Hardening {
    /// The last steps before `execve`, in the kernel's order: the bounding
    /// set, no new privileges, the seccomp filter (installing one takes
    /// `no_new_privs` or `CAP_SYS_ADMIN`, which root keeps in its
    /// effective set until the user changes or it execs), then the user.
    /// init runs them for the command, `exec`'s child for its own.
    pub fn drop_privileges(self, user: Option<&users::Resolved>) -> Result<()> {
        caps::limit_to(self.capabilities)?;
        if self.no_new_privileges {
            set_no_new_privs()?;
        }
        if let Some(filter) = self.seccomp {
            filter.load()?;
        }
        match user {
            Some(user) => users::become_user(user),
            None => Ok(()),
        }
    }

    /// Kept beside the container's record (0600): `exec` gives the
    /// processes it starts the same privileges as the command, as docker
    /// does.
    pub fn save_for(&self, id: &str) -> Result<()> {
        let json = serde_json::to_vec(self)
            .map_err(|e| crate::error::Error::Protocol(format!("encode hardening: {e}")))?;
        crate::paths::write_atomic(&saved_path(id), &json, false)
    }

    /// What [`Hardening::save_for`] kept for container `id`; `None` for a
    /// container of a stage before 09.
    pub fn saved_for(id: &str) -> Result<Option<Hardening>> {
        let path = saved_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| crate::error::Error::Protocol(format!("{}: {e}", path.display()))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(cause) => Err(crate::error::Error::io(
                format!("read {}", path.display()),
                cause,
            )),
        }
    }
}

fn saved_path(id: &str) -> std::path::PathBuf {
    crate::layer::container_dir(id).join("hardening.json")
}

/// `/dev/shm` (POSIX shared memory, a tmpfs of the container's own) and
/// `/dev/mqueue` (the IPC namespace's message queues).
pub fn mount_ipc_filesystems() -> Result<()> {
    for (dir, fstype, flags, data) in [
        (
            "/dev/shm",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=1777,size=65536k"),
        ),
        (
            "/dev/mqueue",
            "mqueue",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        ),
    ] {
        if !std::path::Path::new(dir).is_dir() {
            trace::step(
                format!("mkdir({dir:?}, 0755)"),
                nix::unistd::mkdir(dir, nix::sys::stat::Mode::from_bits_truncate(0o755)),
            )?;
        }
        trace::step(
            format!(
                "mount({fstype:?}, {dir:?}, {fstype:?}, {}, {})",
                trace::flag_names(&flags),
                data.map_or("NULL".into(), |d| format!("{d:?}"))
            ),
            nix::mount::mount(Some(fstype), dir, Some(fstype), flags, data),
        )?;
    }
    Ok(())
}

/// A cgroup namespace, entered *after* run placed init in its cgroup: the
/// namespace's root is the cgroup the caller is in at `unshare` time. Then
/// a read-only cgroup2 at `/sys/fs/cgroup` shows that cgroup as `/`.
pub fn enter_cgroup_namespace() -> Result<()> {
    trace::step(
        "unshare(CLONE_NEWCGROUP)",
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP),
    )?;
    let read = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    trace::note(
        "read /proc/self/cgroup",
        Some(read.trim().replace('\n', "; ")),
    );
    Ok(())
}

/// After `pivot_root` and `/sys`: the container's own cgroup, read-only.
pub fn mount_cgroup_readonly() -> Result<()> {
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    // sysfs has the mount point (`/sys/fs/cgroup`) even when read-only.
    trace::step(
        format!(
            "mount(\"cgroup2\", \"/sys/fs/cgroup\", \"cgroup2\", {}, NULL)",
            trace::flag_names(&flags)
        ),
        nix::mount::mount(
            Some("cgroup2"),
            "/sys/fs/cgroup",
            Some("cgroup2"),
            flags,
            None::<&str>,
        ),
    )
}

/// `--sysctl`: written before `/proc/sys` becomes read-only.
pub fn set_sysctls(sysctls: &[(String, String)]) -> Result<()> {
    for (key, value) in sysctls {
        write_proc(&format!("/proc/sys/{}", key.replace('.', "/")), value)?;
    }
    Ok(())
}

/// `--read-only`: the root itself, not what is mounted on it (`/proc`,
/// `/dev`, `/sys`, volumes keep their own modes).
pub fn make_root_read_only() -> Result<()> {
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    trace::step(
        format!(
            "mount(NULL, \"/\", NULL, {}, NULL)",
            trace::flag_names(&flags)
        ),
        nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>),
    )
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: from here on no `execve` can gain a
/// privilege — setuid bits and file capabilities are ignored.
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    trace::step(
        "prctl(PR_SET_NO_NEW_PRIVS, 1)",
        Errno::result(ret).map(drop),
    )
}

fn write_proc(path: &str, value: &str) -> Result<()> {
    let result = std::fs::write(path, value)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
    trace::step(format!("write({path:?}, {value:?})"), result)
}
