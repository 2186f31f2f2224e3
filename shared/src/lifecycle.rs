//! Stage 07's lifecycle: detaching, signalling by pidfd, entering a running
//! container, and the commands around them (`ps`, `logs`, `rm`, `commit`).

use crate::error::{Error, Result};
use crate::paths::ContainerLock;
use crate::state::{self, ContainerState, Entry};
use crate::{cgroups, image, layer, trace};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

// ---------------------------------------------------------------- detach

/// The monitor's line back to the `run -d` that started it.
pub struct StartReporter {
    pipe: File,
}

impl StartReporter {
    /// The container is up: `run -d` may print the id and return.
    pub fn started(mut self) {
        let _ = self.pipe.write_all(b"started");
    }
}

/// `run -d`: fork. The parent waits for the child's word and then exits —
/// 0 with the container id on stdout once the container is up, or the
/// child's own exit code if it failed (it has printed why). The child
/// returns and carries on as the container's *monitor*: the process that
/// waits for init, records its exit code and end time in the state, and
/// removes its cgroup. It is cheap — one sleeping process — and it is why
/// every container's end is recorded even when nobody is watching.
pub fn detach(id: &str) -> Result<StartReporter> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Sys {
            step: "pipe2(O_CLOEXEC)".into(),
            errno,
        })?;
    // SAFETY: minibox is single-threaded, so the child gets a consistent
    // copy of the whole process.
    match unsafe { nix::unistd::fork() } {
        Err(errno) => trace::step("fork()", Err(errno)),
        Ok(nix::unistd::ForkResult::Child) => {
            drop(read_end);
            // A session of its own: closing the terminal `run -d` was typed
            // in must not hang up the container.
            nix::unistd::setsid().map_err(|errno| Error::Sys {
                step: "setsid()".into(),
                errno,
            })?;
            Ok(StartReporter {
                pipe: File::from(write_end),
            })
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(write_end);
            let mut word = String::new();
            let _ = File::from(read_end).read_to_string(&mut word);
            if word == "started" {
                println!("{id}");
                std::process::exit(0);
            }
            // The monitor failed and has said why on our shared stderr.
            let code = match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, code)) => code,
                _ => crate::error::EXIT_MINIBOX_FAILED as i32,
            };
            std::process::exit(code);
        }
    }
}

/// The monitor, once the container runs, lets go of the terminal.
pub fn release_terminal() -> Result<()> {
    let null = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|errno| Error::Sys {
        step: "open(\"/dev/null\")".into(),
        errno,
    })?;
    for fd in 0..3 {
        let _ = nix::unistd::dup2(null, fd);
    }
    let _ = nix::unistd::close(null);
    Ok(())
}

// ---------------------------------------------------------------- pidfd

/// A pidfd: a handle on one process that cannot be redirected to another
/// process by PID reuse.
pub struct PidFd(OwnedFd);

impl PidFd {
    /// Open a pidfd for the container's init, and only then check the start
    /// time: if it still matches, the pidfd refers to our process.
    pub fn for_container(container: &ContainerState) -> Result<Option<PidFd>> {
        let (Some(pid), Some(start)) = (container.pid, container.pid_start) else {
            return Ok(None);
        };
        // SAFETY: pidfd_open takes a pid and flags, no memory.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let Ok(fd) = Errno::result(fd) else {
            return Ok(None); // ESRCH: gone
        };
        // SAFETY: the kernel just gave us this fd.
        let pidfd = PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        trace::note(format!("pidfd_open({pid})"), Some(format!("fd {fd}")));
        if state::process_start_time(pid) != Some(start) {
            return Ok(None); // a different process now has that pid
        }
        Ok(Some(pidfd))
    }

    pub fn signal(&self, signal: Signal) -> Result<()> {
        // SAFETY: pidfd_send_signal with a NULL siginfo, as kill(2).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as i32,
                0usize,
                0u32,
            )
        };
        trace::step(
            format!(
                "pidfd_send_signal(fd {}, {})",
                self.0.as_raw_fd(),
                signal.as_str()
            ),
            Errno::result(ret).map(drop),
        )
    }

    /// Wait until the process exits, at most `timeout` (None: forever).
    /// True if it exited.
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> bool {
        let timeout = timeout.map_or(nix::poll::PollTimeout::NONE, |t| {
            nix::poll::PollTimeout::try_from(t).unwrap_or(nix::poll::PollTimeout::MAX)
        });
        let mut fds = [nix::poll::PollFd::new(
            self.0.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        loop {
            match nix::poll::poll(&mut fds, timeout) {
                Err(Errno::EINTR) => continue,
                Ok(n) => return n > 0,
                Err(_) => return true,
            }
        }
    }
}

/// After init exits, its monitor records the end and then lets go of the
/// container's lock: taking the lock waits for exactly that.
pub fn wait_for_monitor(id: &str) -> Result<()> {
    ContainerLock::acquire(id).map(drop)
}

/// Stop a container: SIGTERM, then SIGKILL after `grace`. PID 1 in a PID
/// namespace only gets signals it installed a handler for (the kernel drops
/// the rest, so nothing kills init by accident), which is why a container
/// that never handles SIGTERM needs the SIGKILL.
pub fn stop(container: &ContainerState, grace: std::time::Duration) -> Result<()> {
    if let Some(pidfd) = PidFd::for_container(container)? {
        pidfd.signal(Signal::SIGTERM)?;
        if !pidfd.wait(Some(grace)) {
            trace::note(
                format!("wait {}s for exit", grace.as_secs()),
                Some("still running".into()),
            );
            pidfd.signal(Signal::SIGKILL)?;
            pidfd.wait(None);
        }
    }
    wait_for_monitor(&container.id)
}

// ---------------------------------------------------------------- exec

/// The namespaces `exec` joins, in the order it joins them. A user
/// namespace (none here) would come first, since it decides what the
/// others allow; the mount namespace comes last, because once we are in
/// it, the host's `/proc/<pid>/ns/*` paths are no longer ours to open.
const JOIN_ORDER: [(&str, CloneFlags); 5] = [
    ("ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("net", CloneFlags::CLONE_NEWNET),
    ("pid", CloneFlags::CLONE_NEWPID),
    ("mnt", CloneFlags::CLONE_NEWNS),
];

/// Open every namespace of the container's init first (and check the pid
/// still names our init), then join them.
///
/// Why Rust needs no trick here: `setns` into a mount (or user) namespace
/// requires a *single-threaded* caller, because the other threads would be
/// left in the old namespace. A Go program has runtime threads before
/// `main` runs, which is why runc does this in C, in a constructor that runs
/// before the Go runtime starts. A Rust program has exactly the threads it
/// starts itself, and minibox starts none: were a thread running (a logging
/// thread, an async runtime), the mount-namespace `setns` below would fail
/// with EINVAL.
pub fn enter(container: &ContainerState) -> Result<()> {
    let pid = container
        .pid
        .ok_or_else(|| Error::Usage(format!("container {} is not running", container.name)))?;
    let mut handles = Vec::new();
    for (name, flag) in JOIN_ORDER {
        let path = format!("/proc/{pid}/ns/{name}");
        let fd = trace::step_shows(
            format!("open({path:?})"),
            nix::fcntl::open(
                path.as_str(),
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ),
            |fd| Some(format!("fd {fd}")),
        )?;
        // SAFETY: open just returned this fd to us alone.
        handles.push((unsafe { OwnedFd::from_raw_fd(fd) }, flag, name));
    }
    if state::process_start_time(pid) != container.pid_start {
        return Err(Error::Usage(format!(
            "container {} is not running",
            container.name
        )));
    }
    for dir in &container.cgroup_dirs {
        let file = dir.join("cgroup.procs");
        let me = std::process::id().to_string();
        let result = fs::write(&file, &me)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
        trace::step(
            format!("write({:?}, {me:?})", file.display().to_string()),
            result,
        )?;
    }
    for (fd, flag, name) in handles {
        trace::step(
            format!(
                "setns(fd {}, {}) [{name}]",
                fd.as_raw_fd(),
                trace::flag_names(&flag)
            ),
            nix::sched::setns(&fd, flag),
        )?;
    }
    trace::step("chdir(\"/\")", nix::unistd::chdir("/"))
}

// ---------------------------------------------------------------- ps, logs, rm, commit

/// `ps`: running containers, or all with `-a`; ids only with `-q`.
pub fn ps(all: bool, quiet: bool) -> String {
    let now = state::now();
    let mut rows = vec![[
        "CONTAINER ID",
        "NAME",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PID",
    ]
    .map(String::from)];
    let mut ids = Vec::new();
    for entry in state::list() {
        match entry {
            Entry::Ok(c) => {
                let running = c.is_running();
                if !all && !running {
                    continue;
                }
                ids.push(c.id.clone());
                let mut command = c.command.join(" ");
                if command.chars().count() > 24 {
                    command = command.chars().take(23).collect::<String>() + "…";
                }
                rows.push([
                    c.id.clone(),
                    c.name.clone(),
                    c.image.clone(),
                    format!("{command:?}"),
                    format!("{} ago", state::describe_age(now - c.created)),
                    state::describe(&c, now),
                    c.pid
                        .filter(|_| running)
                        .map_or("-".into(), |p| p.to_string()),
                ]);
            }
            Entry::Broken { id, reason } if all => {
                ids.push(id.clone());
                rows.push([
                    id.clone(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    format!("Dead ({reason})"),
                    "-".into(),
                ]);
            }
            Entry::Broken { .. } => {}
        }
    }
    if quiet {
        return ids.iter().map(|id| format!("{id}\n")).collect();
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
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

/// `logs [-f]`: the container's captured output; with `follow`, keep
/// reading until the container has exited.
pub fn logs(container: &ContainerState, follow: bool, out: &mut dyn Write) -> Result<()> {
    let path = state::log_path(&container.id);
    let mut file = File::open(&path).map_err(|_| {
        Error::Usage(format!(
            "container {} has no log: only detached containers (run -d) keep one",
            container.name
        ))
    })?;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        if n > 0 {
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write stdout", e))?;
            continue;
        }
        let _ = out.flush();
        // At the end of what is written: done, unless following a
        // container that can still write. Its monitor holds the lock until
        // the container has exited, so a free lock means no more output.
        if !follow || ContainerLock::owner_alive(&ContainerLock::path(&container.id)) != Some(true)
        {
            // One last read: output written just before the exit.
            let n = file.read(&mut buf).map_err(|e| Error::io("read log", e))?;
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("write stdout", e))?;
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `cleanup`: what runs killed with SIGKILL left behind under `parent` —
/// their cgroups and their layers — and the lock files nobody holds.
/// Returns how many cgroups and layers were removed.
pub fn remove_leftovers(parent: &str) -> Result<(usize, usize)> {
    let hierarchy = cgroups::Hierarchy::detect()?;
    let cgroups = cgroups::remove_stale(&hierarchy, parent)?;
    let layers = layer::remove_stale();
    ContainerLock::remove_free_locks();
    Ok((cgroups, layers))
}

/// `rm`: remove a stopped container's cgroup leftovers, layer, state, log.
pub fn remove(container_id: &str, cgroup_parent: Option<&str>) -> Result<()> {
    if let Some(parent) = cgroup_parent {
        // Its monitor removes the cgroup when it records the exit; only a
        // monitor that died leaves one, which this sweep finds (free lock).
        if let Ok(hierarchy) = cgroups::Hierarchy::detect() {
            cgroups::remove_stale(&hierarchy, parent)?;
        }
    }
    layer::remove_dir(&state::container_dir(container_id))?;
    let _ = fs::remove_file(ContainerLock::path(container_id));
    Ok(())
}

/// `commit`: the container's filesystem as it is now — the image with the
/// container's changes on top — becomes image `name`.
///
/// The two layers are stacked read-only (`lowerdir=upper:image`, leftmost
/// on top; whiteouts in upper hide what the container deleted) in a mount
/// namespace of our own, so the mount never shows on the host and vanishes
/// with this process. The view is packed into a tarball and imported like
/// any other, through the same safe extraction.
pub fn commit(container: &ContainerState, lower: &Path, name: &str) -> Result<()> {
    image::validate_name(name)?;
    let dir = state::container_dir(&container.id);
    let upper = dir.join("upper");
    if !upper.is_dir() {
        return Err(Error::Usage(format!(
            "container {} has no layer to commit",
            container.name
        )));
    }
    trace::step(
        "unshare(CLONE_NEWNS)",
        nix::sched::unshare(CloneFlags::CLONE_NEWNS),
    )?;
    crate::mounts::make_mount_tree_private()?;
    let view = dir.join("commit-view");
    let _ = fs::create_dir(&view);
    let options = format!(
        "lowerdir={}",
        layer::escape_option(&upper) + ":" + &layer::escape_option(lower)
    );
    trace::step(
        format!(
            "mount(\"overlay\", {:?}, \"overlay\", MS_RDONLY, {options:?})",
            view.display().to_string()
        ),
        nix::mount::mount(
            Some("overlay"),
            &view,
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(options.as_str()),
        ),
    )?;
    let tarball = dir.join("commit.tar");
    let packed = (|| -> std::io::Result<()> {
        let mut builder = tar::Builder::new(File::create(&tarball)?);
        builder.follow_symlinks(false);
        builder.append_dir_all(".", &view)?;
        builder.finish()
    })();
    let _ = nix::mount::umount2(&view, nix::mount::MntFlags::MNT_DETACH);
    let _ = fs::remove_dir(&view);
    let result = packed
        .map_err(|e| Error::io(format!("pack {}", view.display()), e))
        .and_then(|()| image::import(name, &tarball).map(drop));
    let _ = fs::remove_file(&tarball);
    result
}
