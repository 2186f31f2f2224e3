//! The devices cgroup: which device nodes a container may create and open.
//!
//! A device node is only a name for a number: `b 8:0` is the first disk
//! whatever the file is called and wherever it lies. Root in a container
//! keeps CAP_MKNOD by default (docker keeps it), so without this check
//! `mknod /tmp/disk b 8 0` followed by `open("/tmp/disk")` reads the host's
//! disk, however carefully `/dev` was filled. The kernel asks the
//! container's cgroup on every `mknod` and every `open` of a device node:
//!
//! * **v1** ([`apply_v1`]): the `devices` controller keeps a default (allow
//!   or deny everything) and a list of exceptions. Writing `a` into
//!   `devices.deny` makes the default "deny" and empties the list; each line
//!   written into `devices.allow` then adds an exception; `devices.list`
//!   shows the result.
//! * **v2** ([`attach_v2`]): there is no devices controller and no such
//!   files. Instead a small eBPF program of type
//!   `BPF_PROG_TYPE_CGROUP_DEVICE` is attached to the cgroup; the kernel
//!   runs it with (type, major, minor, access) and it answers 1 (go on) or
//!   0 (`EPERM`). [`Program::compile`] writes that program from the same
//!   rules, and [`Program::run`] interprets it here, without the kernel.
//!
//! Rules ([`DeviceRule`]) are read the way v1's kernel applies writes to its
//! files, one after the other ([`Policy`]), so both versions enforce the
//! same thing. [`default_rules`] is docker's list; [`apply`] uses the right
//! mechanism for a container's [`Cgroup`].

use super::{write, Cgroup, Controller, Hierarchy};
use crate::error::{describe, Error, Result};
use crate::trace;
use nix::errno::Errno;
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The largest major number Linux has (12 bits).
pub const MAX_MAJOR: u32 = (1 << 12) - 1;
/// The largest minor number Linux has (20 bits).
pub const MAX_MINOR: u32 = (1 << 20) - 1;

/// A device's type, as the rules name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// `c`: a character device (a terminal, `/dev/null`, …).
    Char,
    /// `b`: a block device (a disk, a partition, a loop device).
    Block,
    /// `a`: every device; only in the rule that resets the whole list.
    All,
}

impl DeviceKind {
    /// The letter the v1 files and docker's flags use.
    pub fn letter(self) -> char {
        match self {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
            DeviceKind::All => 'a',
        }
    }

    /// How the kernel tells a BPF program the type (`BPF_DEVCG_DEV_BLOCK`,
    /// `BPF_DEVCG_DEV_CHAR`).
    pub fn bpf_code(self) -> Option<u32> {
        match self {
            DeviceKind::Block => Some(1),
            DeviceKind::Char => Some(2),
            DeviceKind::All => None,
        }
    }
}

bitflags::bitflags! {
    /// What is done to a device. The bits are the kernel's
    /// `BPF_DEVCG_ACC_*` values: what a BPF program finds in the upper
    /// half of `access_type`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Access: u32 {
        /// `m`: create a node for it (`mknod`).
        const MKNOD = 1;
        /// `r`: open it for reading.
        const READ = 2;
        /// `w`: open it for writing.
        const WRITE = 4;
    }
}

impl Access {
    /// `rwm`, `r`, `mw`, …: each letter at most once.
    pub fn parse(text: &str) -> std::result::Result<Access, String> {
        let bad = || format!("access {text:?}: use r, w and m, each at most once");
        let mut access = Access::empty();
        for letter in text.chars() {
            let bit = match letter {
                'r' => Access::READ,
                'w' => Access::WRITE,
                'm' => Access::MKNOD,
                _ => return Err(bad()),
            };
            if access.contains(bit) {
                return Err(bad());
            }
            access |= bit;
        }
        if access.is_empty() {
            return Err(bad());
        }
        Ok(access)
    }
}

impl fmt::Display for Access {
    /// Always in the order `rwm`, as `devices.list` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.contains(bit) {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

/// One device rule: allow or deny `access` to the devices of `kind` with
/// these numbers (`None` stands for `*`, any number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    /// Deny everything: the first rule of docker's list.
    pub const DENY_ALL: DeviceRule = DeviceRule {
        allow: false,
        kind: DeviceKind::All,
        major: None,
        minor: None,
        access: Access::all(),
    };

    /// Allow everything (`--privileged`).
    pub const ALLOW_ALL: DeviceRule = DeviceRule {
        allow: true,
        ..DeviceRule::DENY_ALL
    };

    /// An allow rule.
    pub const fn allow(
        kind: DeviceKind,
        major: Option<u32>,
        minor: Option<u32>,
        access: Access,
    ) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// docker's `--device-cgroup-rule`: `TYPE MAJOR:MINOR ACCESS`, such as
    /// `c 1:3 rwm`, `b 7:* r` or `a *:* rwm`, always an allow rule (docker
    /// has no flag for deny rules).
    pub fn parse(text: &str) -> std::result::Result<DeviceRule, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [kind, numbers, access] = fields.as_slice() else {
            return Err(format!(
                "{text:?}: expected TYPE MAJOR:MINOR ACCESS, like \"c 1:3 rwm\""
            ));
        };
        let kind = match *kind {
            "c" => DeviceKind::Char,
            "b" => DeviceKind::Block,
            "a" => DeviceKind::All,
            other => {
                return Err(format!(
                    "device type {other:?}: use c (char), b (block) or a (all)"
                ))
            }
        };
        let Some((major, minor)) = numbers.split_once(':') else {
            return Err(format!("{numbers:?} is not MAJOR:MINOR (numbers or *)"));
        };
        let number = |text: &str, max: u32, what: &str| match text {
            "*" => Ok(None),
            _ => match text.parse::<u32>() {
                Ok(n) if n <= max => Ok(Some(n)),
                Ok(n) => Err(format!("{what} {n} is out of range (0-{max})")),
                Err(_) => Err(format!("{numbers:?} is not MAJOR:MINOR (numbers or *)")),
            },
        };
        let rule = DeviceRule::allow(
            kind,
            number(major, MAX_MAJOR, "major")?,
            number(minor, MAX_MINOR, "minor")?,
            Access::parse(access)?,
        );
        rule.check()?;
        Ok(rule)
    }

    /// What the kernel would refuse, said before anything is written.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.kind == DeviceKind::All
            && (self.major.is_some() || self.minor.is_some() || self.access != Access::all())
        {
            return Err(format!(
                "{:?}: type a means every device and every access: write it as \"a *:* rwm\"",
                self.line()
            ));
        }
        if self.access.is_empty() {
            return Err(format!("{:?}: the rule gives no access", self.line()));
        }
        if self.major.is_some_and(|m| m > MAX_MAJOR) || self.minor.is_some_and(|m| m > MAX_MINOR) {
            return Err(format!(
                "{:?}: majors go up to {MAX_MAJOR}, minors up to {MAX_MINOR}",
                self.line()
            ));
        }
        Ok(())
    }

    /// The line v1's `devices.allow` and `devices.deny` take: `c 1:3 rwm`
    /// (and `a` alone for every device).
    pub fn line(&self) -> String {
        if self.kind == DeviceKind::All {
            return "a".into();
        }
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind.letter(),
            number(self.major),
            number(self.minor),
            self.access
        )
    }

    /// Whether this rule names the device (type and numbers; not access).
    pub fn names(&self, kind: DeviceKind, major: u32, minor: u32) -> bool {
        (self.kind == DeviceKind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

impl fmt::Display for DeviceRule {
    /// `allow c 1:3 rwm`, `deny a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.allow { "allow" } else { "deny" };
        write!(f, "{verb} {}", self.line())
    }
}

/// The devices docker lets a container use, with what they are. docker
/// writes a deny-all rule and six of these into its OCI spec (moby's
/// `oci/defaults.go`), and runc appends its own built-in list (runc's
/// `specconv.AllowedDevices`); this table is the union of the two.
/// moby's spec also denies `c 10:229` (`/dev/fuse`), which changes nothing
/// after "deny all", so it is left out. `c 10:200` (`/dev/net/tun`) is an
/// accident of docker's history that runc 1.2.0 removed and 1.2.4 put back
/// because users depended on it.
pub const DOCKER_DEVICES: [(&str, DeviceRule); 12] = {
    use DeviceKind::{Block, Char};
    const RWM: Access = Access::all();
    [
        (
            "mknod of any char device",
            DeviceRule::allow(Char, None, None, Access::MKNOD),
        ),
        (
            "mknod of any block device",
            DeviceRule::allow(Block, None, None, Access::MKNOD),
        ),
        ("/dev/null", DeviceRule::allow(Char, Some(1), Some(3), RWM)),
        ("/dev/zero", DeviceRule::allow(Char, Some(1), Some(5), RWM)),
        ("/dev/full", DeviceRule::allow(Char, Some(1), Some(7), RWM)),
        (
            "/dev/random",
            DeviceRule::allow(Char, Some(1), Some(8), RWM),
        ),
        (
            "/dev/urandom",
            DeviceRule::allow(Char, Some(1), Some(9), RWM),
        ),
        ("/dev/tty", DeviceRule::allow(Char, Some(5), Some(0), RWM)),
        (
            "/dev/console",
            DeviceRule::allow(Char, Some(5), Some(1), RWM),
        ),
        ("/dev/ptmx", DeviceRule::allow(Char, Some(5), Some(2), RWM)),
        ("/dev/pts/*", DeviceRule::allow(Char, Some(136), None, RWM)),
        (
            "/dev/net/tun",
            DeviceRule::allow(Char, Some(10), Some(200), RWM),
        ),
    ]
};

/// docker's default: deny everything, then allow [`DOCKER_DEVICES`].
/// Opening anything else, or any block device, fails with `EPERM`; creating
/// nodes is allowed (opening them is what matters).
pub fn default_rules() -> Vec<DeviceRule> {
    std::iter::once(DeviceRule::DENY_ALL)
        .chain(DOCKER_DEVICES.iter().map(|(_, rule)| *rule))
        .collect()
}

/// `--privileged`: every device.
pub fn privileged_rules() -> Vec<DeviceRule> {
    vec![DeviceRule::ALLOW_ALL]
}

/// What a well-known device is (for the trace and the program's listing).
pub fn well_known(rule: &DeviceRule) -> Option<&'static str> {
    DOCKER_DEVICES
        .iter()
        .find(|(_, known)| {
            known.kind == rule.kind && known.major == rule.major && known.minor == rule.minor
        })
        .map(|(name, _)| *name)
}

/// A host device handed to the container with docker's `--device
/// HOST[:CONTAINER[:rwm]]`: the node to create inside and the rule that
/// lets the container use it. The container's node copies the host node's
/// permissions and owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostDevice {
    pub host: PathBuf,
    pub container: PathBuf,
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    pub access: Access,
    /// The host node's permission bits (`0o660`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl HostDevice {
    /// `/dev/fuse`, `/dev/sdb:/dev/xvdc`, `/dev/sdb:/dev/xvdc:r`, or
    /// `/dev/sdb:r` (docker reads a second part made of r, w and m as the
    /// access). The host path is looked up now (following symlinks, as
    /// docker does) and must be a character or block device.
    pub fn parse(spec: &str) -> std::result::Result<HostDevice, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, access) = match parts.as_slice() {
            [host] => (*host, *host, "rwm"),
            [host, second] if Access::parse(second).is_ok() => (*host, *host, *second),
            [host, container] => (*host, *container, "rwm"),
            [host, container, access] => (*host, *container, *access),
            _ => {
                return Err(format!(
                    "{spec:?}: expected HOST[:CONTAINER[:ACCESS]], like /dev/fuse or /dev/sdb:/dev/xvdc:r"
                ))
            }
        };
        let access = Access::parse(access)?;
        let (host, container) = (PathBuf::from(host), PathBuf::from(container));
        if !host.is_absolute() || !container.is_absolute() {
            return Err(format!("{spec:?}: device paths must be absolute"));
        }
        if container
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(format!("{}: must not contain ..", container.display()));
        }
        let stat = nix::sys::stat::stat(&host)
            .map_err(|errno| format!("{}: {}", host.display(), describe(errno)))?;
        let kind = match stat.st_mode & libc::S_IFMT {
            libc::S_IFCHR => DeviceKind::Char,
            libc::S_IFBLK => DeviceKind::Block,
            libc::S_IFDIR => {
                return Err(format!(
                    "{} is a directory: give a device node, like /dev/fuse",
                    host.display()
                ))
            }
            _ => {
                return Err(format!(
                    "{} is not a device node (not a character or block device)",
                    host.display()
                ))
            }
        };
        // Majors and minors fit in 12 and 20 bits: the casts lose nothing.
        let major = nix::sys::stat::major(stat.st_rdev) as u32;
        let minor = nix::sys::stat::minor(stat.st_rdev) as u32;
        Ok(HostDevice {
            host,
            container,
            kind,
            major,
            minor,
            access,
            mode: stat.st_mode & 0o7777,
            uid: stat.st_uid,
            gid: stat.st_gid,
        })
    }

    /// The allow rule for this device.
    pub fn rule(&self) -> DeviceRule {
        DeviceRule::allow(self.kind, Some(self.major), Some(self.minor), self.access)
    }
}

/// What a list of rules adds up to, kept as v1's kernel keeps it: a
/// default and, in the order they were first written, the exceptions to it.
///
/// Each rule changes the policy the way writing it into `devices.allow` or
/// `devices.deny` changes a v1 cgroup:
/// * `a` sets the default and forgets every exception;
/// * a rule that says the opposite of the default adds an exception (or
///   adds its access to an exception for exactly the same devices);
/// * a rule that agrees with the default takes its access away from the
///   exception for exactly the same devices (not from a wider or narrower
///   one: denying `c 1:*` leaves an allowed `c 1:3` allowed, as in v1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub default_allow: bool,
    /// Each says the opposite of the default; none has type `a`.
    pub exceptions: Vec<DeviceRule>,
}

impl Policy {
    /// Apply `rules` to a new cgroup, which (like one under the root)
    /// allows everything.
    pub fn from_rules(rules: &[DeviceRule]) -> Result<Policy> {
        let mut policy = Policy {
            default_allow: true,
            exceptions: Vec::new(),
        };
        for rule in rules {
            rule.check().map_err(Error::Usage)?;
            policy.apply(rule);
        }
        Ok(policy)
    }

    fn apply(&mut self, rule: &DeviceRule) {
        if rule.kind == DeviceKind::All {
            self.default_allow = rule.allow;
            self.exceptions.clear();
            return;
        }
        let same =
            |e: &DeviceRule| e.kind == rule.kind && e.major == rule.major && e.minor == rule.minor;
        if rule.allow == self.default_allow {
            for exception in self.exceptions.iter_mut().filter(|e| same(e)) {
                exception.access.remove(rule.access);
            }
            self.exceptions.retain(|e| !e.access.is_empty());
        } else if let Some(exception) = self.exceptions.iter_mut().find(|e| same(e)) {
            exception.access |= rule.access;
        } else {
            self.exceptions.push(*rule);
        }
    }

    /// The v1 kernel's answer for one device access. With a default of
    /// "deny", one exception must grant *all* of `access` (an `O_RDWR`
    /// open needs an exception with both `r` and `w`); with a default of
    /// "allow", an exception that denies *any* part of it refuses it.
    pub fn allows(&self, kind: DeviceKind, major: u32, minor: u32, access: Access) -> bool {
        let mut named = self
            .exceptions
            .iter()
            .filter(|e| e.names(kind, major, minor));
        if self.default_allow {
            !named.any(|e| e.access.intersects(access))
        } else {
            named.any(|e| e.access.contains(access))
        }
    }
}

/// v1: write `rules` into the cgroup's `devices.deny` and `devices.allow`
/// (`dir` is the container's directory in the devices tree). First the
/// default (`a` into `devices.deny`, or into `devices.allow` for
/// `--privileged`), then each exception into the other file: the [`Policy`]
/// the rules add up to, so a rule that changes nothing is not written.
pub fn apply_v1(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    let policy = Policy::from_rules(rules)?;
    let (default_file, exception_file) = if policy.default_allow {
        ("devices.allow", "devices.deny")
    } else {
        ("devices.deny", "devices.allow")
    };
    write(&dir.join(default_file), "a")?;
    for exception in &policy.exceptions {
        write(&dir.join(exception_file), &exception.line())?;
    }
    Ok(())
}

/// Put the container's cgroup under `rules`: v1's files on a v1 or hybrid
/// machine, a BPF program on v2. Call it after [`Cgroup::create`] and
/// before init starts, so that init's own `mknod`s are already checked.
pub fn apply(cgroup: &Cgroup, rules: &[DeviceRule]) -> Result<()> {
    if cgroup.dirs().is_empty() || !nix::unistd::geteuid().is_root() {
        // A rootless container (stage 10), with no cgroup or one in a
        // delegated subtree: it cannot make device nodes (no user namespace
        // may), and opens the host's only as its user may. Loading a BPF
        // program would take CAP_BPF on the host, which a user lacks.
        return Ok(());
    }
    match &cgroup.hierarchy {
        Hierarchy::Unified { root } => {
            attach_v2(&root.join(&cgroup.relative), &Program::compile(rules)?)
        }
        Hierarchy::Legacy { trees, .. } => {
            let Some((_, tree)) = trees.iter().find(|(c, _)| *c == Controller::Devices) else {
                return Err(Error::Usage(
                    "this machine has no v1 devices hierarchy: device access cannot be limited"
                        .into(),
                ));
            };
            apply_v1(&tree.join(&cgroup.relative), rules)
        }
    }
}

// ---------------------------------------------------------------------
// The v2 program: eBPF, assembled by hand.
// ---------------------------------------------------------------------

// Instruction classes, sizes, modes, operations and sources (linux/bpf.h,
// linux/bpf_common.h): an opcode is the OR of a class and its parts.
const BPF_LDX: u8 = 0x01;
const BPF_ALU: u8 = 0x04;
const BPF_JMP: u8 = 0x05;
const BPF_W: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_X: u8 = 0x08;
const BPF_AND: u8 = 0x50;
const BPF_RSH: u8 = 0x70;
const BPF_MOV: u8 = 0xb0;
const BPF_JEQ: u8 = 0x10;
const BPF_JSET: u8 = 0x40;
const BPF_JNE: u8 = 0x50;
const BPF_EXIT: u8 = 0x90;

/// r0 holds the answer; r1 the context pointer on entry; r2..r5 below hold
/// what the program reads from it.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// One eBPF instruction, `struct bpf_insn`: an opcode, two registers, a
/// 16-bit offset (jumps: how many instructions to skip) and a 32-bit
/// immediate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// `dst = *(u32 *)(src + off)`
    const fn load_word(dst: u8, src: u8, off: i16) -> Insn {
        Insn {
            code: BPF_LDX | BPF_MEM | BPF_W,
            dst,
            src,
            off,
            imm: 0,
        }
    }

    /// A 32-bit ALU operation with an immediate: `w<dst> op= imm`.
    const fn alu32(op: u8, dst: u8, imm: i32) -> Insn {
        Insn {
            code: BPF_ALU | op | BPF_K,
            dst,
            src: 0,
            off: 0,
            imm,
        }
    }

    /// `w<dst> = w<src>`
    const fn mov32_reg(dst: u8, src: u8) -> Insn {
        Insn {
            code: BPF_ALU | BPF_MOV | BPF_X,
            dst,
            src,
            off: 0,
            imm: 0,
        }
    }

    /// `if r<dst> op imm goto +off`
    const fn jump(op: u8, dst: u8, imm: i32, off: i16) -> Insn {
        Insn {
            code: BPF_JMP | op | BPF_K,
            dst,
            src: 0,
            off,
            imm,
        }
    }

    const fn exit() -> Insn {
        Insn {
            code: BPF_JMP | BPF_EXIT,
            dst: 0,
            src: 0,
            off: 0,
            imm: 0,
        }
    }

    /// The 8 bytes the kernel reads: the registers share one byte (a C
    /// bitfield, `dst_reg:4, src_reg:4`, low bits first on little-endian).
    pub fn to_bytes(self) -> [u8; 8] {
        let regs = if cfg!(target_endian = "little") {
            (self.src << 4) | (self.dst & 0x0f)
        } else {
            (self.dst << 4) | (self.src & 0x0f)
        };
        let [o0, o1] = self.off.to_ne_bytes();
        let [i0, i1, i2, i3] = self.imm.to_ne_bytes();
        [self.code, regs, o0, o1, i0, i1, i2, i3]
    }
}

impl fmt::Display for Insn {
    /// The notation of the kernel's verifier log and `bpftool prog dump`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (dst, src, imm, off) = (self.dst, self.src, self.imm, self.off);
        match self.code {
            c if c == BPF_LDX | BPF_MEM | BPF_W => {
                write!(f, "r{dst} = *(u32 *)(r{src} + {off})")
            }
            c if c == BPF_ALU | BPF_AND | BPF_K => write!(f, "w{dst} &= {imm:#x}"),
            c if c == BPF_ALU | BPF_RSH | BPF_K => write!(f, "w{dst} >>= {imm}"),
            c if c == BPF_ALU | BPF_MOV | BPF_K => write!(f, "w{dst} = {imm}"),
            c if c == BPF_ALU | BPF_MOV | BPF_X => write!(f, "w{dst} = w{src}"),
            c if c == BPF_JMP | BPF_JNE | BPF_K => write!(f, "if r{dst} != {imm} goto {off:+}"),
            c if c == BPF_JMP | BPF_JEQ | BPF_K => write!(f, "if r{dst} == {imm} goto {off:+}"),
            c if c == BPF_JMP | BPF_JSET | BPF_K => {
                write!(f, "if r{dst} & {imm:#x} goto {off:+}")
            }
            c if c == BPF_JMP | BPF_EXIT => write!(f, "exit"),
            c => write!(f, "(opcode {c:#04x})"),
        }
    }
}

/// A `BPF_PROG_TYPE_CGROUP_DEVICE` program, with the comments its listing
/// shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Program {
    insns: Vec<Insn>,
    /// One comment per instruction (may be empty).
    comments: Vec<String>,
    /// Header lines shown above an instruction: (index, text).
    headers: Vec<(usize, String)>,
}

/// A jump whose target is "the next rule", patched once the rule's block
/// is complete.
const TO_NEXT_RULE: i16 = i16::MIN;

impl Program {
    /// The program for `rules` (read as [`Policy`] reads them).
    pub fn compile(rules: &[DeviceRule]) -> Result<Program> {
        Ok(Program::from_policy(&Policy::from_rules(rules)?))
    }

    /// The program for a policy:
    ///
    /// ```text
    /// r2 = type, r3 = access, r4 = major, r5 = minor     (6 instructions)
    /// for each exception: a block that jumps to the next block as soon
    ///   as one comparison fails, else sets r0 to the exception's answer
    ///   and exits
    /// r0 = the default; exit
    /// ```
    pub fn from_policy(policy: &Policy) -> Program {
        let mut program = Program::default();
        program.header("read the request: struct bpf_cgroup_dev_ctx at r1");
        program.push(Insn::load_word(R2, R1, 0), "access_type");
        program.push(
            Insn::alu32(BPF_AND, R2, 0xffff),
            "r2 = device type: 1 block, 2 char",
        );
        program.push(Insn::load_word(R3, R1, 0), "access_type");
        program.push(
            Insn::alu32(BPF_RSH, R3, 16),
            "r3 = access: 1 mknod, 2 read, 4 write",
        );
        program.push(Insn::load_word(R4, R1, 4), "r4 = major");
        program.push(Insn::load_word(R5, R1, 8), "r5 = minor");
        for exception in &policy.exceptions {
            program.rule_block(exception, policy.default_allow);
        }
        program.header(format!(
            "no rule matched: {}",
            if policy.default_allow {
                "allow"
            } else {
                "deny"
            }
        ));
        program.push(
            Insn::alu32(BPF_MOV, R0, i32::from(policy.default_allow)),
            if policy.default_allow {
                "1: allowed"
            } else {
                "0: EPERM"
            },
        );
        program.push(Insn::exit(), "");
        program
    }

    /// One exception: compare type, numbers and access, each mismatch
    /// jumping past the block; all matched: return the exception's answer.
    fn rule_block(&mut self, rule: &DeviceRule, default_allow: bool) {
        let start = self.insns.len();
        let name = well_known(rule).map_or(String::new(), |n| format!(" ({n})"));
        self.header(format!("{rule}{name}"));
        // `All` never reaches here: `Policy` keeps no such exception.
        let code = rule.kind.bpf_code().unwrap_or(0);
        let kind = if rule.kind == DeviceKind::Block {
            "block"
        } else {
            "char"
        };
        self.push(
            Insn::jump(BPF_JNE, R2, code as i32, TO_NEXT_RULE),
            format!("not a {kind} device"),
        );
        if let Some(major) = rule.major {
            self.push(
                Insn::jump(BPF_JNE, R4, major as i32, TO_NEXT_RULE),
                format!("major is not {major}"),
            );
        }
        if let Some(minor) = rule.minor {
            self.push(
                Insn::jump(BPF_JNE, R5, minor as i32, TO_NEXT_RULE),
                format!("minor is not {minor}"),
            );
        }
        if rule.access != Access::all() {
            if default_allow {
                // A deny exception refuses a request that asks for any of
                // its accesses.
                self.push(Insn::mov32_reg(R1, R3), "");
                self.push(Insn::alu32(BPF_AND, R1, rule.access.bits() as i32), "");
                self.push(
                    Insn::jump(BPF_JEQ, R1, 0, TO_NEXT_RULE),
                    format!("asks for none of {}", rule.access),
                );
            } else {
                // An allow exception grants a request only if it asks for
                // nothing else: one JSET tests every other bit at once.
                let others = (Access::all() - rule.access).bits() as i32;
                self.push(
                    Insn::jump(BPF_JSET, R3, others, TO_NEXT_RULE),
                    format!("asks for more than {}", rule.access),
                );
            }
        }
        self.push(
            Insn::alu32(BPF_MOV, R0, i32::from(rule.allow)),
            if rule.allow { "1: allowed" } else { "0: EPERM" },
        );
        self.push(Insn::exit(), "");
        let end = self.insns.len();
        for (at, insn) in self.insns.iter_mut().enumerate().skip(start) {
            if insn.off == TO_NEXT_RULE {
                // A jump lands on pc + 1 + off. Blocks are a few
                // instructions long, far below i16::MAX.
                insn.off = (end - at - 1) as i16;
            }
        }
    }

    fn push(&mut self, insn: Insn, comment: impl Into<String>) {
        self.insns.push(insn);
        self.comments.push(comment.into());
    }

    fn header(&mut self, text: impl Into<String>) {
        self.headers.push((self.insns.len(), text.into()));
    }

    /// A program of raw instructions (tests: programs the verifier rejects).
    #[cfg(test)]
    fn raw(insns: Vec<Insn>) -> Program {
        let comments = vec![String::new(); insns.len()];
        Program {
            insns,
            comments,
            headers: Vec::new(),
        }
    }

    pub fn insns(&self) -> &[Insn] {
        &self.insns
    }

    pub fn len(&self) -> usize {
        self.insns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }

    /// The program as annotated assembly: index, the 8 bytes the kernel
    /// gets, the instruction, a comment; each rule's block under a header.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        for (at, insn) in self.insns.iter().enumerate() {
            for (_, header) in self.headers.iter().filter(|(i, _)| *i == at) {
                out.push_str(&format!("      ; {header}\n"));
            }
            let bytes: Vec<String> = insn.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            let line = format!("{at:>4}: {}  {insn}", bytes.join(" "));
            match self.comments.get(at).filter(|c| !c.is_empty()) {
                Some(comment) => out.push_str(&format!("{line:<62}; {comment}\n")),
                None => out.push_str(&format!("{line}\n")),
            }
        }
        out
    }

    /// Run the program on one request, as the kernel would, by interpreting
    /// the part of eBPF that [`Program::compile`] emits. `Ok(true)`: the
    /// access is allowed. An error stands for what the kernel's verifier
    /// would have refused to load (an unknown opcode, a register read
    /// before it was written, a jump backwards or out of the program, an
    /// answer other than 0 or 1).
    pub fn run(
        &self,
        kind: DeviceKind,
        major: u32,
        minor: u32,
        access: Access,
    ) -> std::result::Result<bool, String> {
        #[derive(Clone, Copy)]
        enum Value {
            Unset,
            /// r1 on entry: a pointer to the 12-byte context.
            Context,
            Scalar(u64),
        }
        let context: [u32; 3] = [
            (access.bits() << 16) | kind.bpf_code().unwrap_or(0),
            major,
            minor,
        ];
        let mut regs = [Value::Unset; 11];
        regs[1] = Value::Context;
        let scalar = |regs: &[Value; 11], r: u8, pc: usize| match regs.get(r as usize) {
            Some(Value::Scalar(v)) => Ok(*v),
            Some(Value::Context) => Err(format!("{pc}: r{r} is a pointer, not a number")),
            _ => Err(format!("{pc}: r{r} is read before it is written")),
        };
        let mut pc = 0;
        loop {
            let Some(insn) = self.insns.get(pc).copied() else {
                return Err(format!("{pc}: the program runs off its end"));
            };
            let dst = insn.dst as usize;
            if dst > 9 {
                return Err(format!("{pc}: r{dst} cannot be a destination"));
            }
            let mut next = pc + 1;
            match insn.code {
                c if c == BPF_LDX | BPF_MEM | BPF_W => {
                    if !matches!(regs.get(insn.src as usize), Some(Value::Context)) {
                        return Err(format!("{pc}: loads only from the context"));
                    }
                    let field = match insn.off {
                        0 => 0,
                        4 => 1,
                        8 => 2,
                        off => return Err(format!("{pc}: no context field at offset {off}")),
                    };
                    regs[dst] = Value::Scalar(u64::from(context[field]));
                }
                c if c & 0x07 == BPF_ALU => {
                    let operand = if c & BPF_X != 0 {
                        scalar(&regs, insn.src, pc)? as u32
                    } else {
                        insn.imm as u32
                    };
                    // 32-bit operations clear the upper half of dst.
                    let result = match c & 0xf0 {
                        BPF_MOV => operand,
                        BPF_AND => scalar(&regs, insn.dst, pc)? as u32 & operand,
                        BPF_RSH if operand < 32 => scalar(&regs, insn.dst, pc)? as u32 >> operand,
                        _ => return Err(format!("{pc}: unsupported opcode {c:#04x}")),
                    };
                    regs[dst] = Value::Scalar(u64::from(result));
                }
                c if c == BPF_JMP | BPF_EXIT => {
                    return match scalar(&regs, R0, pc)? {
                        0 => Ok(false),
                        1 => Ok(true),
                        other => Err(format!("{pc}: returns {other}: only 0 and 1 are allowed")),
                    };
                }
                c if c & 0x07 == BPF_JMP && c & BPF_X == 0 => {
                    let value = scalar(&regs, insn.dst, pc)?;
                    // 64-bit comparisons: the immediate is sign-extended.
                    let imm = i64::from(insn.imm) as u64;
                    let taken = match c & 0xf0 {
                        BPF_JEQ => value == imm,
                        BPF_JNE => value != imm,
                        BPF_JSET => value & imm != 0,
                        _ => return Err(format!("{pc}: unsupported opcode {c:#04x}")),
                    };
                    if insn.off < 0 {
                        return Err(format!("{pc}: jumps backwards"));
                    }
                    if taken {
                        next = pc + 1 + insn.off as usize;
                    }
                }
                c => return Err(format!("{pc}: unsupported opcode {c:#04x}")),
            }
            pc = next;
        }
    }
}

// ---------------------------------------------------------------------
// Loading and attaching: the bpf(2) system call.
// ---------------------------------------------------------------------

// From linux/bpf.h (libc has the syscall number but none of these).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr` as `BPF_PROG_LOAD` reads it, up to the last field we
/// set. The kernel accepts a shorter attr than its own and treats the rest
/// as zero.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` as `BPF_PROG_ATTACH` reads it.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

const _: () = assert!(std::mem::size_of::<ProgLoadAttr>() == 72);
const _: () = assert!(std::mem::size_of::<ProgAttachAttr>() == 20);

/// `bpf(cmd, attr, sizeof attr)`.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> nix::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] value of exactly
    // the size we pass; every pointer in it points at memory the caller
    // keeps alive for the call (instructions, license, log buffer), and
    // the kernel writes only into the log buffer, within log_size.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    Errno::result(ret)
}

/// The name `bpftool prog` shows (at most 15 characters).
const PROG_NAME: &[u8] = b"minibox_devices";

/// One `BPF_PROG_LOAD`, with a log buffer or without.
fn prog_load(code: &[[u8; 8]], log: Option<&mut Vec<u8>>) -> nix::Result<OwnedFd> {
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    prog_name[..PROG_NAME.len()].copy_from_slice(PROG_NAME);
    let (log_level, log_size, log_buf) = match log {
        Some(buffer) => (1, buffer.len() as u32, buffer.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: code.len() as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type: 0,
    };
    // The verifier gives up with EAGAIN when a signal interrupts it;
    // libbpf tries again a few times, and so do we.
    let mut attempts = 0;
    loop {
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Err(Errno::EAGAIN) if attempts < 5 => attempts += 1,
            // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
            Err(errno) => return Err(errno),
        }
    }
}

/// Load `program` into the kernel (its verifier checks it first); the fd
/// keeps it alive until closed or attached. Traced as
/// `bpf(BPF_PROG_LOAD, CGROUP_DEVICE, N insns) → fd N`. When the verifier
/// refuses the program, the load is repeated with a log buffer so that the
/// error carries the verifier's report ([`Error::BpfRejected`]).
pub fn load(program: &Program) -> Result<OwnedFd> {
    let code: Vec<[u8; 8]> = program.insns.iter().map(|i| i.to_bytes()).collect();
    let step = format!(
        "bpf(BPF_PROG_LOAD, CGROUP_DEVICE, {})",
        trace::count(code.len(), "insn")
    );
    let errno = match prog_load(&code, None) {
        Ok(fd) => {
            return trace::step_shows(step, Ok(fd), |fd| Some(format!("fd {}", fd.as_raw_fd())))
        }
        Err(errno) => errno,
    };
    trace::failed(&step, errno);
    if !matches!(errno, Errno::EACCES | Errno::EINVAL) {
        return Err(Error::Sys { step, errno });
    }
    let mut buffer = vec![0u8; 1 << 16];
    // Whatever the second attempt returns, the first one failed; we only
    // want its words. ENOSPC: the log was cut short, which still helps.
    let _ = prog_load(&code, Some(&mut buffer));
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let log = String::from_utf8_lossy(&buffer[..end])
        .trim_end()
        .to_string();
    if log.is_empty() {
        return Err(Error::Sys { step, errno });
    }
    Err(Error::BpfRejected {
        reason: verifier_reason(&log),
        step,
        errno,
        log,
    })
}

/// The line of a verifier log that says what is wrong: the last one
/// before the closing statistics (`processed N insns …`). The log starts
/// with the instructions it walked, which say nothing about the problem.
pub fn verifier_reason(log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let statistics = |l: &&str| {
        l.starts_with("processed ")
            || l.starts_with("verification time")
            || l.starts_with("stack depth")
    };
    lines
        .iter()
        .rev()
        .find(|l| !statistics(l))
        .or(lines.first())
        .map_or(String::new(), |l| l.to_string())
}

/// v2: load `program` and attach it to the cgroup directory `cgroup_dir`
/// (traced: the load, the `open` of the directory, the attach). The
/// attachment holds the program; both fds are closed before returning,
/// and the program goes away with the cgroup's `rmdir`.
///
/// `BPF_F_ALLOW_MULTI`: the programs of the cgroup and of every ancestor
/// all run, and an access must pass each of them; a parent's program (a
/// systemd slice's, say) keeps applying, and ours cannot be overridden
/// from below. runc attaches with the same flag because it *updates* its
/// program: it attaches the new one next to the old before detaching the
/// old, so there is never a moment without a filter. minibox attaches once,
/// when the cgroup is made, and never updates it.
pub fn attach_v2(cgroup_dir: &Path, program: &Program) -> Result<()> {
    let prog = load(program)?;
    let shown = cgroup_dir.display().to_string();
    let dir = super::open_dir(cgroup_dir)?;
    let mut attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    trace::step(
        format!("bpf(BPF_PROG_ATTACH, {shown:?}, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)"),
        bpf(BPF_PROG_ATTACH, &mut attr).map(drop),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeviceKind::{Block, Char};

    const R: Access = Access::READ;
    const W: Access = Access::WRITE;
    const M: Access = Access::MKNOD;
    const RW: Access = Access::READ.union(Access::WRITE);

    fn rule(text: &str) -> DeviceRule {
        DeviceRule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn cgroup_rules_parse_as_docker_writes_them() {
        assert_eq!(
            rule("c 1:3 rwm"),
            DeviceRule::allow(Char, Some(1), Some(3), Access::all())
        );
        assert_eq!(rule("b 7:* r"), DeviceRule::allow(Block, Some(7), None, R));
        assert_eq!(rule("a *:* rwm"), DeviceRule::ALLOW_ALL);
        assert_eq!(
            rule("  c  *:*   m "),
            DeviceRule::allow(Char, None, None, M)
        );
        assert_eq!(rule("c 136:* wr").access, RW);
        for (text, line) in [
            ("c 1:3 mwr", "c 1:3 rwm"),
            ("b 7:* r", "b 7:* r"),
            ("a *:* rwm", "a"),
        ] {
            assert_eq!(rule(text).line(), line);
        }
        assert_eq!(rule("c 1:3 rw").to_string(), "allow c 1:3 rw");
        assert_eq!(DeviceRule::DENY_ALL.to_string(), "deny a");
    }

    #[test]
    fn bad_cgroup_rules_get_one_line_reasons() {
        for (text, says) in [
            ("", "expected TYPE MAJOR:MINOR ACCESS"),
            ("c 1:3", "expected TYPE MAJOR:MINOR ACCESS"),
            ("c 1:3 rwm extra", "expected TYPE MAJOR:MINOR ACCESS"),
            ("x 1:3 rwm", "use c (char), b (block) or a (all)"),
            ("c 1 rwm", "is not MAJOR:MINOR"),
            ("c 1:x rwm", "is not MAJOR:MINOR"),
            ("c -1:3 rwm", "is not MAJOR:MINOR"),
            ("c 4096:0 rwm", "major 4096 is out of range (0-4095)"),
            ("b 8:1048576 r", "minor 1048576 is out of range"),
            ("c 1:3 rwx", "use r, w and m, each at most once"),
            ("c 1:3 rr", "each at most once"),
            ("a 1:3 rwm", "write it as \"a *:* rwm\""),
            ("a *:* r", "write it as \"a *:* rwm\""),
        ] {
            let err = DeviceRule::parse(text).expect_err(text);
            assert!(err.contains(says), "{text:?} → {err:?}");
            assert!(!err.contains('\n'), "{err:?}");
        }
    }

    #[test]
    fn host_devices_are_looked_up_and_checked() {
        let null = HostDevice::parse("/dev/null").unwrap();
        assert_eq!((null.kind, null.major, null.minor), (Char, 1, 3));
        assert_eq!(null.container, PathBuf::from("/dev/null"));
        assert_eq!(null.access, Access::all());
        assert_eq!(null.rule(), rule("c 1:3 rwm"));
        assert_eq!(null.mode, 0o666);

        let renamed = HostDevice::parse("/dev/zero:/dev/nothing:r").unwrap();
        assert_eq!(renamed.container, PathBuf::from("/dev/nothing"));
        assert_eq!(renamed.rule(), rule("c 1:5 r"));
        // docker: a second part made of r, w and m is the access.
        let access_only = HostDevice::parse("/dev/full:rw").unwrap();
        assert_eq!(access_only.container, PathBuf::from("/dev/full"));
        assert_eq!(access_only.access, RW);
        // Symlinks are followed (docker resolves them too).
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let linked = HostDevice::parse(&format!("{}:/dev/x", link.display())).unwrap();
        assert_eq!((linked.major, linked.minor), (1, 3));

        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let file = file.display().to_string();
        for (spec, says) in [
            (
                "/nonexistent/dev",
                "/nonexistent/dev: ENOENT (No such file or directory)",
            ),
            ("/dev", "/dev is a directory"),
            (file.as_str(), "is not a device node"),
            ("dev/null", "must be absolute"),
            ("/dev/null:dev/null", "must be absolute"),
            ("/dev/null:/dev/../etc/x", "must not contain .."),
            ("/dev/null:/dev/null:rx", "use r, w and m"),
            ("/dev/null:/a:rw:x", "expected HOST[:CONTAINER[:ACCESS]]"),
        ] {
            let err = HostDevice::parse(spec).expect_err(spec);
            assert!(err.contains(says), "{spec:?} → {err:?}");
            assert!(!err.contains('\n'), "{err:?}");
        }
    }

    #[test]
    fn the_default_list_is_dockers() {
        let lines: Vec<String> = default_rules().iter().map(|r| r.to_string()).collect();
        assert_eq!(
            lines,
            [
                "deny a",
                "allow c *:* m",
                "allow b *:* m",
                "allow c 1:3 rwm",
                "allow c 1:5 rwm",
                "allow c 1:7 rwm",
                "allow c 1:8 rwm",
                "allow c 1:9 rwm",
                "allow c 5:0 rwm",
                "allow c 5:1 rwm",
                "allow c 5:2 rwm",
                "allow c 136:* rwm",
                "allow c 10:200 rwm",
            ]
        );
        // Every node the container's /dev gets (mounts::mount_dev) is allowed.
        let policy = Policy::from_rules(&default_rules()).unwrap();
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 0),
        ] {
            assert!(policy.allows(Char, major, minor, RW), "c {major}:{minor}");
        }
        assert_eq!(well_known(&rule("c 1:3 r")), Some("/dev/null"));
        assert_eq!(well_known(&rule("c 1:4 r")), None);
    }

    #[test]
    fn rules_add_up_as_v1_applies_them() {
        let policy = |texts: &[&str]| {
            let mut rules = vec![DeviceRule::DENY_ALL];
            rules.extend(texts.iter().map(|t| rule(t)));
            Policy::from_rules(&rules).unwrap()
        };
        // The same devices twice: one exception with both accesses.
        let merged = policy(&["c 1:3 r", "c 1:3 w"]);
        assert_eq!(merged.exceptions, [rule("c 1:3 rw")]);
        // An allow after "allow all" changes nothing; "deny all" forgets.
        assert!(Policy::from_rules(&[rule("c 1:3 r")])
            .unwrap()
            .exceptions
            .is_empty());
        let reset = Policy::from_rules(&[rule("c 1:3 r"), DeviceRule::DENY_ALL]).unwrap();
        assert!(!reset.default_allow && reset.exceptions.is_empty());
        // A deny takes access away from exactly the same devices only.
        let mut deny = rule("c 1:3 w");
        deny.allow = false;
        let mut narrowed = merged.clone();
        narrowed.apply(&deny);
        assert_eq!(narrowed.exceptions, [rule("c 1:3 r")]);
        let mut wider = rule("c 1:* rwm");
        wider.allow = false;
        let mut untouched = merged.clone();
        untouched.apply(&wider);
        assert_eq!(untouched, merged, "v1 does not punch holes");
        // O_RDWR needs one exception with both r and w.
        let split = policy(&["c 1:* r", "c 1:3 w"]);
        assert!(split.allows(Char, 1, 3, R) && split.allows(Char, 1, 3, W));
        assert!(!split.allows(Char, 1, 3, RW));
        // Default allow: a deny refuses any overlap.
        let mut blacklist = Policy::from_rules(&[]).unwrap();
        blacklist.apply(&deny);
        assert!(!blacklist.allows(Char, 1, 3, RW));
        assert!(blacklist.allows(Char, 1, 3, R));
        // Bad rules are refused before anything is written.
        let mut bad = rule("c 1:3 r");
        bad.access = Access::empty();
        assert!(Policy::from_rules(&[bad]).is_err());
    }

    /// What docker's list means, request by request: the reference answer
    /// ([`Policy::allows`], v1's semantics), the interpreted BPF program,
    /// and what each case is about.
    const DEFAULT_CASES: &[(DeviceKind, u32, u32, Access, bool, &str)] = &[
        (Char, 1, 3, RW, true, "/dev/null"),
        (Char, 1, 3, M, true, "mknod /dev/null"),
        (Char, 1, 5, R, true, "/dev/zero"),
        (Char, 1, 7, W, true, "/dev/full"),
        (Char, 1, 8, R, true, "/dev/random"),
        (Char, 1, 9, RW, true, "/dev/urandom"),
        (Char, 5, 0, RW, true, "/dev/tty"),
        (Char, 5, 1, RW, true, "/dev/console"),
        (Char, 5, 2, RW, true, "/dev/ptmx"),
        (Char, 136, 0, RW, true, "/dev/pts/0"),
        (Char, 136, 4095, RW, true, "/dev/pts/4095"),
        (Char, 10, 200, RW, true, "/dev/net/tun"),
        (Char, 1, 1, R, false, "/dev/mem"),
        (Char, 1, 4, R, false, "/dev/port"),
        (Char, 1, 11, R, false, "/dev/kmsg"),
        (Char, 10, 237, R, false, "/dev/loop-control"),
        (Char, 10, 229, RW, false, "/dev/fuse"),
        (Char, 4, 1, RW, false, "/dev/tty1"),
        (Char, 137, 0, RW, false, "a pts-like major next door"),
        (Char, 2, 3, RW, false, "minor of null, another major"),
        (Block, 8, 0, R, false, "read /dev/sda"),
        (Block, 7, 0, W, false, "write /dev/loop0"),
        (Block, 1, 3, R, false, "a block device with null's numbers"),
        (Block, 8, 0, M, true, "mknod /dev/sda: allowed"),
        (Char, 1, 1, M, true, "mknod /dev/mem: allowed"),
        (Block, 8, 0, RW.union(M), false, "mknod plus open"),
    ];

    #[test]
    fn the_default_program_decides_like_v1() {
        let rules = default_rules();
        let policy = Policy::from_rules(&rules).unwrap();
        let program = Program::compile(&rules).unwrap();
        for &(kind, major, minor, access, want, what) in DEFAULT_CASES {
            assert_eq!(
                policy.allows(kind, major, minor, access),
                want,
                "v1: {what}"
            );
            assert_eq!(
                program.run(kind, major, minor, access),
                Ok(want),
                "program: {what}"
            );
        }
    }

    #[test]
    fn the_default_program_has_one_block_per_rule() {
        let program = Program::compile(&default_rules()).unwrap();
        // 6 loads, 2 mknod blocks (type, access, answer, exit), 9 exact
        // devices (type, major, minor, answer, exit), pts (type, major,
        // answer, exit), the default (answer, exit).
        assert_eq!(program.len(), 6 + 2 * 4 + 9 * 5 + 4 + 2);
        assert_eq!(program.insns()[program.len() - 1], Insn::exit());
        let listing = program.listing();
        assert!(
            listing.contains("; allow c 1:3 rwm (/dev/null)"),
            "{listing}"
        );
        assert!(listing.contains("if r3 & 0x6 goto +2"), "{listing}");
        // Privileged: no exceptions, allow.
        let everything = Program::compile(&privileged_rules()).unwrap();
        assert_eq!(everything.len(), 8);
        assert_eq!(everything.run(Block, 8, 0, RW), Ok(true));
    }

    /// Programs from other rule lists, checked against v1's semantics on a
    /// grid of requests: the program is right wherever the reference is.
    #[test]
    fn programs_agree_with_v1_on_mixed_rules() {
        let deny = |text: &str| DeviceRule {
            allow: false,
            ..rule(text)
        };
        let lists: Vec<Vec<DeviceRule>> = vec![
            vec![],
            vec![DeviceRule::DENY_ALL],
            vec![DeviceRule::ALLOW_ALL, deny("b 8:* rwm"), deny("c 1:3 w")],
            vec![DeviceRule::ALLOW_ALL, deny("c *:* m"), deny("c 1:* r")],
            vec![
                DeviceRule::DENY_ALL,
                rule("c 1:* r"),
                rule("c 1:3 w"),
                rule("b 7:* rw"),
                rule("c *:5 m"),
                deny("b 7:* w"),
            ],
            {
                let mut rules = default_rules();
                rules.push(rule("b 7:0 rw"));
                rules.push(deny("c 10:200 rwm"));
                rules
            },
        ];
        let accesses = [R, W, M, RW, RW.union(M), R.union(M)];
        for rules in &lists {
            let policy = Policy::from_rules(rules).unwrap();
            let program = Program::compile(rules).unwrap();
            for kind in [Char, Block] {
                for major in [0, 1, 5, 7, 8, 10, 136, MAX_MAJOR] {
                    for minor in [0, 1, 3, 5, 200, MAX_MINOR] {
                        for access in accesses {
                            assert_eq!(
                                program.run(kind, major, minor, access),
                                Ok(policy.allows(kind, major, minor, access)),
                                "{kind:?} {major}:{minor} {access} under {rules:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_interpreter_refuses_what_the_verifier_would() {
        let mov = |imm| Insn::alu32(BPF_MOV, R0, imm);
        let cases: Vec<(Vec<Insn>, &str)> = vec![
            (vec![Insn::exit()], "r0 is read before it is written"),
            (vec![mov(1)], "runs off its end"),
            (vec![mov(2), Insn::exit()], "only 0 and 1"),
            (
                vec![Insn::jump(BPF_JNE, R0, 0, -1), Insn::exit()],
                "read before",
            ),
            (
                vec![mov(0), Insn::jump(BPF_JNE, R0, 1, -2), Insn::exit()],
                "jumps backwards",
            ),
            (vec![Insn::load_word(R2, R1, 12), Insn::exit()], "offset 12"),
            (
                vec![mov(0), Insn::load_word(R2, R0, 0), Insn::exit()],
                "loads only from the context",
            ),
            (
                vec![
                    Insn {
                        code: 0xff,
                        ..Insn::exit()
                    },
                    Insn::exit(),
                ],
                "unsupported opcode 0xff",
            ),
        ];
        for (insns, says) in cases {
            let err = Program::raw(insns.clone())
                .run(Char, 1, 3, R)
                .expect_err(says);
            assert!(err.contains(says), "{insns:?}: {err}");
        }
    }

    #[test]
    fn instructions_encode_as_the_kernel_reads_them() {
        // r2 = *(u32 *)(r1 + 4): opcode 0x61, src 1 in the high nibble.
        assert_eq!(
            Insn::load_word(R2, R1, 4).to_bytes(),
            [0x61, 0x12, 4, 0, 0, 0, 0, 0]
        );
        // if r4 != 136 goto +2
        assert_eq!(
            Insn::jump(BPF_JNE, R4, 136, 2).to_bytes(),
            [0x55, 0x04, 2, 0, 136, 0, 0, 0]
        );
        assert_eq!(
            Insn::alu32(BPF_MOV, R0, 1).to_bytes(),
            [0xb4, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(Insn::exit().to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Insn::jump(BPF_JSET, R3, 6, 1).to_string(),
            "if r3 & 0x6 goto +1"
        );
    }

    #[test]
    fn the_verifier_reason_is_its_last_word() {
        let log = "0: R1=ctx() R10=fp0\n0: (95) exit\nR0 !read_ok\nprocessed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n";
        assert_eq!(verifier_reason(log), "R0 !read_ok");
        assert_eq!(verifier_reason("only line"), "only line");
        assert_eq!(verifier_reason(""), "");
    }

    #[test]
    fn the_devices_tree_is_found_in_the_mount_table() {
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                         34 25 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices\n";
        let Hierarchy::Legacy { trees, .. } = Hierarchy::from_mountinfo(mountinfo).unwrap() else {
            panic!("v1 expected")
        };
        assert!(trees.contains(&(Controller::Devices, PathBuf::from("/sys/fs/cgroup/devices"))));
    }

    /// `apply_v1` against a fake devices directory: the files get the
    /// default, then one line per exception.
    #[test]
    fn v1_writes_the_default_then_each_exception() {
        let dir = tempfile::tempdir().unwrap();
        let mut rules = default_rules();
        rules.push(rule("c 1:3 r")); // already allowed: merged, not written
        apply_v1(dir.path(), &rules).unwrap();
        let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(read("devices.deny"), "a");
        // A real cgroup file takes one line per write; a plain file keeps
        // only the last (each write truncates it).
        assert_eq!(read("devices.allow"), "c 10:200 rwm");
        let privileged = tempfile::tempdir().unwrap();
        apply_v1(privileged.path(), &privileged_rules()).unwrap();
        assert_eq!(
            std::fs::read_to_string(privileged.path().join("devices.allow")).unwrap(),
            "a"
        );
        assert!(!privileged.path().join("devices.deny").exists());
    }

    /// The listing in the stage 09 chapter is the program this code
    /// generates. `MINIBOX_BLESS=1` rewrites it.
    #[test]
    fn the_notes_show_the_current_program() {
        // The parent, not `shared/..`: the test VM has docs/ but no shared/.
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or(Path::new("."));
        let path = workspace.join("docs/src/stage-09-hardening.md");
        let Ok(notes) = std::fs::read_to_string(&path) else {
            panic!("{} is missing", path.display());
        };
        let (begin, end) = ("<!-- listing: begin -->\n", "<!-- listing: end -->");
        let (Some(from), Some(to)) = (notes.find(begin), notes.find(end)) else {
            panic!("{} has no listing markers", path.display());
        };
        let listing = format!(
            "```text\n{}```\n",
            Program::compile(&default_rules()).unwrap().listing()
        );
        let current = &notes[from + begin.len()..to];
        if current != listing {
            if std::env::var_os("MINIBOX_BLESS").is_some() {
                let updated = format!("{}{listing}{}", &notes[..from + begin.len()], &notes[to..]);
                std::fs::write(&path, updated).unwrap();
            } else {
                panic!(
                    "{} shows an old program: run with MINIBOX_BLESS=1 to update it",
                    path.display()
                );
            }
        }
    }

    // -----------------------------------------------------------------
    // Against the kernel: root only, in cgroups named minibox-devtest-PID
    // that each test removes again.
    // -----------------------------------------------------------------

    use std::ffi::CString;

    /// One thing the child tries; the outcome is 0 or an errno.
    enum Probe {
        Open(CString, libc::c_int),
        Mknod(CString, libc::mode_t, libc::dev_t),
    }

    struct Case {
        probe: Probe,
        want: i32,
        what: String,
    }

    fn open(path: &str, flags: libc::c_int, want: i32, what: &str) -> Case {
        Case {
            probe: Probe::Open(CString::new(path).unwrap(), flags),
            want,
            what: format!("open {path} ({what})"),
        }
    }

    fn mknod(path: &str, block: bool, major: u32, minor: u32, want: i32) -> Case {
        let kind = if block { libc::S_IFBLK } else { libc::S_IFCHR };
        Case {
            probe: Probe::Mknod(
                CString::new(path).unwrap(),
                kind | 0o600,
                libc::makedev(major, minor),
            ),
            want,
            what: format!("mknod {path} {}", if block { 'b' } else { 'c' }),
        }
    }

    /// What a container under docker's list meets: its own nodes open, a
    /// char device off the list and the loop control device do not, and a
    /// block node it may create cannot be opened.
    fn default_cases(scratch: &Path) -> Vec<Case> {
        let blk = scratch.join("loop0").display().to_string();
        let null = scratch.join("null").display().to_string();
        // Opening read-only, and closing at once: harmless even where the
        // check would fail to hold.
        let mut cases: Vec<Case> = [
            ("/dev/null", libc::O_RDWR, 0, "c 1:3 is listed"),
            ("/dev/zero", libc::O_RDONLY, 0, "c 1:5 is listed"),
            ("/dev/kmsg", libc::O_RDONLY, libc::EPERM, "c 1:11 is not"),
            (
                "/dev/loop-control",
                libc::O_RDONLY,
                libc::EPERM,
                "c 10:237 is not",
            ),
        ]
        .into_iter()
        .filter(|(path, ..)| Path::new(path).exists())
        .map(|(path, flags, want, what)| open(path, flags, want, what))
        .collect();
        let nodev = nix::sys::statvfs::statvfs(scratch)
            .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_NODEV))
            .unwrap_or(true);
        if nodev {
            println!("skipped the mknod probes: {} is nodev", scratch.display());
        } else {
            cases.extend([
                mknod(&blk, true, 7, 0, 0),
                open(&blk, libc::O_RDONLY, libc::EPERM, "b *:* is m only"),
                mknod(&null, false, 1, 3, 0),
                open(&null, libc::O_WRONLY, 0, "the name does not matter"),
            ]);
        }
        cases
    }

    fn errno() -> i32 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }

    /// In the child: only async-signal-safe calls on memory made before
    /// the fork (the test harness has other threads).
    fn try_probe(probe: &Probe) -> i32 {
        match probe {
            Probe::Open(path, flags) => {
                // SAFETY: a valid C string; the fd is closed at once.
                let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
                if fd < 0 {
                    return errno();
                }
                // SAFETY: we own fd.
                unsafe { libc::close(fd) };
                0
            }
            Probe::Mknod(path, mode, dev) => {
                // SAFETY: a valid C string; the node lands in our temp dir.
                if unsafe { libc::mknod(path.as_ptr(), *mode, *dev) } < 0 {
                    errno()
                } else {
                    0
                }
            }
        }
    }

    /// Fork a child, move it into the cgroup whose `cgroup.procs` is
    /// `procs` *before* it tries anything (it waits on a pipe for the
    /// word), let it run `cases`, and return each outcome.
    fn run_in_cgroup(procs: &Path, cases: &[Case]) -> Vec<i32> {
        use nix::fcntl::OFlag;
        let (go_read, go_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (results_read, results_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        // SAFETY: the child only makes async-signal-safe calls (read, open,
        // close, mknod, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let mut byte = 0u8;
            // SAFETY: reads one byte into a local.
            let got = unsafe { libc::read(go_read.as_raw_fd(), (&raw mut byte).cast(), 1) };
            if got == 1 {
                for case in cases {
                    let outcome: i32 = try_probe(&case.probe);
                    // SAFETY: writes 4 bytes from a local; the parent reads
                    // exactly 4 per case.
                    unsafe {
                        libc::write(results_write.as_raw_fd(), (&raw const outcome).cast(), 4)
                    };
                }
            }
            // SAFETY: leaves without running the parent's destructors.
            unsafe { libc::_exit(0) };
        }
        drop(go_read);
        drop(results_write);
        let child = nix::unistd::Pid::from_raw(pid);
        if let Err(err) = std::fs::write(procs, pid.to_string()) {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
            panic!("write {}: {err}", procs.display());
        }
        nix::unistd::write(&go_write, b"g").unwrap();
        let mut bytes = vec![0u8; 4 * cases.len()];
        let mut file = std::fs::File::from(results_read);
        let read = std::io::Read::read_exact(&mut file, &mut bytes);
        let status = nix::sys::wait::waitpid(child, None).unwrap();
        read.unwrap_or_else(|e| panic!("the child reported too little ({e}); {status:?}"));
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
        bytes
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn check(cases: &[Case], outcomes: &[i32]) {
        let name = |e: i32| match e {
            0 => "ok".to_string(),
            e => format!("{:?}", Errno::from_raw(e)),
        };
        let wrong: Vec<String> = cases
            .iter()
            .zip(outcomes)
            .filter(|(case, got)| case.want != **got)
            .map(|(case, got)| {
                format!(
                    "{}: {} instead of {}",
                    case.what,
                    name(*got),
                    name(case.want)
                )
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("; "));
    }

    /// A test cgroup directory, removed (once empty) when dropped.
    struct TestCgroup(PathBuf);

    impl TestCgroup {
        /// `None` (and a printed reason) where cgroups cannot be made, as in
        /// a container with a read-only cgroupfs.
        fn make(parent: &Path) -> Option<TestCgroup> {
            remove_dead_test_cgroups(parent);
            let dir = parent.join(format!("minibox-devtest-{}", std::process::id()));
            // Left by an earlier run of this very pid? Only an empty one goes.
            let _ = std::fs::remove_dir(&dir);
            match std::fs::create_dir(&dir) {
                Ok(()) => Some(TestCgroup(dir)),
                Err(err) => {
                    println!("skipped: mkdir {}: {err}", dir.display());
                    None
                }
            }
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            // The reaped child should be gone from the cgroup already; give
            // a busy machine ten seconds, then say what was left.
            let mut last = None;
            for _ in 0..1000 {
                match std::fs::remove_dir(&self.0) {
                    Ok(()) => return,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        last = Some(e);
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(e) => {
                        last = Some(e);
                        break;
                    }
                }
            }
            if let Some(err) = last {
                eprintln!("left behind {}: {err}", self.0.display());
            }
        }
    }

    /// The test cgroups of earlier test processes that are gone (killed
    /// before their cleanup ran): empty ones are removed, like
    /// `minibox-test-PID` parents in the integration tests.
    fn remove_dead_test_cgroups(parent: &Path) {
        for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.strip_prefix("minibox-devtest-"))
                .and_then(|p| p.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn v1_kernel_enforces_the_default_list() {
        let tree = Path::new("/sys/fs/cgroup/devices");
        if !is_root() {
            println!("skipped: needs root");
            return;
        }
        if !tree.join("devices.allow").exists() {
            println!("skipped: no v1 devices hierarchy at {}", tree.display());
            return;
        }
        let Some(cgroup) = TestCgroup::make(tree) else {
            return;
        };
        apply_v1(&cgroup.0, &default_rules()).unwrap();
        let list = std::fs::read_to_string(cgroup.0.join("devices.list")).unwrap();
        let want: Vec<String> = DOCKER_DEVICES.iter().map(|(_, r)| r.line()).collect();
        assert_eq!(list.lines().collect::<Vec<_>>(), want, "devices.list");
        let scratch = tempfile::tempdir().unwrap();
        let cases = default_cases(scratch.path());
        let outcomes = run_in_cgroup(&cgroup.0.join("cgroup.procs"), &cases);
        check(&cases, &outcomes);
    }

    /// Where a v2 test cgroup goes: the root of a pure v2 machine, or the
    /// controller-less v2 tree of a hybrid one (BPF programs attach there).
    fn v2_parent() -> Option<PathBuf> {
        let root = Path::new(super::super::CGROUP_ROOT);
        let unified = nix::sys::statfs::statfs(root)
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        if unified {
            return Some(root.to_path_buf());
        }
        let hybrid = root.join("unified");
        hybrid.join("cgroup.procs").exists().then_some(hybrid)
    }

    #[test]
    fn v2_kernel_enforces_the_default_program() {
        if !is_root() {
            println!("skipped: needs root");
            return;
        }
        let Some(parent) = v2_parent() else {
            println!("skipped: no cgroup2 tree (neither pure v2 nor /sys/fs/cgroup/unified)");
            return;
        };
        let Some(cgroup) = TestCgroup::make(&parent) else {
            return;
        };
        attach_v2(&cgroup.0, &Program::compile(&default_rules()).unwrap()).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let cases = default_cases(scratch.path());
        let outcomes = run_in_cgroup(&cgroup.0.join("cgroup.procs"), &cases);
        check(&cases, &outcomes);
    }

    #[test]
    fn v2_verifier_refusals_carry_its_log() {
        if !is_root() {
            println!("skipped: needs root");
            return;
        }
        // Exit without an answer in r0.
        let err = load(&Program::raw(vec![Insn::exit()])).expect_err("the verifier refuses");
        let Error::BpfRejected { reason, log, .. } = &err else {
            panic!("not a verifier refusal: {err}");
        };
        assert_eq!(reason, "R0 !read_ok", "log:\n{log}");
        assert!(log.lines().count() > 1, "{log}");
        let message = err.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.starts_with("bpf(BPF_PROG_LOAD, CGROUP_DEVICE, 1 insn): EACCES"),
            "{message}"
        );
    }
}
