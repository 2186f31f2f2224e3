//! Mounts that change inside a user namespace.
//!
//! Root in a user namespace may mount what its namespaces own, with three
//! limits that reorder stage 09's init:
//!
//! - **proc and sysfs only before `pivot_root`.** The kernel lets a user
//!   namespace mount a fresh `proc` or `sysfs` only while its mount
//!   namespace still holds a *fully visible* one (no part of it hidden by
//!   an overmount, `mount_too_revealing` in fs/namespace.c): otherwise a
//!   new mount would reveal what an administrator hid. Once the host's
//!   root is unmounted there is none, so init mounts them into the new
//!   root first. sysfs also needs a network namespace owned by the user
//!   namespace; with the host's network the host's `/sys` is bound,
//!   read-only, instead.
//! - **No `mknod`.** Device nodes cannot be created in a user namespace,
//!   or any user could make `/dev/sda` of their own. The host's nodes are
//!   bind-mounted onto empty files in the container's `/dev` instead —
//!   also before `pivot_root`, while the host's `/dev` is reachable.
//! - **overlayfs keeps its bookkeeping in `user.*` xattrs**
//!   (`userxattr`): the `trusted.*` ones need host `CAP_SYS_ADMIN`.

use crate::config::LayerPaths;
use crate::error::{Error, Result};
use crate::security::DeviceNode;
use crate::trace;
use crate::volumes::{fd_path, open_dir, open_in_root};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// The host nodes every container's `/dev` gets (stage 04's list).
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// The overlay, with `userxattr`.
pub fn mount_overlay(layer: &LayerPaths) -> Result<()> {
    let options = format!(
        "{},userxattr",
        crate::layer::overlay_options(&[&layer.lower], &layer.upper, &layer.work)
    );
    crate::layer::mount_overlay_with(layer, options)
}

/// `dir` (like `/proc`) inside `root`, made if missing, resolved without
/// leaving the root: a symlink in the image cannot aim a mount elsewhere.
fn target(root: &Path, dir: &str) -> Result<OwnedFd> {
    let root = open_dir(None, root)?;
    open_in_root(&root, Path::new(dir), true)
}

fn mount_at(
    shown: &str,
    target: &OwnedFd,
    source: Option<&str>,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    let show = |s: Option<&str>| s.map_or("NULL".to_string(), |v| format!("{v:?}"));
    let result = mount(source, &fd_path(target), fstype, flags, data);
    let step = format!(
        "mount({}, {shown:?} via fd {}, {}, {}, {})",
        show(source),
        target.as_raw_fd(),
        show(fstype),
        trace::flag_names(&flags),
        show(data)
    );
    match result {
        Ok(()) => trace::note(step, None),
        Err(errno) => trace::failed(step, errno),
    }
    result
}

/// A fresh `proc` at `root/proc`, before `pivot_root`.
pub fn mount_proc(root: &Path) -> Result<()> {
    let dir = target(root, "/proc")?;
    mount_at(
        "/proc",
        &dir,
        Some("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        None,
    )
    .map_err(|errno| sys("mount proc", errno))
}

/// A read-only `sysfs` at `root/sys` — or, when the kernel refuses because
/// the network namespace is not the container's own (`--network host`),
/// the host's `/sys` bound read-only.
pub fn mount_sys(root: &Path) -> Result<()> {
    let dir = target(root, "/sys")?;
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    match mount_at("/sys", &dir, Some("sysfs"), Some("sysfs"), flags, None) {
        Ok(()) => Ok(()),
        Err(Errno::EPERM) => {
            trace::note(
                "sysfs refused",
                Some("not our network namespace: the host's /sys, read-only".into()),
            );
            mount_at(
                "/sys",
                &dir,
                Some("/sys"),
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(|errno| sys("bind /sys", errno))?;
            let mounted = target(root, "/sys")?;
            crate::mounts::set_read_only_recursive(&mounted, "/sys")
        }
        Err(errno) => Err(sys("mount sysfs", errno)),
    }
}

/// `root/dev`: a tmpfs, the host's basic nodes (and `--device` nodes)
/// bound onto empty files, a private devpts, the usual links.
pub fn mount_dev(root: &Path, devices: &[DeviceNode]) -> Result<()> {
    let dir = target(root, "/dev")?;
    mount_at(
        "/dev",
        &dir,
        Some("tmpfs"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .map_err(|errno| sys("mount /dev", errno))?;
    // The fd above points under the tmpfs: open the mounted /dev again.
    let dev = target(root, "/dev")?;
    let mut nodes: Vec<(String, String)> = DEVICES
        .iter()
        .map(|name| (format!("/dev/{name}"), (*name).to_string()))
        .collect();
    for node in devices {
        let kind = if node.block { "block" } else { "char" };
        let host = format!("/dev/{kind}/{}:{}", node.major, node.minor);
        let name = node
            .path
            .strip_prefix("/dev")
            .map_err(|_| {
                Error::Usage(format!(
                    "--device {}: in a user namespace devices go under /dev",
                    node.path.display()
                ))
            })?
            .to_string_lossy()
            .into_owned();
        if name.contains('/') {
            return Err(Error::Usage(format!(
                "--device {}: in a user namespace only /dev/NAME",
                node.path.display()
            )));
        }
        nodes.push((host, name));
    }
    for (host, name) in &nodes {
        let made = nix::fcntl::openat(
            Some(dev.as_raw_fd()),
            name.as_str(),
            nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_EXCL
                | nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o666),
        );
        let file = trace::step(format!("openat(</dev>, {name:?}, O_CREAT|O_EXCL)"), made)?;
        let _ = nix::unistd::close(file);
        let path = format!("{}/{name}", fd_path(&dev).display());
        trace::step(
            format!("mount({host:?}, \"/dev/{name}\", NULL, MS_BIND, NULL)"),
            mount(
                Some(host.as_str()),
                path.as_str(),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ),
        )?;
    }
    trace::step(
        "mkdirat(</dev>, \"pts\", 0755)",
        nix::sys::stat::mkdirat(
            Some(dev.as_raw_fd()),
            "pts",
            Mode::from_bits_truncate(0o755),
        ),
    )?;
    let pts = target(root, "/dev/pts")?;
    mount_at(
        "/dev/pts",
        &pts,
        Some("devpts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(|errno| sys("mount devpts", errno))?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        trace::step(
            format!("symlinkat({to:?}, </dev>, {link:?})"),
            nix::unistd::symlinkat(to, Some(dev.as_raw_fd()), link),
        )?;
    }
    Ok(())
}

fn sys(step: &str, errno: Errno) -> Error {
    Error::Sys {
        step: step.to_string(),
        errno,
    }
}
