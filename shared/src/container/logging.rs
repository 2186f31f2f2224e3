//! The log of a detached container, with the time of each line.
//!
//! init's stdout and stderr are the write end of a pipe; the monitor reads
//! the other end and appends what comes to `container.log`, unchanged, and
//! for each line that starts, its offset and the time it arrived to
//! `container.log.times` (one `OFFSET SECONDS` a line). `logs` prints the
//! log as it is; `logs -t` puts each line's time in front of it, as docker
//! does.
//!
//! The relay is a thread of the monitor, started once the container runs
//! (the monitor clones nothing after that, so a thread is safe there), and
//! joined when the container's end is recorded: by then its cgroup has
//! been emptied, so every writer is gone and the pipe reads EOF.
//!
//! The monitor's own descriptors (the read end, the two files) sit at 64
//! and above: the fds init inherits keep the numbers they always had.

use crate::error::{Error, Result};
use crate::paths;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Where the monitor keeps its own descriptors.
const HIGH_FD: RawFd = 64;

pub fn times_path(id: &str) -> PathBuf {
    super::state::log_path(id).with_extension("log.times")
}

/// What `open` prepared and `start` sets going.
struct Pending {
    read: OwnedFd,
    log: File,
    times: File,
    /// The write end as this process numbers it (the caller's `File`).
    write_fd: RawFd,
}

static PENDING: Mutex<Option<Pending>> = Mutex::new(None);
static RELAY: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// `fd` moved to [`HIGH_FD`] or above (close-on-exec), the old number freed.
fn move_high(fd: OwnedFd) -> Result<OwnedFd> {
    let high = nix::fcntl::fcntl(
        fd.as_raw_fd(),
        nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(HIGH_FD),
    )
    .map_err(|errno| Error::Sys {
        step: format!("fcntl({}, F_DUPFD_CLOEXEC, {HIGH_FD})", fd.as_raw_fd()),
        errno,
    })?;
    // SAFETY: fcntl just returned this new descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

/// The container's log (0600) and the pipe that feeds it: the write end,
/// for init's stdout and stderr.
pub fn open(id: &str) -> Result<File> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::Sys {
            step: "pipe2(O_CLOEXEC)".into(),
            errno,
        })?;
    let read = move_high(read)?;
    let log = move_high(paths::open_private_append(&super::state::log_path(id))?.into())?;
    let times = move_high(paths::open_private_append(&times_path(id))?.into())?;
    // The write end at the lowest free number: where the log file was.
    let low = nix::fcntl::fcntl(write.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(0))
        .map_err(|errno| Error::Sys {
            step: "fcntl(F_DUPFD_CLOEXEC, 0)".into(),
            errno,
        })?;
    drop(write);
    // SAFETY: fcntl just returned this new descriptor to us alone.
    let write = unsafe { File::from_raw_fd(low) };
    let mut pending = PENDING.lock().unwrap_or_else(|p| p.into_inner());
    *pending = Some(Pending {
        read,
        log: File::from(log),
        times: File::from(times),
        write_fd: write.as_raw_fd(),
    });
    Ok(write)
}

/// The container runs: let go of this process's write end (it becomes
/// `/dev/null`, so the caller's `File` still owns a descriptor) and start
/// relaying. Without a pending log (no `-d`) there is nothing to do.
pub fn start() -> Result<()> {
    let Some(pending) = PENDING.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return Ok(());
    };
    let null = File::options()
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::io("open /dev/null", e))?;
    nix::unistd::dup2(null.as_raw_fd(), pending.write_fd).map_err(|errno| Error::Sys {
        step: format!("dup2(/dev/null, {})", pending.write_fd),
        errno,
    })?;
    let handle = std::thread::Builder::new()
        .name("log relay".into())
        .spawn(move || relay(pending))
        .map_err(|e| Error::io("start the log relay", e))?;
    *RELAY.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
    Ok(())
}

/// Wait until the relay has written everything (the pipe's EOF).
pub fn finish() {
    let handle = RELAY.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
}

fn relay(pending: Pending) {
    // Signals are the main thread's to handle (run forwards them to init).
    let _ = nix::sys::signal::pthread_sigmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&nix::sys::signal::SigSet::all()),
        None,
    );
    let Pending {
        read,
        mut log,
        mut times,
        ..
    } = pending;
    let mut pipe = File::from(read);
    let mut offset = log.metadata().map_or(0, |m| m.len());
    let mut at_line_start = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let now = super::state::now();
        let mut starts = String::new();
        for (i, byte) in buf[..n].iter().enumerate() {
            if at_line_start {
                starts.push_str(&format!("{} {now:.9}\n", offset + i as u64));
            }
            at_line_start = *byte == b'\n';
        }
        // The times first: a reader that sees a line finds its time. A
        // write that fails (a full disk) loses that output, as a log file
        // written directly would; the pipe is still drained, or the
        // container would block on a full pipe.
        let _ = times.write_all(starts.as_bytes());
        if log.write_all(&buf[..n]).is_ok() {
            offset += n as u64;
        } else {
            offset = log.metadata().map_or(offset, |m| m.len());
            at_line_start = true;
        }
    }
}

/// Puts each line's time in front of it (`logs -t`).
pub struct Stamper {
    path: PathBuf,
    /// (offset of a line's start, seconds since the epoch), in order.
    times: Vec<(u64, f64)>,
    /// The log's offset of the next byte written.
    offset: u64,
    at_line_start: bool,
}

impl Stamper {
    /// For the log of container `id`, from byte `offset` (a line's start).
    pub fn new(id: &str, offset: u64) -> Stamper {
        let mut stamper = Stamper {
            path: times_path(id),
            times: Vec::new(),
            offset,
            at_line_start: true,
        };
        stamper.reload();
        stamper
    }

    fn reload(&mut self) {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        self.times = text
            .lines()
            .filter_map(|l| {
                let (offset, seconds) = l.split_once(' ')?;
                Some((offset.parse().ok()?, seconds.parse().ok()?))
            })
            .collect();
    }

    fn time_at(&mut self, offset: u64) -> String {
        if self.times.last().is_none_or(|(o, _)| *o < offset) {
            self.reload();
        }
        let at = self.times.partition_point(|(o, _)| *o <= offset);
        match at.checked_sub(1).and_then(|i| self.times.get(i)) {
            Some((_, seconds)) => super::inspect::rfc3339(*seconds),
            // Written before times were kept: no time to show.
            None => "-".into(),
        }
    }

    /// Write `chunk` (the log's next bytes) to `out`, each line stamped.
    pub fn write(&mut self, chunk: &[u8], out: &mut dyn Write) -> std::io::Result<()> {
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.at_line_start {
                let stamp = self.time_at(self.offset);
                write!(out, "{stamp} ")?;
            }
            let end = rest
                .iter()
                .position(|b| *b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            out.write_all(&rest[..end])?;
            self.at_line_start = rest[end - 1] == b'\n';
            self.offset += end as u64;
            rest = &rest[end..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_line_gets_the_time_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("container.log.times");
        std::fs::write(&path, "0 0.5\n6 60.0\n").unwrap();
        let mut stamper = Stamper {
            path,
            times: Vec::new(),
            offset: 0,
            at_line_start: true,
        };
        let mut out = Vec::new();
        stamper.write(b"hello\nwor", &mut out).unwrap();
        stamper.write(b"ld\n", &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:00.500000000Z hello\n1970-01-01T00:01:00.000000000Z world\n"
        );
    }
}
