//! # minibox — the library under every stage
//!
//! Each stage binary (`stages/NN-*/src/main.rs`) tells the run/init story in
//! order; the mechanics it calls live here, one module per idea:
//!
//! | module        | idea                                                     |
//! |---------------|----------------------------------------------------------|
//! | [`trace`]     | the run/init tree every stage prints                     |
//! | [`sync`]      | the socket run and init talk over (events, errors, "go") |
//! | [`namespaces`]| clone(2) with namespace flags, waiting, signal forwarding |
//! | [`command`]   | the command pipe, `PATH` lookup, the final `execve`      |
//! | [`mounts`]    | mount propagation, `/proc`, `/dev`, `/sys`               |
//! | [`rootfs`]    | finding the rootfs and `pivot_root` into it              |
//! | [`cgroups`]   | resource limits on cgroup v1 and v2                      |
//! | [`paths`]     | where state and locks live (`MINIBOX_ROOT`)              |
//! | [`image`]     | images: import a tarball safely, resolve by name         |
//! | [`layer`]     | the overlayfs layer a container writes to                |
//! | [`lifecycle`] | detach, stop by pidfd, exec's setns, ps/logs/rm/commit   |
//! | [`state`]     | container state: atomic JSON, names, liveness            |
//! | [`volumes`]   | `-v HOST:CONTAINER[:ro]` bind mounts, resolved in root   |
//! | [`cli`]       | flags shared by every stage, exit codes                  |
//!
//! Every syscall that matters goes through [`trace::step`], which records
//! the call with its real arguments and its real result (or errno).

pub mod cgroups;
pub mod cli;
pub mod command;
pub mod error;
pub mod image;
pub mod layer;
pub mod lifecycle;
pub mod mounts;
pub mod namespaces;
pub mod paths;
pub mod rootfs;
pub mod state;
pub mod sync;
pub mod trace;
pub mod volumes;

pub use error::{Error, Result};
