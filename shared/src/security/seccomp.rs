//! seccomp: the list of system calls the container may make (stage 09).
//!
//! A seccomp filter is a small classic-BPF program that the kernel runs on
//! every system call the process makes, before the call does anything. It
//! sees the architecture, the syscall number and the six raw arguments (never
//! the memory they point to) and answers with an action: allow, fail with an
//! errno, kill, trap, log. Once installed it can never be removed, it is
//! inherited across `fork` and `execve`, and a later filter can only add
//! restrictions.
//!
//! This module has three parts:
//!
//! * [`Profile`]: docker's JSON profile format, parsed and checked
//!   ([`Profile::from_file`], [`Profile::from_json`]), or docker's default
//!   written out as Rust data ([`Profile::docker_default`]).
//! * [`Profile::compile`]: the rules that apply to a set of capabilities
//!   ([`Caps`]) on this machine, turned into a BPF program ([`Filter`]).
//! * [`Filter::load`]: `seccomp(SECCOMP_SET_MODE_FILTER)`, traced.
//!
//! and [`parse_security_opt`] for `--security-opt`.
//!
//! ## Why libseccomp
//!
//! The compiler is libseccomp (through the `libseccomp` crate; Debian's
//! `libseccomp-dev` to build, `libseccomp2` to run), the library runc, crun
//! and podman use, rather than BPF written here or `seccompiler`. It knows
//! every architecture's syscall table, so a profile can say `"chown32"` or
//! `"socket"` and the right numbers come out for x86_64, i386 and x32 alike;
//! it handles syscalls that 32-bit x86 reaches through one multiplexer
//! (`socketcall`, `ipc`); it emits the architecture checks; and it compares
//! 64-bit arguments correctly with 32-bit BPF. `seccompiler` only knows the
//! native table and no multiplexing, and hand-written BPF would have to
//! repeat all of this.
//!
//! libseccomp is only used to *compile*. The program is exported as raw BPF
//! ([`Filter`] is plain data, serializable, so `run` can compile it and hand
//! it to init), and [`Filter::load`] installs it with the `seccomp(2)`
//! syscall itself. That way libseccomp never sets `no_new_privs` behind the
//! caller's back (its `SCMP_FLTATR_CTL_NNP` defaults to on; we also turn it
//! off), and the program can be patched first (next section).
//!
//! ## ENOSYS for syscalls newer than the profile
//!
//! A profile's default action is usually `ERRNO(EPERM)`. For a syscall that
//! did not exist when the profile was written that is the wrong answer:
//! glibc tries `clone3`, `faccessat2` or `fchmodat2` first and falls back to
//! an older call only on `ENOSYS`; `EPERM` makes it give up. docker's answer
//! (in runc) is to put a few instructions *in front of* the compiled program:
//! for each architecture, a syscall number greater than the largest one the
//! profile names gets `ERRNO(ENOSYS)`; everything else falls through to the
//! real filter. This module does the same (see `enosys_stub`). The largest
//! number is taken over every name in the profile, whatever its conditions,
//! so that a syscall the profile knows but denies for lack of a capability
//! still gets `EPERM`. A plain trailing rule could not express this:
//! libseccomp only takes rules for syscalls it can name, and "every number
//! above N" is not a name. The stub is skipped when the default action is
//! already `ERRNO(ENOSYS)` (podman's profile) or lets calls through.
//!
//! `clone3` itself is a known syscall, so docker's profile gives it its own
//! rule: `ERRNO(ENOSYS)` unless the container has `CAP_SYS_ADMIN`. Its flags
//! live in a struct in memory, which seccomp cannot read, so the namespace
//! flags could not be checked as they are for `clone`.
//!
//! ## Capabilities
//!
//! Some of docker's rules apply only when the container keeps (or lacks) a
//! capability. [`Caps`] is a bitmask with bit N for capability number N, as
//! in `CapEff:` in `/proc/PID/status`; [`Caps::from_names`] builds it from
//! names such as `CAP_SYS_ADMIN`, `sys_admin` or `ALL`. Pass the set the
//! container's process will end up with (docker passes the bounding set).
//!
//! ## Loading
//!
//! The kernel accepts a filter only from a thread that has set
//! `no_new_privs` or holds `CAP_SYS_ADMIN` in its user namespace; otherwise
//! a filter could fool a setuid program. [`Filter::load`] sets neither and
//! sets no other state: the caller orders init's last steps, as runc does.
//! Everything the filter would refuse (mounts, `pivot_root`, `sethostname`)
//! comes first. Then, with `no_new_privs` asked for: drop capabilities, set
//! it, load the filter, `execve`. Without it: load the filter while init
//! still holds `CAP_SYS_ADMIN`, *then* drop capabilities and change user
//! (`capset`, `setgroups`, `setres[ug]id`, `prctl` and `execve` are all in
//! docker's allowlist). Load it on the thread that will `execve`, while it
//! is the only one.

use crate::error::{Error, Result};
use crate::trace;
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext};
use libseccomp::{ScmpFilterAttr, ScmpSyscall};
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a profile, a capability name or a `--security-opt` cannot be used.
///
/// Every message is one line and names where the problem is: the profile's
/// path (or `builtin default`) or the option as given.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {path}: cannot read it: {}", describe_io(.cause))]
    Unreadable { path: String, cause: std::io::Error },

    #[error("seccomp profile {path}: malformed JSON at line {line} column {column}: {message}")]
    Json {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },

    #[error("seccomp profile {path}: unknown action {action:?} (expected SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL, SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL_PROCESS, SCMP_ACT_TRAP, SCMP_ACT_TRACE or SCMP_ACT_LOG)")]
    UnknownAction { path: String, action: String },

    #[error("seccomp profile {path}: unknown operator {op:?} for {syscall:?} (expected SCMP_CMP_NE, _LT, _LE, _EQ, _GE, _GT or _MASKED_EQ)")]
    UnknownOp {
        path: String,
        syscall: String,
        op: String,
    },

    #[error("seccomp profile {path}: unknown capability {cap:?}")]
    UnknownCap { path: String, cap: String },

    #[error("seccomp profile {path}: unknown architecture {arch:?} (expected SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64, …)")]
    UnknownArch { path: String, arch: String },

    /// The profile parses but asks for something that cannot work.
    #[error("seccomp profile {path}: {what}")]
    Invalid { path: String, what: String },

    /// A capability name given to [`Caps::from_names`].
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),

    /// libseccomp refused a rule or could not produce the program.
    #[error("seccomp profile {path}: {step}: {cause}")]
    Compile {
        path: String,
        step: String,
        cause: String,
    },

    #[error("--security-opt {option:?}: {why}")]
    Option { option: String, why: String },
}

fn describe_io(error: &std::io::Error) -> String {
    match error.raw_os_error() {
        Some(code) => crate::error::describe(Errno::from_raw(code)),
        None => error.to_string(),
    }
}

fn invalid(path: &str, what: impl Into<String>) -> Error {
    SeccompError::Invalid {
        path: path.to_string(),
        what: what.into(),
    }
    .into()
}

// ---------------------------------------------------------------------------
// Capabilities
// ---------------------------------------------------------------------------

// The capability table and the set type live in [`super::caps`]; what
// only profiles need (names that may be unknown, as a typed error) is here.
pub use super::caps::{number as capability_number, Caps};

impl Caps {
    /// The set of these names (`CAP_SYS_ADMIN`, `sys_admin`, …, or `ALL`).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self> {
        let mut caps = Caps::empty();
        for name in names {
            let name = name.as_ref();
            if name.trim().eq_ignore_ascii_case("ALL") {
                caps = Caps::all();
                continue;
            }
            match capability_number(name) {
                Some(n) => caps.0 |= 1 << n,
                None => return Err(SeccompError::UnknownCapability(name.to_string()).into()),
            }
        }
        Ok(caps)
    }
}

// ---------------------------------------------------------------------------
// The profile
// ---------------------------------------------------------------------------

/// What the filter does with a matching syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// `SCMP_ACT_ALLOW`: the call goes ahead.
    Allow,
    /// `SCMP_ACT_ERRNO`: the call fails with this errno, doing nothing.
    Errno(u16),
    /// `SCMP_ACT_KILL` / `SCMP_ACT_KILL_THREAD`: the thread dies (SIGSYS).
    KillThread,
    /// `SCMP_ACT_KILL_PROCESS`: the whole process dies (SIGSYS).
    KillProcess,
    /// `SCMP_ACT_TRAP`: a SIGSYS the process can handle.
    Trap,
    /// `SCMP_ACT_TRACE`: a ptrace tracer decides (ENOSYS without one).
    Trace(u16),
    /// `SCMP_ACT_LOG`: allowed, and logged by the audit subsystem.
    Log,
}

impl Action {
    fn to_scmp(self) -> ScmpAction {
        match self {
            Action::Allow => ScmpAction::Allow,
            Action::Errno(errno) => ScmpAction::Errno(i32::from(errno)),
            Action::KillThread => ScmpAction::KillThread,
            Action::KillProcess => ScmpAction::KillProcess,
            Action::Trap => ScmpAction::Trap,
            Action::Trace(msg) => ScmpAction::Trace(msg),
            Action::Log => ScmpAction::Log,
        }
    }

    /// Lets the call through (the ENOSYS stub is pointless then).
    fn is_permissive(self) -> bool {
        matches!(self, Action::Allow | Action::Log | Action::Trace(_))
    }

    /// `name` with its `errnoRet` (`defaultErrnoRet` for the default
    /// action). An ERRNO or TRACE without one gets EPERM, as in runc.
    fn parse(name: &str, errno_ret: Option<u32>, what: &str, path: &str) -> Result<Self> {
        let value = || -> Result<Option<u16>> {
            match errno_ret {
                None => Ok(None),
                // The kernel keeps errno values below 4096 (MAX_ERRNO).
                Some(n) if n < 4096 => Ok(Some(n as u16)),
                Some(n) => Err(invalid(
                    path,
                    format!("{what} {n} is not an errno (0–4095)"),
                )),
            }
        };
        Ok(match name {
            "SCMP_ACT_ALLOW" => Action::Allow,
            "SCMP_ACT_ERRNO" => Action::Errno(value()?.unwrap_or(libc::EPERM as u16)),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => Action::KillThread,
            "SCMP_ACT_KILL_PROCESS" => Action::KillProcess,
            "SCMP_ACT_TRAP" => Action::Trap,
            "SCMP_ACT_TRACE" => Action::Trace(value()?.unwrap_or(libc::EPERM as u16)),
            "SCMP_ACT_LOG" => Action::Log,
            "SCMP_ACT_NOTIFY" => {
                return Err(invalid(
                    path,
                    "SCMP_ACT_NOTIFY needs a seccomp agent listening on a socket, which minibox does not provide",
                ))
            }
            other => {
                return Err(SeccompError::UnknownAction {
                    path: path.to_string(),
                    action: other.to_string(),
                }
                .into())
            }
        })
    }
}

/// `ERRNO(EPERM)`, `ALLOW`, `KILL_PROCESS`: how the trace names an action.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Allow => write!(f, "ALLOW"),
            Action::Errno(n) => match Errno::from_raw(i32::from(*n)) {
                Errno::UnknownErrno => write!(f, "ERRNO({n})"),
                errno => write!(f, "ERRNO({errno:?})"),
            },
            Action::KillThread => write!(f, "KILL_THREAD"),
            Action::KillProcess => write!(f, "KILL_PROCESS"),
            Action::Trap => write!(f, "TRAP"),
            Action::Trace(n) => write!(f, "TRACE({n})"),
            Action::Log => write!(f, "LOG"),
        }
    }
}

/// How an argument is compared (`SCMP_CMP_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    NotEqual,
    Less,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    Greater,
    /// `(arg & value) == value_two`.
    MaskedEqual,
}

impl Op {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "SCMP_CMP_NE" => Op::NotEqual,
            "SCMP_CMP_LT" => Op::Less,
            "SCMP_CMP_LE" => Op::LessOrEqual,
            "SCMP_CMP_EQ" => Op::Equal,
            "SCMP_CMP_GE" => Op::GreaterOrEqual,
            "SCMP_CMP_GT" => Op::Greater,
            "SCMP_CMP_MASKED_EQ" => Op::MaskedEqual,
            _ => return None,
        })
    }
}

/// One condition on a syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgCmp {
    /// Which argument, 0 to 5.
    pub index: u32,
    pub op: Op,
    /// The value compared with (the mask, for [`Op::MaskedEqual`]).
    pub value: u64,
    /// The expected masked value, for [`Op::MaskedEqual`].
    pub value_two: u64,
}

impl ArgCmp {
    fn to_scmp(self) -> ScmpArgCompare {
        let op = match self.op {
            Op::NotEqual => ScmpCompareOp::NotEqual,
            Op::Less => ScmpCompareOp::Less,
            Op::LessOrEqual => ScmpCompareOp::LessOrEqual,
            Op::Equal => ScmpCompareOp::Equal,
            Op::GreaterOrEqual => ScmpCompareOp::GreaterEqual,
            Op::Greater => ScmpCompareOp::Greater,
            Op::MaskedEqual => ScmpCompareOp::MaskedEqual(self.value),
        };
        let datum = match self.op {
            Op::MaskedEqual => self.value_two,
            _ => self.value,
        };
        ScmpArgCompare::new(self.index, op, datum)
    }
}

/// A kernel release, as far as a profile's `minKernel` cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

impl KernelVersion {
    /// `"4.8"`, `"6.18.44-fc-v669"`: the first two numbers.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }

    /// The running kernel (`uname -r`).
    pub fn running() -> Result<Self> {
        // SAFETY: an all-zero utsname is a valid value of this plain C struct.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: uname fills the struct we own and pass by pointer.
        let ret = unsafe { libc::uname(&mut uts) };
        Errno::result(ret).map_err(|errno| Error::Sys {
            step: "uname()".into(),
            errno,
        })?;
        // SAFETY: the kernel NUL-terminates `release` within the array.
        let release = unsafe { std::ffi::CStr::from_ptr(uts.release.as_ptr()) };
        let release = release.to_string_lossy();
        KernelVersion::parse(&release).ok_or_else(|| {
            Error::Usage(format!(
                "uname(): cannot read a version from the release {release:?}"
            ))
        })
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// When a rule applies (`includes`) or does not (`excludes`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Condition {
    /// `includes`: all of them must be in the set; `excludes`: none may be.
    pub caps: Caps,
    /// docker's (Go's) architecture names: `amd64`, `arm64`, `x86`, `s390x`…
    /// compared with the native one.
    pub arches: Vec<String>,
    /// `includes`: the kernel is at least this; `excludes`: it is older.
    pub min_kernel: Option<KernelVersion>,
}

/// One entry of `syscalls[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub names: Vec<String>,
    pub action: Action,
    /// All must hold (AND); several on one argument are separate rules (OR),
    /// as runc reads them.
    pub args: Vec<ArgCmp>,
    pub includes: Condition,
    pub excludes: Condition,
}

impl Rule {
    fn applies(&self, caps: Caps, arch: &str, kernel: KernelVersion) -> bool {
        let inc = &self.includes;
        let exc = &self.excludes;
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch) {
            return false;
        }
        if exc.arches.iter().any(|a| a == arch) {
            return false;
        }
        if !caps.contains_all(inc.caps) || caps.intersects(exc.caps) {
            return false;
        }
        if inc.min_kernel.is_some_and(|min| kernel < min) {
            return false;
        }
        if exc.min_kernel.is_some_and(|min| kernel >= min) {
            return false;
        }
        true
    }
}

/// A seccomp profile in docker's JSON format, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Where it came from (a path, or `builtin default`): error messages
    /// name it.
    pub source: String,
    pub default_action: Action,
    /// `architectures`: the filter covers exactly these (plus native).
    pub architectures: Vec<ScmpArch>,
    /// `archMap`: for a native architecture, the others it can run.
    pub arch_map: Vec<(ScmpArch, Vec<ScmpArch>)>,
    pub rules: Vec<Rule>,
}

// The JSON as docker writes it. Unknown fields (`comment`, `errno`,
// `listenerPath`, …) are ignored, as docker does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProfile {
    default_action: String,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<RawArchMap>>,
    syscalls: Option<Vec<RawSyscall>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArchMap {
    architecture: String,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSyscall {
    names: Option<Vec<String>>,
    /// The old single-name form.
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    args: Option<Vec<RawArg>>,
    includes: Option<RawFilter>,
    excludes: Option<RawFilter>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArg {
    index: u32,
    value: u64,
    value_two: Option<u64>,
    op: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    min_kernel: Option<String>,
}

fn parse_arch(name: &str, path: &str) -> Result<ScmpArch> {
    match ScmpArch::from_str(name) {
        Ok(ScmpArch::Native) | Err(_) => Err(SeccompError::UnknownArch {
            path: path.to_string(),
            arch: name.to_string(),
        }
        .into()),
        Ok(arch) => Ok(arch),
    }
}

fn parse_condition(raw: Option<RawFilter>, path: &str) -> Result<Condition> {
    let Some(raw) = raw else {
        return Ok(Condition::default());
    };
    let mut caps = Caps::empty();
    for cap in raw.caps.unwrap_or_default() {
        match capability_number(&cap) {
            Some(n) if cap.starts_with("CAP_") => caps = caps.with(n),
            _ => {
                return Err(SeccompError::UnknownCap {
                    path: path.to_string(),
                    cap,
                }
                .into())
            }
        }
    }
    let min_kernel = match raw.min_kernel {
        None => None,
        Some(text) => Some(KernelVersion::parse(&text).ok_or_else(|| {
            invalid(
                path,
                format!("minKernel {text:?} is not a version such as \"4.8\""),
            )
        })?),
    };
    Ok(Condition {
        caps,
        arches: raw.arches.unwrap_or_default(),
        min_kernel,
    })
}

impl Profile {
    /// Read and check a docker-format profile.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| SeccompError::Unreadable {
            path: shown.clone(),
            cause,
        })?;
        Profile::from_json(&text, &shown)
    }

    /// Check a docker-format profile; `source` names it in errors.
    pub fn from_json(text: &str, source: &str) -> Result<Self> {
        let raw: RawProfile = serde_json::from_str(text).map_err(|e| {
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full);
            SeccompError::Json {
                path: source.to_string(),
                line: e.line(),
                column: e.column(),
                message: message.replace('\n', " "),
            }
        })?;

        let default_action = Action::parse(
            &raw.default_action,
            raw.default_errno_ret,
            "defaultErrnoRet",
            source,
        )?;

        let architectures = raw
            .architectures
            .unwrap_or_default()
            .iter()
            .map(|a| parse_arch(a, source))
            .collect::<Result<Vec<_>>>()?;
        let mut arch_map = Vec::new();
        for entry in raw.arch_map.unwrap_or_default() {
            let arch = parse_arch(&entry.architecture, source)?;
            let subs = entry
                .sub_architectures
                .unwrap_or_default()
                .iter()
                .map(|a| parse_arch(a, source))
                .collect::<Result<Vec<_>>>()?;
            arch_map.push((arch, subs));
        }
        if !architectures.is_empty() && !arch_map.is_empty() {
            return Err(invalid(
                source,
                "both \"architectures\" and \"archMap\" are given: use one",
            ));
        }

        let mut rules = Vec::new();
        for raw in raw.syscalls.unwrap_or_default() {
            let mut names = raw.names.unwrap_or_default();
            names.extend(raw.name);
            let first = names.first().cloned().unwrap_or_default();
            let action = Action::parse(&raw.action, raw.errno_ret, "errnoRet", source)?;
            let mut args = Vec::new();
            for arg in raw.args.unwrap_or_default() {
                let op = Op::parse(&arg.op).ok_or_else(|| SeccompError::UnknownOp {
                    path: source.to_string(),
                    syscall: first.clone(),
                    op: arg.op.clone(),
                })?;
                if arg.index > 5 {
                    return Err(invalid(
                        source,
                        format!(
                            "argument index {} of {first:?}: syscalls have arguments 0 to 5",
                            arg.index
                        ),
                    ));
                }
                args.push(ArgCmp {
                    index: arg.index,
                    op,
                    value: arg.value,
                    value_two: arg.value_two.unwrap_or(0),
                });
            }
            rules.push(Rule {
                names,
                action,
                args,
                includes: parse_condition(raw.includes, source)?,
                excludes: parse_condition(raw.excludes, source)?,
            });
        }

        Ok(Profile {
            source: source.to_string(),
            default_action,
            architectures,
            arch_map,
            rules,
        })
    }

    /// The architectures a filter built on `native` covers: `architectures`
    /// if given, else `native` and what `archMap` lists for it.
    pub fn arches_for(&self, native: ScmpArch) -> Vec<ScmpArch> {
        let mut arches = vec![native];
        if !self.architectures.is_empty() {
            arches.extend(self.architectures.iter().copied());
        } else if let Some((_, subs)) = self.arch_map.iter().find(|(a, _)| *a == native) {
            arches.extend(subs.iter().copied());
        }
        let mut unique = Vec::new();
        for arch in arches {
            if !unique.contains(&arch) {
                unique.push(arch);
            }
        }
        unique
    }
}

// ---------------------------------------------------------------------------
// docker's default profile, as data
// ---------------------------------------------------------------------------

/// What a container may always do, by topic. Together: the names docker's
/// default profile allows without condition (current moby, including
/// syscalls newer than this machine's libseccomp, which compile skips).
mod allowed {
    pub const FILES: &str = "\
        access faccessat faccessat2 chdir fchdir getcwd chmod fchmod fchmodat \
        fchmodat2 chown chown32 fchown fchown32 fchownat lchown lchown32 creat \
        open openat openat2 name_to_handle_at link linkat symlink symlinkat \
        readlink readlinkat unlink unlinkat rename renameat renameat2 mkdir \
        mkdirat rmdir mknod mknodat stat stat64 lstat lstat64 fstat fstat64 \
        fstatat64 newfstatat statx statfs statfs64 fstatfs fstatfs64 truncate \
        truncate64 ftruncate ftruncate64 fallocate umask utime utimes utimensat \
        utimensat_time64 futimesat getdents getdents64 getxattr lgetxattr \
        fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat listxattr \
        llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr \
        removexattrat inotify_init inotify_init1 inotify_add_watch \
        inotify_rm_watch fanotify_mark flock listmount statmount";

    pub const IO: &str = "\
        read readv pread64 preadv preadv2 write writev pwrite64 pwritev pwritev2 \
        lseek _llseek close close_range dup dup2 dup3 fcntl fcntl64 ioctl pipe \
        pipe2 splice tee vmsplice sendfile sendfile64 copy_file_range readahead \
        fadvise64 fadvise64_64 fsync fdatasync sync syncfs sync_file_range poll \
        ppoll ppoll_time64 select _newselect pselect6 pselect6_time64 \
        epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait \
        epoll_wait_old epoll_pwait epoll_pwait2 eventfd eventfd2 signalfd \
        signalfd4 timerfd_create timerfd_gettime timerfd_gettime64 \
        timerfd_settime timerfd_settime64 io_setup io_destroy io_submit \
        io_cancel io_getevents io_pgetevents io_pgetevents_time64";

    pub const MEMORY: &str = "\
        brk mmap mmap2 munmap mremap mprotect madvise mincore msync mlock mlock2 \
        mlockall munlock munlockall remap_file_pages membarrier memfd_create \
        memfd_secret pkey_alloc pkey_free pkey_mprotect map_shadow_stack mseal \
        cachestat";

    pub const PROCESSES: &str = "\
        fork vfork execve execveat exit exit_group wait4 waitid waitpid getpid \
        getppid gettid getpgid getpgrp setpgid getsid setsid set_tid_address \
        set_robust_list get_robust_list futex futex_time64 futex_waitv \
        futex_wait futex_wake futex_requeue rseq set_thread_area get_thread_area \
        prctl uname sysinfo getrandom getcpu getrlimit setrlimit ugetrlimit \
        prlimit64 getrusage times capget capset pidfd_open pidfd_send_signal \
        process_mrelease seccomp landlock_create_ruleset landlock_add_rule \
        landlock_restrict_self restart_syscall riscv_hwprobe uretprobe";

    pub const SCHEDULING: &str = "\
        sched_yield sched_getaffinity sched_setaffinity sched_getattr \
        sched_setattr sched_getparam sched_setparam sched_getscheduler \
        sched_setscheduler sched_get_priority_max sched_get_priority_min \
        sched_rr_get_interval sched_rr_get_interval_time64 getpriority \
        setpriority ioprio_get ioprio_set";

    pub const SIGNALS: &str = "\
        kill tkill tgkill pause alarm sigaltstack sigprocmask sigreturn \
        rt_sigaction rt_sigprocmask rt_sigpending rt_sigqueueinfo \
        rt_tgsigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait \
        rt_sigtimedwait_time64";

    // Reading the clock's tuning is allowed; changing it needs
    // CAP_SYS_TIME, which the kernel checks itself.
    pub const TIME: &str = "\
        time gettimeofday clock_gettime clock_gettime64 clock_getres \
        clock_getres_time64 clock_nanosleep clock_nanosleep_time64 nanosleep \
        adjtimex clock_adjtime clock_adjtime64 getitimer setitimer timer_create \
        timer_delete timer_getoverrun timer_gettime timer_gettime64 \
        timer_settime timer_settime64";

    pub const IDS: &str = "\
        getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 \
        getresuid getresuid32 getresgid getresgid32 getgroups getgroups32 setuid \
        setuid32 setgid setgid32 setreuid setreuid32 setregid setregid32 \
        setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid \
        setfsgid32 setgroups setgroups32";

    pub const IPC: &str = "\
        ipc msgget msgsnd msgrcv msgctl semget semop semtimedop \
        semtimedop_time64 semctl shmget shmat shmdt shmctl mq_open mq_unlink \
        mq_timedsend mq_timedsend_time64 mq_timedreceive mq_timedreceive_time64 \
        mq_notify mq_getsetattr";

    /// `socket` itself is allowed per address family (see `SOCKET_FAMILIES`).
    pub const NETWORK: &str = "\
        socketcall socketpair bind connect listen accept accept4 getsockname \
        getpeername getsockopt setsockopt send sendto sendmsg sendmmsg recv \
        recvfrom recvmsg recvmmsg recvmmsg_time64 shutdown";

    pub const ALL: &[&str] = &[
        FILES, IO, MEMORY, PROCESSES, SCHEDULING, SIGNALS, TIME, IDS, IPC, NETWORK,
    ];
}

/// Address families `socket(2)` may create. Missing on purpose: the ones
/// the kernel no longer has (DECnet 12, Econet 19, ATM SVC 20, IrDA 23,
/// WAN pipe 25, ISDN 34, CAIF 37), `AF_ALG` (38: the kernel's crypto API,
/// attack surface no container needs) and `AF_VSOCK` (40: reaches the
/// hypervisor and, unless configured otherwise, every VM on the host).
const SOCKET_FAMILIES: &[u64] = &[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, // AF_UNIX … AF_ROSE
    13, 14, 15, 16, 17, 18, // AF_NETBEUI … AF_ASH (16 is AF_NETLINK)
    21, 22, 24, 26, 27, 28, 29, 30, 31, 32, 33, // AF_RDS … AF_RXRPC
    35, 36, 39, 41, 42, 43, 44, 45, // AF_PHONET … AF_MCTP
];

/// Allowed only while the container holds a capability.
const BY_CAPABILITY: &[(&str, &str)] = &[
    // The big one: everything that changes the system around the process.
    (
        "CAP_SYS_ADMIN",
        "mount umount umount2 mount_setattr move_mount open_tree fsopen fsconfig \
         fsmount fspick unshare setns clone clone3 sethostname setdomainname bpf \
         perf_event_open fanotify_init lookup_dcookie quotactl quotactl_fd syslog \
         lsm_get_self_attr lsm_set_self_attr lsm_list_modules",
    ),
    ("CAP_DAC_READ_SEARCH", "open_by_handle_at"),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "init_module finit_module delete_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd process_madvise",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    (
        "CAP_SYS_TIME",
        "settimeofday stime clock_settime clock_settime64",
    ),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "mbind get_mempolicy set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// Allowed only on these architectures (docker's names for them).
const BY_ARCH: &[(&str, &str)] = &[
    ("amd64 x32", "arch_prctl"),
    ("amd64 x32 x86", "modify_ldt"),
    (
        "arm arm64",
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls",
    ),
    ("ppc64le", "sync_file_range2 swapcontext"),
    (
        "s390 s390x",
        "s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr",
    ),
    ("riscv64", "riscv_flush_icache"),
];

/// `personality(2)` values that only change how the process sees itself:
/// PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff
/// (only ask). Others, such as ADDR_NO_RANDOMIZE, weaken the process.
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Every `CLONE_NEW*` flag `clone(2)` can carry (`CLONE_NEWTIME` cannot:
/// its bit is part of the exit-signal byte there).
pub const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// `"read write"` → `["read", "write"]`.
fn words(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_string).collect()
}

fn rule(list: &str, action: Action) -> Rule {
    Rule {
        names: words(list),
        action,
        args: Vec::new(),
        includes: Condition::default(),
        excludes: Condition::default(),
    }
}

fn cap(name: &str) -> Caps {
    Caps::empty().with(capability_number(name).unwrap_or(63))
}

impl Profile {
    /// docker's default profile: deny with EPERM, allow a list, some of it
    /// only with a capability or on an architecture, `clone` only without
    /// namespace flags, and `clone3` ENOSYS unless `CAP_SYS_ADMIN`.
    pub fn docker_default() -> Self {
        let allow = Action::Allow;
        let mut rules = Vec::new();

        rules.push(rule(&allowed::ALL.join(" "), allow));

        // Before 4.8 a tracer could change a syscall after seccomp had
        // checked it; since then ptrace is safe to leave to the kernel's own
        // checks (same user, not dumpable, …).
        let mut ptrace = rule("ptrace process_vm_readv process_vm_writev", allow);
        ptrace.includes.min_kernel = Some(KernelVersion { major: 4, minor: 8 });
        rules.push(ptrace);

        // The address family is argument 0 of socket(2). (On 32-bit x86,
        // where calls can go through socketcall(2) with their arguments in
        // memory, seccomp cannot see it; socketcall is allowed above.)
        for family in SOCKET_FAMILIES {
            let mut socket = rule("socket", allow);
            socket.args.push(ArgCmp {
                index: 0,
                op: Op::Equal,
                value: *family,
                value_two: 0,
            });
            rules.push(socket);
        }

        for value in PERSONALITIES {
            let mut personality = rule("personality", allow);
            personality.args.push(ArgCmp {
                index: 0,
                op: Op::Equal,
                value: *value,
                value_two: 0,
            });
            rules.push(personality);
        }

        for (arches, list) in BY_ARCH {
            let mut r = rule(list, allow);
            r.includes.arches = words(arches);
            rules.push(r);
        }

        for (capability, list) in BY_CAPABILITY {
            let mut r = rule(list, allow);
            r.includes.caps = cap(capability);
            rules.push(r);
        }

        // Without CAP_SYS_ADMIN: clone(2) for threads and processes, never
        // for namespaces. The flags are argument 0, except on s390, whose
        // clone takes the stack first.
        let without_admin = Condition {
            caps: cap("CAP_SYS_ADMIN"),
            ..Condition::default()
        };
        for (index, s390) in [(0, false), (1, true)] {
            let mut clone = rule("clone", allow);
            clone.args.push(ArgCmp {
                index,
                op: Op::MaskedEqual,
                value: CLONE_NAMESPACE_FLAGS,
                value_two: 0,
            });
            clone.excludes = without_admin.clone();
            let s390_names = vec!["s390".to_string(), "s390x".to_string()];
            if s390 {
                clone.includes.arches = s390_names;
            } else {
                clone.excludes.arches = s390_names;
            }
            rules.push(clone);
        }

        // clone3's flags are in memory, out of seccomp's sight: refuse it
        // with ENOSYS so that glibc falls back to clone(2), checked above.
        let mut clone3 = rule("clone3", Action::Errno(libc::ENOSYS as u16));
        clone3.excludes = without_admin;
        rules.push(clone3);

        let arch_map = vec![
            (ScmpArch::X8664, vec![ScmpArch::X86, ScmpArch::X32]),
            (ScmpArch::Aarch64, vec![ScmpArch::Arm]),
            (ScmpArch::Mips64, vec![ScmpArch::Mips, ScmpArch::Mips64N32]),
            (ScmpArch::Mips64N32, vec![ScmpArch::Mips, ScmpArch::Mips64]),
            (
                ScmpArch::Mipsel64,
                vec![ScmpArch::Mipsel, ScmpArch::Mipsel64N32],
            ),
            (
                ScmpArch::Mipsel64N32,
                vec![ScmpArch::Mipsel, ScmpArch::Mipsel64],
            ),
            (ScmpArch::S390X, vec![ScmpArch::S390]),
            (ScmpArch::Riscv64, vec![]),
            (ScmpArch::Loongarch64, vec![]),
        ];

        Profile {
            source: "builtin default".to_string(),
            default_action: Action::Errno(libc::EPERM as u16),
            architectures: Vec::new(),
            arch_map,
            rules,
        }
    }
}

// ---------------------------------------------------------------------------
// Compiling
// ---------------------------------------------------------------------------

/// docker's (Go's) name for an architecture, as `includes.arches` uses it.
fn docker_arch_name(arch: ScmpArch) -> &'static str {
    match arch {
        ScmpArch::X8664 => "amd64",
        ScmpArch::X86 => "x86",
        ScmpArch::X32 => "x32",
        ScmpArch::Aarch64 => "arm64",
        ScmpArch::Arm => "arm",
        ScmpArch::Ppc64Le => "ppc64le",
        ScmpArch::Ppc64 => "ppc64",
        ScmpArch::Ppc => "ppc",
        ScmpArch::S390X => "s390x",
        ScmpArch::S390 => "s390",
        ScmpArch::Riscv64 => "riscv64",
        ScmpArch::Mips => "mips",
        ScmpArch::Mipsel => "mipsle",
        ScmpArch::Mips64 => "mips64",
        ScmpArch::Mipsel64 => "mips64le",
        ScmpArch::Mips64N32 => "mips64n32",
        ScmpArch::Mipsel64N32 => "mips64len32",
        ScmpArch::Loongarch64 => "loong64",
        _ => "",
    }
}

/// libseccomp's name for an architecture, lower case (`x86_64`, `aarch64`).
fn arch_name(arch: ScmpArch) -> &'static str {
    match arch {
        ScmpArch::X8664 => "x86_64",
        ScmpArch::X86 => "x86",
        ScmpArch::X32 => "x32",
        ScmpArch::Aarch64 => "aarch64",
        ScmpArch::Arm => "arm",
        ScmpArch::Riscv64 => "riscv64",
        ScmpArch::Loongarch64 => "loongarch64",
        ScmpArch::Ppc64Le => "ppc64le",
        ScmpArch::Ppc64 => "ppc64",
        ScmpArch::Ppc => "ppc",
        ScmpArch::S390X => "s390x",
        ScmpArch::S390 => "s390",
        ScmpArch::Mips => "mips",
        ScmpArch::Mips64 => "mips64",
        ScmpArch::Mips64N32 => "mips64n32",
        ScmpArch::Mipsel => "mipsel",
        ScmpArch::Mipsel64 => "mipsel64",
        ScmpArch::Mipsel64N32 => "mipsel64n32",
        _ => "other",
    }
}

/// The value the kernel puts in `seccomp_data.arch` (`AUDIT_ARCH_*`) for
/// the architectures the ENOSYS stub handles. x32 shares x86_64's: its
/// syscall numbers carry bit 30 instead.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    const LE64: u32 = 0x8000_0000 | 0x4000_0000;
    Some(match arch {
        ScmpArch::X8664 | ScmpArch::X32 => LE64 | 62,
        ScmpArch::X86 => 0x4000_0000 | 3,
        ScmpArch::Aarch64 => LE64 | 183,
        ScmpArch::Arm => 0x4000_0000 | 40,
        ScmpArch::Riscv64 => LE64 | 243,
        ScmpArch::Loongarch64 => LE64 | 258,
        ScmpArch::Ppc64Le => LE64 | 21,
        ScmpArch::Ppc64 => 0x8000_0000 | 21,
        ScmpArch::S390X => 0x8000_0000 | 22,
        ScmpArch::S390 => 22,
        _ => return None,
    })
}

/// x32 syscalls are x86_64's numbers with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// One classic-BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled seccomp program, ready for [`Filter::load`]. Plain data: it
/// can be compiled in `run` and sent to init.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    program: Vec<Insn>,
    default_action: Action,
    /// Instructions of the ENOSYS stub at the start of `program`.
    stub: usize,
    /// `(architecture, largest syscall number the profile names)`: above it,
    /// ENOSYS.
    enosys_above: Vec<(String, u32)>,
    /// Names in the profile that this libseccomp does not know (skipped).
    unknown: Vec<String>,
}

impl Filter {
    /// The program's length in BPF instructions.
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// `ERRNO(EPERM)`: what a syscall no rule matches gets.
    pub fn default_action(&self) -> String {
        self.default_action.to_string()
    }

    /// `312 instructions, default ERRNO(EPERM)`, as the trace shows it.
    pub fn summary(&self) -> String {
        format!(
            "{}, default {}",
            trace::count(self.instructions(), "instruction"),
            self.default_action
        )
    }

    /// The program itself.
    pub fn program(&self) -> &[Insn] {
        &self.program
    }

    /// How many instructions the ENOSYS stub in front takes (0: none).
    pub fn stub_instructions(&self) -> usize {
        self.stub
    }

    /// Per architecture, the syscall number above which the stub answers
    /// ENOSYS: `[("x86_64", 456), ("x86", 456), ("x32", 0x4000_0223)]`.
    pub fn enosys_above(&self) -> &[(String, u32)] {
        &self.enosys_above
    }

    /// Syscall names of the profile this libseccomp does not know, skipped
    /// as docker skips them.
    pub fn unknown_syscalls(&self) -> &[String] {
        &self.unknown
    }

    /// Install the filter on the calling thread:
    /// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`, traced as one step.
    ///
    /// The kernel refuses (EACCES) unless the thread has set
    /// `no_new_privs` or holds `CAP_SYS_ADMIN`; this sets neither, the
    /// caller orders them. Threads that exist already keep running
    /// unfiltered: load it where init is still single-threaded.
    pub fn load(self) -> Result<()> {
        let step = format!(
            "seccomp(SECCOMP_SET_MODE_FILTER, 0, <filter: {}>)",
            self.summary()
        );
        let mut program: Vec<libc::sock_filter> = self
            .program
            .iter()
            .map(|insn| libc::sock_filter {
                code: insn.code,
                jt: insn.jt,
                jf: insn.jf,
                k: insn.k,
            })
            .collect();
        let Ok(len) = u16::try_from(program.len()) else {
            return trace::step(step, Err(Errno::EINVAL));
        };
        let prog = libc::sock_fprog {
            len,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: `prog` points at `len` initialised instructions in
        // `program`, which lives until after the call; the kernel copies
        // (and verifies) the program before it returns.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0 as libc::c_uint,
                &prog as *const libc::sock_fprog,
            )
        };
        trace::step(step, Errno::result(ret).map(drop))
    }
}

impl Profile {
    /// [`Profile::compile`] through a cache under the state root: libseccomp
    /// takes tens of milliseconds for docker's profile, a third of a
    /// container's start. The key is a SHA-256 of everything the program
    /// depends on: this profile (every rule), the capability set, the
    /// architecture, the running kernel and libseccomp's version. The
    /// cache is root's (0700, files 0600), like the rest of the state; a
    /// file that does not parse is compiled again and replaced.
    pub fn compile_cached(&self, caps: Caps) -> Result<Filter> {
        use sha2::Digest;
        let native = ScmpArch::native();
        let kernel = KernelVersion::running()?;
        let library = libseccomp::ScmpVersion::current()
            .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
            .unwrap_or_default();
        // Debug of plain data: every field, in order. A Rust release that
        // prints it differently only costs a cache miss.
        let key = sha2::Sha256::digest(format!(
            "minibox seccomp cache 1\n{self:?}\n{caps}\n{native:?}\n{}.{}\n{library}",
            kernel.major, kernel.minor
        ));
        let name: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let path = crate::paths::state_dir("seccomp")?.join(format!("{name}.json"));
        let shown = format!(
            "{}/{}….json",
            path.parent()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            &name[..12]
        );
        if let Ok(bytes) = std::fs::read(&path) {
            if let Ok(filter) = serde_json::from_slice::<Filter>(&bytes) {
                trace::note(
                    format!("read {shown:?}"),
                    Some(format!("the filter compiled before: {}", filter.summary())),
                );
                return Ok(filter);
            }
        }
        let filter = self.compile(caps)?;
        let json = serde_json::to_vec(&filter)
            .map_err(|e| crate::error::Error::Protocol(format!("encode filter: {e}")))?;
        crate::paths::write_atomic(&path, &json, false)?;
        trace::note(
            format!(
                "libseccomp: compile the {} profile, keep it in {shown:?}",
                self.source
            ),
            Some(filter.summary()),
        );
        Ok(filter)
    }

    /// Compile the rules that apply to a process holding `caps`, for this
    /// machine's architecture (plus what `archMap` adds) and kernel.
    pub fn compile(&self, caps: Caps) -> Result<Filter> {
        self.compile_for(caps, ScmpArch::native(), KernelVersion::running()?)
    }

    /// [`Profile::compile`] for a given native architecture and kernel.
    pub fn compile_for(
        &self,
        caps: Caps,
        native: ScmpArch,
        kernel: KernelVersion,
    ) -> Result<Filter> {
        let path = self.source.as_str();
        let fail = |step: String| {
            move |e: libseccomp::error::SeccompError| -> Error {
                SeccompError::Compile {
                    path: path.to_string(),
                    step,
                    cause: e.to_string(),
                }
                .into()
            }
        };

        let mut ctx = ScmpFilterContext::new(self.default_action.to_scmp())
            .map_err(fail(format!("seccomp_init({})", self.default_action)))?;
        // Installing is Filter::load's job; libseccomp would otherwise set
        // no_new_privs itself when loading.
        ctx.set_filter_attr(ScmpFilterAttr::CtlNnp, 0)
            .map_err(fail("SCMP_FLTATR_CTL_NNP".into()))?;
        let arches = self.arches_for(native);
        for arch in &arches {
            ctx.add_arch(*arch)
                .map_err(fail(format!("seccomp_arch_add({arch:?})")))?;
        }

        // What to add: (rule, syscall, conditions), in the profile's order.
        let docker_arch = docker_arch_name(native);
        let mut unknown: Vec<String> = Vec::new();
        let mut additions = Vec::new();
        for rule in self
            .rules
            .iter()
            .filter(|r| r.applies(caps, docker_arch, kernel))
        {
            // libseccomp refuses a rule that repeats the default action, and
            // it would change nothing.
            if rule.action == self.default_action {
                continue;
            }
            let mut seen = [false; 6];
            let repeats = rule.args.iter().any(|a| {
                let i = a.index as usize % 6;
                std::mem::replace(&mut seen[i], true)
            });
            let conditions: Vec<Vec<ScmpArgCompare>> = if rule.args.is_empty() {
                vec![Vec::new()]
            } else if repeats {
                rule.args.iter().map(|a| vec![a.to_scmp()]).collect()
            } else {
                vec![rule.args.iter().map(|a| a.to_scmp()).collect()]
            };
            for name in &rule.names {
                match ScmpSyscall::from_name(name) {
                    Ok(syscall) => {
                        for condition in &conditions {
                            additions.push((rule, name, syscall, condition.clone()));
                        }
                    }
                    Err(_) if !unknown.contains(name) => unknown.push(name.clone()),
                    Err(_) => {}
                }
            }
        }

        // Like runc: for a long list, a binary search over the syscall
        // numbers instead of one comparison after another (the program gets
        // longer, the path through it much shorter). libseccomp 2.5.4 and
        // older misbehave with it on very few rules, hence the threshold; a
        // library without it just keeps the linear program.
        if additions.len() > 32 {
            let _ = ctx.set_ctl_optimize(2);
        }
        for (rule, name, syscall, condition) in additions {
            let action = rule.action.to_scmp();
            let step = || format!("seccomp_rule_add({}, {name})", rule.action);
            if condition.is_empty() {
                ctx.add_rule(action, syscall).map_err(fail(step()))?;
            } else {
                ctx.add_rule_conditional(action, syscall, &condition)
                    .map_err(fail(step()))?;
            }
        }

        let exported = export(&ctx).map_err(|cause| SeccompError::Compile {
            path: path.to_string(),
            step: "seccomp_export_bpf".into(),
            cause,
        })?;

        let permissive = self.default_action.is_permissive()
            || self.default_action == Action::Errno(libc::ENOSYS as u16);
        let (stub, enosys_above) = if permissive {
            (Vec::new(), Vec::new())
        } else {
            let limits = self.largest_numbers(&arches);
            let above = limits
                .iter()
                .map(|(arch, nr)| (arch_name(*arch).to_string(), *nr))
                .collect();
            (
                enosys_stub(&limits).map_err(|what| invalid(path, what))?,
                above,
            )
        };

        let mut program = stub.clone();
        program.extend(exported);
        if program.len() > libc::BPF_MAXINSNS as usize {
            return Err(invalid(
                path,
                format!(
                    "the filter has {} instructions; the kernel takes at most {}",
                    program.len(),
                    libc::BPF_MAXINSNS
                ),
            ));
        }
        Ok(Filter {
            program,
            default_action: self.default_action,
            stub: stub.len(),
            enosys_above,
            unknown,
        })
    }

    /// For each architecture, the largest syscall number any rule names,
    /// whatever the rule's conditions.
    fn largest_numbers(&self, arches: &[ScmpArch]) -> Vec<(ScmpArch, u32)> {
        let mut limits = Vec::new();
        for arch in arches {
            let largest = self
                .rules
                .iter()
                .flat_map(|r| r.names.iter())
                .filter_map(|name| ScmpSyscall::from_name_by_arch(name, *arch).ok())
                .map(i32::from)
                // Negative numbers are libseccomp's stand-ins for syscalls
                // this architecture does not have.
                .filter_map(|nr| u32::try_from(nr).ok())
                .max();
            if let Some(nr) = largest {
                limits.push((*arch, nr));
            }
        }
        limits
    }
}

/// libseccomp's program, as instructions.
fn export(ctx: &ScmpFilterContext) -> std::result::Result<Vec<Insn>, String> {
    use std::io::{Read, Seek};
    let fd = nix::sys::memfd::memfd_create(
        c"minibox-seccomp",
        nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
    )
    .map_err(|e| format!("memfd_create: {}", crate::error::describe(e)))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| describe_io(&e))?;
    if bytes.len() % 8 != 0 {
        return Err(format!(
            "{} bytes is not a whole number of instructions",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

// ---------------------------------------------------------------------------
// The ENOSYS stub
// ---------------------------------------------------------------------------

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// `offsetof(struct seccomp_data, nr)` and `arch`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

/// Where a jump goes, resolved once the stub is laid out.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The next instruction.
    Next,
    /// The instruction after label N.
    Label(usize),
    /// `return ERRNO(ENOSYS)`.
    Enosys,
    /// The first instruction of libseccomp's program.
    Filter,
}

enum Item {
    Load(u32),
    Jump {
        code: u16,
        k: u32,
        jt: Target,
        jf: Target,
    },
    Always(Target),
    Label(usize),
}

/// The instructions that answer ENOSYS for syscall numbers above
/// `limits[arch]`, then fall into the real filter:
///
/// ```text
///     ld  [arch]
///     jeq AUDIT_ARCH_X86_64, x86_64        ; one test per architecture
///     jeq AUDIT_ARCH_I386, i386
///     ja  filter                           ; any other: the filter decides
/// x86_64:
///     ld  [nr]
///     jset #0x40000000, x32                ; only when x32 is covered
///     jgt #LARGEST_X86_64, enosys
///     ja  filter
/// x32:
///     jgt #LARGEST_X32, enosys
///     ja  filter
/// i386:
///     ld  [nr]
///     jgt #LARGEST_I386, enosys
///     ja  filter
/// enosys:
///     ret #ERRNO(ENOSYS)
/// filter:
///     …libseccomp's program, which loads arch and nr again…
/// ```
///
/// On s390, syscall 0 is the door to numbers the kernel does not know: it
/// gets ENOSYS too.
///
/// "Larger than the largest known" is an approximation (runc makes the same
/// one): a syscall added in a gap below that number, or an x32 one (x32's
/// own calls sit at 512–547, above every new one), still meets the default
/// action.
fn enosys_stub(limits: &[(ScmpArch, u32)]) -> std::result::Result<Vec<Insn>, String> {
    // Group by the kernel's architecture value (x86_64 and x32 share one).
    let mut groups: Vec<(u32, Vec<(ScmpArch, u32)>)> = Vec::new();
    for (arch, nr) in limits {
        let Some(audit) = audit_arch(*arch) else {
            continue;
        };
        match groups.iter_mut().find(|(a, _)| *a == audit) {
            Some((_, members)) => members.push((*arch, *nr)),
            None => groups.push((audit, vec![(*arch, *nr)])),
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }

    let mut items = vec![Item::Load(ARCH_OFFSET)];
    for (n, (audit, _)) in groups.iter().enumerate() {
        items.push(Item::Jump {
            code: JEQ_K,
            k: *audit,
            jt: Target::Label(2 * n),
            jf: Target::Next,
        });
    }
    items.push(Item::Always(Target::Filter));
    for (n, (_, members)) in groups.iter().enumerate() {
        items.push(Item::Label(2 * n));
        items.push(Item::Load(NR_OFFSET));
        let x32 = members
            .iter()
            .find(|(a, _)| *a == ScmpArch::X32)
            .map(|m| m.1);
        let main = members
            .iter()
            .find(|(a, _)| *a != ScmpArch::X32)
            .map(|m| m.1);
        if members
            .iter()
            .any(|(a, _)| matches!(a, ScmpArch::S390 | ScmpArch::S390X))
        {
            items.push(Item::Jump {
                code: JEQ_K,
                k: 0,
                jt: Target::Enosys,
                jf: Target::Next,
            });
        }
        match (main, x32) {
            (Some(main), Some(x32)) => {
                items.push(Item::Jump {
                    code: JSET_K,
                    k: X32_SYSCALL_BIT,
                    jt: Target::Label(2 * n + 1),
                    jf: Target::Next,
                });
                items.push(Item::Jump {
                    code: JGT_K,
                    k: main,
                    jt: Target::Enosys,
                    jf: Target::Next,
                });
                items.push(Item::Always(Target::Filter));
                items.push(Item::Label(2 * n + 1));
                items.push(Item::Jump {
                    code: JGT_K,
                    k: x32,
                    jt: Target::Enosys,
                    jf: Target::Next,
                });
            }
            (Some(nr), None) | (None, Some(nr)) => items.push(Item::Jump {
                code: JGT_K,
                k: nr,
                jt: Target::Enosys,
                jf: Target::Next,
            }),
            (None, None) => {}
        }
        items.push(Item::Always(Target::Filter));
    }
    assemble(&items)
}

/// Lay out `items`, then `ret ERRNO(ENOSYS)`; jumps to `Filter` land just
/// after it.
fn assemble(items: &[Item]) -> std::result::Result<Vec<Insn>, String> {
    // Pass 1: where each label and the two fixed targets are.
    let mut labels = std::collections::HashMap::new();
    let mut pc = 0usize;
    for item in items {
        match item {
            Item::Label(n) => {
                labels.insert(*n, pc);
            }
            _ => pc += 1,
        }
    }
    let enosys = pc;
    let filter = pc + 1;
    let position = |target: Target, pc: usize| -> std::result::Result<usize, String> {
        match target {
            Target::Next => Ok(pc + 1),
            Target::Label(n) => labels.get(&n).copied().ok_or(format!("no label {n}")),
            Target::Enosys => Ok(enosys),
            Target::Filter => Ok(filter),
        }
    };
    // Pass 2: jumps are relative to the next instruction.
    let mut program = Vec::new();
    for item in items {
        let pc = program.len();
        let insn = match item {
            Item::Label(_) => continue,
            Item::Load(offset) => Insn {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k: *offset,
            },
            Item::Jump { code, k, jt, jf } => {
                let short = |target| -> std::result::Result<u8, String> {
                    let distance = position(target, pc)? - (pc + 1);
                    u8::try_from(distance)
                        .map_err(|_| format!("stub jump of {distance} is too far"))
                };
                Insn {
                    code: *code,
                    jt: short(*jt)?,
                    jf: short(*jf)?,
                    k: *k,
                }
            }
            Item::Always(target) => Insn {
                code: JA,
                jt: 0,
                jf: 0,
                k: (position(*target, pc)? - (pc + 1)) as u32,
            },
        };
        program.push(insn);
    }
    program.push(Insn {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    });
    Ok(program)
}

// ---------------------------------------------------------------------------
// --security-opt
// ---------------------------------------------------------------------------

/// What `--security-opt seccomp=…` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeccompChoice {
    /// `seccomp=unconfined`: no filter at all.
    Unconfined,
    /// `seccomp=builtin`, or no option: docker's default.
    Default,
    /// `seccomp=PATH`: this profile, already read and checked.
    Profile(Profile),
}

impl SeccompChoice {
    /// The profile to compile, or `None` for unconfined.
    pub fn into_profile(self) -> Option<Profile> {
        match self {
            SeccompChoice::Unconfined => None,
            SeccompChoice::Default => Some(Profile::docker_default()),
            SeccompChoice::Profile(profile) => Some(profile),
        }
    }
}

/// One `--security-opt` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecurityOpt {
    Seccomp(SeccompChoice),
    /// `no-new-privileges[=true|false]`.
    NoNewPrivileges(bool),
}

/// Parse one `--security-opt` as docker does: `seccomp=unconfined`,
/// `seccomp=builtin`, `seccomp=/path/profile.json` (read and checked now,
/// so a bad file fails before anything is created), `no-new-privileges`,
/// `no-new-privileges=true|false`. docker's older `key:value` spelling is
/// accepted too.
pub fn parse_security_opt(option: &str) -> Result<SecurityOpt> {
    let fail = |why: String| -> Error {
        SeccompError::Option {
            option: option.to_string(),
            why,
        }
        .into()
    };
    let (key, value) = match option.find(['=', ':']) {
        Some(at) => (&option[..at], Some(&option[at + 1..])),
        None => (option, None),
    };
    match (key, value) {
        ("no-new-privileges", None) => Ok(SecurityOpt::NoNewPrivileges(true)),
        ("no-new-privileges", Some(v)) => match v {
            "true" => Ok(SecurityOpt::NoNewPrivileges(true)),
            "false" => Ok(SecurityOpt::NoNewPrivileges(false)),
            _ => Err(fail(format!("{v:?} is not true or false"))),
        },
        ("seccomp", Some("unconfined")) => Ok(SecurityOpt::Seccomp(SeccompChoice::Unconfined)),
        ("seccomp", Some("builtin")) => Ok(SecurityOpt::Seccomp(SeccompChoice::Default)),
        ("seccomp", Some("")) | ("seccomp", None) => Err(fail(
            "give a profile: seccomp=unconfined, seccomp=builtin or seccomp=PROFILE.json".into(),
        )),
        ("seccomp", Some(path)) => Ok(SecurityOpt::Seccomp(SeccompChoice::Profile(
            Profile::from_file(path)?,
        ))),
        ("label" | "apparmor" | "systempaths" | "writable-cgroups" | "mask" | "unmask", _) => Err(
            fail("not supported by minibox (it knows seccomp=… and no-new-privileges)".into()),
        ),
        _ => Err(fail(
            "unknown option (expected seccomp=unconfined|builtin|PROFILE.json or no-new-privileges[=true|false])"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_line(err: &Error) -> String {
        let text = err.to_string();
        assert!(!text.contains('\n'), "not one line: {text}");
        text
    }

    #[test]
    fn capability_names_and_bits() {
        let docker = Caps::from_names(&super::super::caps::DOCKER_DEFAULT).unwrap();
        assert_eq!(docker.bits(), 0xa804_25fb);
        assert_eq!(capability_number("cap_sys_admin"), Some(21));
        assert!(Caps::from_names(&["ALL"]).unwrap().contains(40));
        let err = Caps::from_names(&["NOPE"]).unwrap_err();
        assert_eq!(one_line(&err), "unknown capability \"NOPE\"");
    }

    #[test]
    fn kernel_versions() {
        let v = KernelVersion::parse("6.18.44-fc-v669").unwrap();
        assert_eq!(
            v,
            KernelVersion {
                major: 6,
                minor: 18
            }
        );
        assert!(KernelVersion::parse("4.8").unwrap() < v);
        assert!(KernelVersion::parse("x").is_none());
        assert!(KernelVersion::running().is_ok());
    }

    #[test]
    fn actions_show_their_errno_by_name() {
        assert_eq!(Action::Errno(1).to_string(), "ERRNO(EPERM)");
        assert_eq!(Action::Errno(38).to_string(), "ERRNO(ENOSYS)");
        assert_eq!(Action::KillProcess.to_string(), "KILL_PROCESS");
    }

    #[test]
    fn the_default_allowlist_leaves_out_what_needs_a_capability() {
        let everyday: Vec<&str> = allowed::ALL
            .iter()
            .flat_map(|list| list.split_whitespace())
            .collect();
        for (_, gated) in BY_CAPABILITY {
            for name in gated.split_whitespace() {
                assert!(
                    !everyday.contains(&name),
                    "{name} is allowed unconditionally"
                );
            }
        }
        for name in ["keyctl", "add_key", "request_key", "socket", "personality"] {
            assert!(!everyday.contains(&name), "{name}");
        }
        let mut sorted = everyday.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), everyday.len(), "a name is listed twice");
    }

    #[test]
    fn rules_follow_caps_arches_and_kernel() {
        let profile = Profile::docker_default();
        let kernel = KernelVersion { major: 6, minor: 1 };
        let applies = |name: &str, caps: Caps, arch: &str| {
            profile
                .rules
                .iter()
                .filter(|r| r.names.iter().any(|n| n == name))
                .filter(|r| r.applies(caps, arch, kernel))
                .map(|r| r.action)
                .collect::<Vec<_>>()
        };
        let admin = cap("CAP_SYS_ADMIN");
        assert_eq!(applies("mount", Caps::empty(), "amd64"), vec![]);
        assert_eq!(applies("mount", admin, "amd64"), vec![Action::Allow]);
        assert_eq!(
            applies("clone3", Caps::empty(), "amd64"),
            vec![Action::Errno(38)]
        );
        assert_eq!(applies("clone3", admin, "amd64"), vec![Action::Allow]);
        assert_eq!(applies("arch_prctl", Caps::empty(), "arm64"), vec![]);
        let old = KernelVersion { major: 4, minor: 4 };
        let ptrace = profile
            .rules
            .iter()
            .find(|r| r.names.iter().any(|n| n == "ptrace"));
        assert!(ptrace.is_some_and(|r| !r.applies(Caps::empty(), "amd64", old)));
    }

    #[test]
    fn the_stub_jumps_land_where_they_should() {
        let limits = [
            (ScmpArch::X8664, 450),
            (ScmpArch::X86, 460),
            (ScmpArch::X32, X32_SYSCALL_BIT | 547),
        ];
        let stub = enosys_stub(&limits).unwrap();
        // The last instruction is the ENOSYS return; every `ja` lands on
        // the instruction just after the stub.
        let last = stub.len() - 1;
        assert_eq!(stub[last].code, RET_K);
        assert_eq!(stub[last].k, libc::SECCOMP_RET_ERRNO | 38);
        for (pc, insn) in stub.iter().enumerate() {
            if insn.code == JA {
                assert_eq!(pc + 1 + insn.k as usize, stub.len(), "ja at {pc}");
            }
            if insn.code == JGT_K {
                assert_eq!(pc + 1 + insn.jt as usize, last, "jgt at {pc}");
            }
        }
        assert!(enosys_stub(&[]).unwrap().is_empty());
    }
}
