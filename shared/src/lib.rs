//! # minibox — the library under every stage
//!
//! Each stage binary (`stages/NN-*/src/main.rs`) tells the run/init story in
//! order; the mechanics it calls live here, one module per kernel concept,
//! each introduced by the stage that needs it:
//!
//! | module         | stage | idea                                                   |
//! |----------------|-------|--------------------------------------------------------|
//! | [`trace`]      | 01    | the run/init tree every stage prints (pluggable sinks) |
//! | [`sync`]       | 01    | the socket run and init talk over (events, errors, go) |
//! | [`config`]     | 01    | `InitConfig`: everything run tells init, typed          |
//! | [`process`]    | 01    | clone, signals, pidfd, getting ready to exec            |
//! | [`namespaces`] | 01    | which namespaces, host name, joining them (`exec`)      |
//! | [`command`]    | 01    | the environment, `PATH` lookup, the final `execve`      |
//! | [`id`]         | 01    | container ids                                          |
//! | [`mounts`]     | 02    | mount propagation, `/proc`, `/dev`, `/sys`              |
//! | [`rootfs`]     | 04    | finding the rootfs and `pivot_root` into it             |
//! | [`cgroups`]    | 05    | resource limits on cgroup v1 and v2                     |
//! | [`lock`]       | 05    | file locks: which run owns which container              |
//! | [`paths`]      | 05    | where state lives (`MINIBOX_ROOT`), created private     |
//! | [`image`]      | 06    | images: import a tarball safely, resolve by name        |
//! | [`layer`]      | 06    | the overlayfs layer a container writes to               |
//! | [`volumes`]    | 06    | `-v HOST:CONTAINER[:ro]`, resolved inside the root      |
//! | [`container`]  | 07    | records, the monitor, ps/logs/exec/stop/rm/commit       |
//! | [`network`]    | 08    | bridge, veth, addresses, NAT, published ports           |
//! | [`security`]   | 09    | capabilities, seccomp, masked paths, users, devices     |
//! | [`userns`]     | 10    | user namespaces: id maps, runc's three processes         |
//! | [`cli`]        | all   | flag groups that stages compose, exit codes             |
//!
//! Every syscall that matters goes through [`trace::step`], which records
//! the call with its real arguments and its real result (or errno).

pub mod cgroups;
pub mod cli;
pub mod command;
pub mod config;
pub mod console;
pub mod container;
pub mod error;
pub mod id;
pub mod image;
pub mod layer;
pub mod lock;
pub mod mounts;
pub mod namespaces;
pub mod network;
pub mod oci;
pub mod paths;
pub mod process;
pub mod rootfs;
pub mod security;
pub mod sync;
pub mod trace;
pub mod userns;
pub mod volumes;

pub use error::{Error, Result};
