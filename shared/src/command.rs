//! The user's command: carried to init through a pipe, looked up on `PATH`,
//! and finally exec'd so that it *becomes* PID 1.
//!
//! Why a pipe (stage 03): init's own command line then carries only init's
//! options, and run hands over the work when it chooses — after clone, and
//! from stage 05 on before it lets init go. (The final execve gives the
//! command its argv anyway, so the pipe hides nothing from `ps`.) The
//! reference tutorials also joined the command into one string and split it
//! on spaces again, so `sh -c 'echo "a  b"'` arrived mangled. Here each
//! argument travels as its own bytes, ended by a NUL (the one byte an
//! argument cannot contain, since execve takes C strings), so spaces,
//! quotes, empty arguments and non-UTF-8 survive.

use crate::error::{Error, Result};
use crate::sync::RunLink;
use crate::trace;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{self, AccessFlags};
use std::convert::Infallible;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The fd on which init finds the command pipe (as Go's `ExtraFiles[0]`).
pub const COMMAND_FD: RawFd = 3;

/// `PATH` inside the container, the one docker sets.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// run's side: a pipe whose read end init inherits.
pub struct CommandPipe {
    read_end: OwnedFd,
    write_end: OwnedFd,
}

impl CommandPipe {
    pub fn new() -> Result<CommandPipe> {
        let (read_end, write_end) = trace::step_shows(
            "pipe2(O_CLOEXEC)",
            unistd::pipe2(OFlag::O_CLOEXEC),
            |(r, w)| {
                Some(format!(
                    "read fd {}, write fd {}",
                    r.as_raw_fd(),
                    w.as_raw_fd()
                ))
            },
        )?;
        Ok(CommandPipe {
            read_end,
            write_end,
        })
    }

    /// The end to pass to init (as [`COMMAND_FD`]).
    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.read_end.as_fd()
    }

    /// Write the command and close both ends: init reads until EOF, so
    /// closing the write end is the "that's all" signal.
    pub fn send(self, command: &[OsString]) -> Result<()> {
        let bytes = encode(command);
        let fd = self.write_end.as_raw_fd();
        let mut written = 0;
        while written < bytes.len() {
            match unistd::write(&self.write_end, &bytes[written..]) {
                Ok(n) => written += n,
                Err(Errno::EINTR) => continue,
                Err(errno) => {
                    return trace::step(
                        format!("write(fd {fd}, {} bytes)", bytes.len()),
                        Err(errno),
                    );
                }
            }
        }
        trace::note(
            format!("write(fd {fd}, {} bytes)", bytes.len()),
            Some(match command.len() {
                1 => "1 arg".to_string(),
                n => format!("{n} args"),
            }),
        );
        drop(self.read_end);
        trace::step(
            format!("close(fd {fd})"),
            unistd::close(self.write_end.into_raw_fd()),
        )
    }
}

/// Each argument followed by a NUL byte.
pub fn encode(command: &[OsString]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for arg in command {
        bytes.extend_from_slice(arg.as_bytes());
        bytes.push(0);
    }
    bytes
}

/// The inverse of [`encode`]; `None` if the bytes do not end in NUL.
pub fn decode(bytes: &[u8]) -> Option<Vec<OsString>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let body = bytes.strip_suffix(&[0])?;
    Some(
        body.split(|b| *b == 0)
            .map(|a| OsString::from_vec(a.to_vec()))
            .collect(),
    )
}

/// init's side: read the command from `fd` until run closes the write end.
pub fn receive(fd: RawFd) -> Result<Vec<OsString>> {
    // SAFETY: run placed the pipe's read end at `fd` for us (see
    // `namespaces::place_fds`); nothing else in init owns it.
    let pipe = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match unistd::read(pipe.as_raw_fd(), &mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            Err(errno) => return trace::step(format!("read(fd {fd})"), Err(errno)),
        }
    }
    let command = decode(&bytes).filter(|c| !c.is_empty()).ok_or_else(|| {
        Error::Protocol(format!(
            "the command pipe held {} bytes that are not a command",
            bytes.len()
        ))
    })?;
    trace::note(
        format!("read(fd {fd}) until EOF"),
        Some(format!(
            "{} ({} bytes)",
            trace::quote_list(&command),
            bytes.len()
        )),
    );
    Ok(command)
}

/// Find `program` the way `execvp` would: a name with a `/` is taken as is,
/// anything else is tried in each `PATH` directory in turn.
pub fn lookup(program: &OsStr, path: &str) -> Result<PathBuf> {
    let name = program.to_string_lossy().into_owned();
    let has_slash = program.as_bytes().contains(&b'/');
    let step = if has_slash {
        format!("access({}, X_OK)", trace::quote(program))
    } else {
        format!("lookup {} in PATH", trace::quote(program))
    };
    let candidates: Vec<PathBuf> = if has_slash {
        vec![PathBuf::from(program)]
    } else {
        path.split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| Path::new(dir).join(program))
            .collect()
    };
    let mut found_but_not_executable = false;
    for candidate in candidates {
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if meta.is_file() && unistd::access(&candidate, AccessFlags::X_OK).is_ok() {
            trace::note(step, Some(candidate.display().to_string()));
            return Ok(candidate);
        }
        found_but_not_executable = true;
    }
    if found_but_not_executable {
        trace::failed(step, Errno::EACCES);
        Err(Error::CannotExecute(name))
    } else {
        trace::failed(step, Errno::ENOENT);
        Err(Error::CommandNotFound(name))
    }
}

/// The environment a container starts with: docker's minimal set, not the
/// host's (which would leak the host's `PATH`, `HOME`, `SSH_AUTH_SOCK`, …).
pub fn container_env(hostname: &str) -> Vec<OsString> {
    let mut env: Vec<OsString> = vec![
        format!("PATH={DEFAULT_PATH}").into(),
        format!("HOSTNAME={hostname}").into(),
        "HOME=/root".into(),
    ];
    // A terminal needs TERM to be usable (with `-t`, stdin is that terminal).
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let term = std::env::var_os("TERM").unwrap_or_else(|| "xterm".into());
        let mut kv = OsString::from("TERM=");
        kv.push(term);
        env.push(kv);
    }
    env
}

/// The last step of init: replace ourselves with the user's command.
///
/// Before the exec: no fd of ours may leak into the container (all fds above
/// stderr become close-on-exec — the sync socket among them, whose EOF then
/// tells run the exec worked), and signal dispositions go back to default
/// (Rust ignores SIGPIPE at start-up, and an ignored signal stays ignored
/// across exec: `yes | head` would misbehave in the container).
pub fn exec(run: &RunLink, command: &[OsString], env: &[OsString]) -> Result<Infallible> {
    let path_var = env
        .iter()
        .find_map(|kv| {
            kv.as_bytes()
                .strip_prefix(b"PATH=")
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let program = lookup(&command[0], &path_var)?;

    let argv = to_cstrings(command)?;
    let envp = to_cstrings(env)?;
    let program_c = CString::new(program.as_os_str().as_bytes())
        .map_err(|_| Error::Usage("program path contains a NUL byte".into()))?;

    close_other_fds()?;
    reset_signals()?;

    let step = format!(
        "execve({}, {})",
        trace::quote(&program),
        trace::quote_list(command)
    );
    trace::note(step.clone(), None);
    run.ready_to_exec()?;
    let errno = unistd::execve(&program_c, &argv, &envp).unwrap_err();
    trace::failed(&step, errno);
    Err(match errno {
        Errno::ENOENT => Error::CommandNotFound(program.display().to_string()),
        Errno::EACCES | Errno::ENOEXEC => Error::CannotExecute(program.display().to_string()),
        _ => Error::Sys { step, errno },
    })
}

/// `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`: mark every fd above stderr
/// close-on-exec in one call (Linux 5.11+), so a leaked host fd cannot give
/// the container a way out (CVE-2024-21626 was a leaked directory fd).
fn close_other_fds() -> Result<()> {
    // SAFETY: close_range only changes fd flags; no memory is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    trace::step(
        "close_range(3, ~0, CLOSE_RANGE_CLOEXEC)",
        Errno::result(ret).map(drop),
    )
}

fn reset_signals() -> Result<()> {
    for sig in Signal::iterator() {
        if matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: SIG_DFL installs no code of ours.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
    }
    trace::step(
        "sigprocmask(SIG_SETMASK, {}) and every handler to SIG_DFL",
        signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None),
    )
}

/// argv/envp for execve: C strings, which is why no argument can hold a NUL.
pub(crate) fn to_cstrings(items: &[OsString]) -> Result<Vec<CString>> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes()).map_err(|_| {
                Error::Usage(format!(
                    "argument {:?} contains a NUL byte",
                    s.to_string_lossy()
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_keeps_every_byte() {
        let command: Vec<OsString> = vec![
            "sh".into(),
            "".into(),
            "a  b".into(),
            "q'\"".into(),
            "héllo".into(),
            OsString::from_vec(vec![0xff, 0xfe]),
        ];
        assert_eq!(decode(&encode(&command)).unwrap(), command);
    }

    #[test]
    fn decode_rejects_a_truncated_message() {
        assert_eq!(decode(b"sh\0-c"), None);
    }

    #[test]
    fn lookup_reports_not_found_and_not_executable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "x").unwrap();
        let path = dir.path().to_str().unwrap();
        assert!(matches!(
            lookup(OsStr::new("plain"), path),
            Err(Error::CannotExecute(_))
        ));
        assert!(matches!(
            lookup(OsStr::new("absent"), path),
            Err(Error::CommandNotFound(_))
        ));
    }
}
