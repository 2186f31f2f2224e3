//! minibox-check: grade a container runtime, stage by stage.
//!
//! A static probe (`probe/probe.c`) runs inside the runtime under test, in
//! a fresh busybox rootfs, once per scenario; it reports what a container
//! can observe as JSON. The host side adds what only the host can see
//! (cgroups and their limits, leftover mounts, processes and cgroups).
//! [`checks`] grades both against the course's stages.

pub mod bundle;
pub mod cgroup;
pub mod checks;
pub mod error;
pub mod host;
pub mod output;
pub mod probe;
pub mod rootfs;
pub mod run;
pub mod runtime;
pub mod session;
pub mod template;

pub use error::{Error, Result};
