//! Errors and the exit codes they map to.
//!
//! minibox follows docker's convention so scripts can tell who failed:
//!
//! | code      | meaning                                                  |
//! |-----------|----------------------------------------------------------|
//! | 0–124     | the container's command exited with this status          |
//! | 125       | minibox itself failed: bad flag, missing rootfs, a setup syscall |
//! | 126       | the command was found but cannot be executed             |
//! | 127       | the command was not found                                |
//! | 128 + N   | the container's command was killed by signal N           |

use nix::errno::Errno;
use std::path::PathBuf;

/// minibox could not do what was asked (docker's `125`).
pub const EXIT_MINIBOX_FAILED: u8 = 125;
/// The command exists but cannot be executed (`126`, as in POSIX shells).
pub const EXIT_CANNOT_EXECUTE: u8 = 126;
/// The command was not found (`127`, as in POSIX shells).
pub const EXIT_NOT_FOUND: u8 = 127;

/// Killed by SIGKILL (128 + 9): what an OOM kill looks like.
pub const EXIT_OOM_KILLED: u8 = 137;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A syscall failed; `step` is the call as the trace shows it.
    #[error("{step}: {}", describe(*errno))]
    Sys { step: String, errno: Errno },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

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

    #[error("sync protocol: {0}")]
    Protocol(String),

    /// The kernel's OOM killer ended the container (exit 137, as docker).
    #[error(
        "the container hit its memory limit ({limit}): the kernel OOM-killed {kills} process(es)"
    )]
    OutOfMemory { limit: String, kills: u64 },
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// The process exit code this error stands for.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::CommandNotFound(_) => EXIT_NOT_FOUND,
            Error::CannotExecute(_) => EXIT_CANNOT_EXECUTE,
            Error::Init { exit_code, .. } => *exit_code,
            Error::OutOfMemory { .. } => EXIT_OOM_KILLED,
            _ => EXIT_MINIBOX_FAILED,
        }
    }
}

/// `EPERM (Operation not permitted)`: the name students look up in man pages,
/// then the text.
pub fn describe(errno: Errno) -> String {
    format!("{errno:?} ({})", errno.desc())
}
