//! Errors and the exit codes they map to.
//!
//! minibox follows docker's convention so scripts can tell who failed:
//!
//! | code      | meaning                                                  |
//! |-----------|----------------------------------------------------------|
//! | 0–124     | the container's command exited with this status          |
//! | 1         | a verb other than `run` could not do what it was asked (`logs` of an unknown container, `kill` of a stopped one) |
//! | 125       | a bad command line (any verb); `run`: minibox itself failed (missing rootfs, a setup syscall) |
//! | 126       | the command was found but cannot be executed             |
//! | 127       | the command was not found                                |
//! | 128 + N   | the container's command was killed by signal N, or `run` was interrupted by signal N before the container started |
//!
//! Each runtime state that a caller may want to tell apart ("no such
//! container", "not running", …) is a variant of its own, so callers and
//! tests match on the variant rather than on the words.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use std::path::PathBuf;

/// minibox could not do what was asked (docker's `125`).
pub const EXIT_MINIBOX_FAILED: u8 = 125;
/// The command exists but cannot be executed (`126`, as in POSIX shells).
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// The command was not found (`127`, as in POSIX shells).
pub const EXIT_NOT_FOUND: u8 = 127;

/// A verb whose action failed (docker's `1`: `kill` of a stopped
/// container, `logs` or `inspect` of an unknown one). Every verb but `run`
/// uses it; `run` answers 125 for anything minibox could not do.
pub const EXIT_ACTION_FAILED: u8 = 1;

/// Killed by SIGKILL (128 + 9): what an OOM kill looks like.
pub const EXIT_OOM_KILLED: u8 = 137;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall failed; `step` is the call as the trace shows it.
    #[error("{step}: {}", describe(*errno))]
    Sys { step: String, errno: Errno },

    /// The kernel's BPF verifier refused a program. The message quotes the
    /// verifier's complaint; `log` holds its whole report.
    #[error("{step}: {}: the verifier says {reason:?}", describe(*errno))]
    BpfRejected {
        step: String,
        errno: Errno,
        reason: String,
        log: String,
    },

    /// A file operation failed. The message names the operation and the
    /// path, then the cause once: `cause` is deliberately not a `#[source]`,
    /// which anyhow's `{:#}` would print a second time.
    #[error("{what}: {}", describe_io(.cause))]
    Io { what: String, cause: std::io::Error },

    /// A bad flag value or a combination of flags that cannot work.
    #[error("{0}")]
    Usage(String),

    #[error("rootfs {} not found: build it with `just rootfs` or pass --rootfs DIR", .0.display())]
    RootfsMissing(PathBuf),

    #[error("{0}: command not found")]
    CommandNotFound(String),

    #[error("{0}: permission denied (not executable)")]
    CannotExecute(String),

    /// init reported a failure over the sync socket; it already chose the exit code.
    #[error("{message}")]
    Init { message: String, exit_code: u8 },

    /// The run → init protocol broke (a message of the wrong kind, a
    /// config written by another build of the binary, …).
    #[error("sync protocol: {0}")]
    Protocol(String),

    /// The kernel's OOM killer ended the container (exit 137, as docker).
    #[error(
        "the container hit its memory limit ({limit}): the kernel OOM-killed {kills} process(es)"
    )]
    OutOfMemory { limit: String, kills: u64 },

    /// `run` got SIGINT/SIGTERM before the container started; everything it
    /// had created is removed again.
    #[error("interrupted by {} before the container started: nothing was left behind", .0.as_str())]
    Interrupted(Signal),

    #[error("no such container: {0}")]
    NoSuchContainer(String),

    #[error("{0:?} matches several containers: give more of the id")]
    AmbiguousContainer(String),

    #[error("container {0} is not running")]
    NotRunning(String),

    #[error("container {0} is running: stop it first, or use rm -f")]
    StillRunning(String),

    #[error("container {0} is paused: unpause it first")]
    Paused(String),

    #[error("container {0} is not paused")]
    NotPaused(String),

    /// What a verb was asked to do failed (docker's exit 1); the message
    /// is the cause's own.
    #[error(transparent)]
    Failed(Box<Error>),

    #[error("container {0} is still starting: try again when `ps` shows it running")]
    StillStarting(String),

    #[error("the name {name:?} is in use by container {id}: remove it or pick another --name")]
    NameInUse { name: String, id: String },

    #[error("state of container {id} is damaged ({why}): `rm {id}` removes it")]
    StateDamaged { id: String, why: String },

    #[error("image {0:?} not found: import it with `image import FILE.tar {0}` (see `images`)")]
    NoSuchImage(String),

    #[error("image {name:?} is used by container {container}: remove the container first")]
    ImageInUse { name: String, container: String },

    /// A seccomp profile, capability name or `--security-opt` that cannot
    /// be used; the message names the file or the option.
    #[error(transparent)]
    Seccomp(#[from] crate::security::seccomp::SeccompError),
}

impl Error {
    pub fn io(what: impl Into<String>, cause: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            cause,
        }
    }

    /// A failed syscall made by `std` (it reports an `io::Error`), as the
    /// trace names it.
    pub fn sys_from_io(step: impl Into<String>, source: &std::io::Error) -> Self {
        Error::Sys {
            step: step.into(),
            errno: errno_of(source),
        }
    }

    /// The same error as a failed action (exit 1, docker's rule for a verb
    /// that could not do what it was asked).
    pub fn failed(self) -> Error {
        match self {
            Error::Failed(_) => self,
            other => Error::Failed(Box::new(other)),
        }
    }

    /// The error itself, seen through [`Error::Failed`].
    pub fn cause(&self) -> &Error {
        match self {
            Error::Failed(inner) => inner.cause(),
            other => other,
        }
    }

    /// The process exit code this error stands for.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::CommandNotFound(_) => EXIT_NOT_FOUND,
            Error::CannotExecute(_) => EXIT_CANNOT_EXECUTE,
            Error::Init { exit_code, .. } => *exit_code,
            Error::OutOfMemory { .. } => EXIT_OOM_KILLED,
            Error::Failed(_) => EXIT_ACTION_FAILED,
            Error::Interrupted(signal) => 128u8.wrapping_add(*signal as i32 as u8),
            _ => EXIT_MINIBOX_FAILED,
        }
    }
}

/// `EPERM (Operation not permitted)`: the name students look up in man pages,
/// then the text.
pub fn describe(errno: Errno) -> String {
    format!("{errno:?} ({})", errno.desc())
}

/// An `io::Error` in the same form: `ENOENT (No such file or directory)`
/// when it came from a syscall, its own text otherwise.
fn describe_io(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => describe(Errno::from_raw(code)),
        None => error.to_string(),
    }
}

/// The errno behind an `io::Error` (EIO when there is none).
pub fn errno_of(error: &std::io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_names_its_cause_once() {
        let err = Error::io(
            "open /nonexistent.tar",
            std::io::Error::from_raw_os_error(libc::ENOENT),
        );
        let text = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(
            text,
            "open /nonexistent.tar: ENOENT (No such file or directory)"
        );
    }

    #[test]
    fn an_interrupted_run_exits_128_plus_the_signal() {
        assert_eq!(Error::Interrupted(Signal::SIGINT).exit_code(), 130);
        assert_eq!(Error::Interrupted(Signal::SIGTERM).exit_code(), 143);
    }
}
