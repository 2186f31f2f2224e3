//! What can go wrong before any check is graded. A runtime that fails is
//! not an error: it is a graded FAIL. These are the checker's own
//! problems: a bad template, a missing tool, no root, no cgroups.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mistake on the command line or in a template (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The machine cannot run the checks (not root, no cgroups, …).
    #[error("{0}")]
    Environment(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
