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

pub mod maps;
pub mod nsexec;

pub use maps::{IdMaps, IdRange, Writer};

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
