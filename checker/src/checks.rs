//! The checks, grouped by the stage that teaches them: each has an id, a
//! one-line description, and a hint naming what is missing when it fails.

use crate::probe::{map_id, parse_map, show_bytes, IdRange, Report, ARGV_CASES, IDENTITY_MAP};
use crate::rootfs::WROTE_FILE;
use crate::runtime::Runtime;
use crate::session::{self, Observations, ScenarioRun};
use crate::template::Placeholder;
use serde::Serialize;

/// A stage of the course: its number, title and chapter.
pub struct Stage {
    pub number: u8,
    pub title: &'static str,
    pub chapter: &'static str,
}

/// The last stage there are checks for.
pub const LAST_STAGE: u8 = 10;

pub const STAGES: [Stage; LAST_STAGE as usize] = [
    Stage {
        number: 1,
        title: "Namespaces",
        chapter: "stage-01-namespaces.md",
    },
    Stage {
        number: 2,
        title: "A private mount tree and /proc",
        chapter: "stage-02-proc-mount.md",
    },
    Stage {
        number: 3,
        title: "The command, byte for byte",
        chapter: "stage-03-pipe-args.md",
    },
    Stage {
        number: 4,
        title: "pivot_root",
        chapter: "stage-04-pivot-root.md",
    },
    Stage {
        number: 5,
        title: "cgroups",
        chapter: "stage-05-cgroups.md",
    },
    Stage {
        number: 6,
        title: "Images, layers and volumes",
        chapter: "stage-06-volumes.md",
    },
    Stage {
        number: 7,
        title: "A small docker",
        chapter: "stage-07-full.md",
    },
    Stage {
        number: 8,
        title: "Network",
        chapter: "stage-08-network.md",
    },
    Stage {
        number: 9,
        title: "Least privilege",
        chapter: "stage-09-hardening.md",
    },
    Stage {
        number: 10,
        title: "Rootless: a user namespace",
        chapter: "stage-10-rootless.md",
    },
];

/// docker's default capabilities as a mask (`CapBnd: 00000000a80425fb`).
pub const DOCKER_CAPABILITIES: u64 = 0xa804_25fb;

/// Capability names by number (linux/capability.h).
const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The names of the capabilities in a mask.
pub fn capability_names(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| {
            CAPABILITY_NAMES
                .get(bit)
                .map_or_else(|| format!("CAP_{bit}"), |n| format!("CAP_{n}"))
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// A check's verdict: what was seen, and for a failure, what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: Status,
    pub detail: String,
    /// Replaces the check's own hint when the failure has a more precise
    /// cause (the runtime never ran, the template lacks a placeholder).
    #[serde(skip)]
    pub hint: Option<String>,
}

fn pass(detail: impl Into<String>) -> Outcome {
    Outcome {
        status: Status::Pass,
        detail: detail.into(),
        hint: None,
    }
}

fn fail(detail: impl Into<String>) -> Outcome {
    Outcome {
        status: Status::Fail,
        detail: detail.into(),
        hint: None,
    }
}

fn fail_because(detail: impl Into<String>, hint: impl Into<String>) -> Outcome {
    Outcome {
        status: Status::Fail,
        detail: detail.into(),
        hint: Some(hint.into()),
    }
}

fn skip(reason: impl Into<String>) -> Outcome {
    Outcome {
        status: Status::Skip,
        detail: reason.into(),
        hint: None,
    }
}

/// What a check grades from.
pub struct Context<'a> {
    pub obs: &'a Observations,
    pub runtime: &'a Runtime,
}

type Grade = fn(&Context<'_>) -> Outcome;

pub struct Check {
    pub id: &'static str,
    pub stage: u8,
    pub description: &'static str,
    pub hint: &'static str,
    grade: Grade,
}

/// A graded check.
#[derive(Debug, Clone, Serialize)]
pub struct Graded {
    pub id: &'static str,
    pub stage: u8,
    pub description: &'static str,
    pub chapter: &'static str,
    pub status: Status,
    pub detail: String,
    /// For a failure: what is missing, and where the book explains it.
    pub hint: Option<String>,
}

/// Grade every check of stages 1..=`stage`.
pub fn grade(stage: u8, ctx: &Context<'_>) -> Vec<Graded> {
    CHECKS
        .iter()
        .filter(|c| c.stage <= stage)
        .map(|check| {
            let outcome = match (&ctx.obs.not_here, ctx.runtime.not_applicable(check.id)) {
                (Some(why), _) => skip(format!(
                    "not applicable to {} on this host: {why}",
                    ctx.runtime.label
                )),
                (None, Some(why)) => {
                    skip(format!("not applicable to {}: {why}", ctx.runtime.label))
                }
                (None, None) => (check.grade)(ctx),
            };
            let chapter = STAGES[usize::from(check.stage - 1)].chapter;
            let hint = (outcome.status == Status::Fail).then(|| {
                outcome
                    .hint
                    .clone()
                    .unwrap_or_else(|| check.hint.to_string())
            });
            Graded {
                id: check.id,
                stage: check.stage,
                description: check.description,
                chapter,
                status: outcome.status,
                detail: outcome.detail,
                hint,
            }
        })
        .collect()
}

pub const CHECKS: &[Check] = &[
    // ---- 01 ---------------------------------------------------------------
    Check {
        id: "01.pid-1",
        stage: 1,
        description: "the command is PID 1 of its own PID namespace",
        hint: "create a PID namespace (clone with CLONE_NEWPID: it applies to children only) and make the command its first process — chapter 01",
        grade: |c| with_report(c, |r| {
            if r.pid == 1 {
                pass("pid 1")
            } else {
                fail(format!("the command is pid {} (its parent is pid {})", r.pid, r.ppid))
            }
        }),
    },
    Check {
        id: "01.ns-pid",
        stage: 1,
        description: "its own PID namespace",
        hint: "it shares the host's PID namespace: add CLONE_NEWPID to clone — chapter 01",
        grade: |c| namespace(c, "pid"),
    },
    Check {
        id: "01.ns-uts",
        stage: 1,
        description: "its own UTS namespace (host name)",
        hint: "it shares the host's UTS namespace: add CLONE_NEWUTS to clone — chapter 01",
        grade: |c| namespace(c, "uts"),
    },
    Check {
        id: "01.ns-ipc",
        stage: 1,
        description: "its own IPC namespace",
        hint: "it shares the host's IPC namespace: add CLONE_NEWIPC to clone — chapter 01",
        grade: |c| namespace(c, "ipc"),
    },
    Check {
        id: "01.ns-mnt",
        stage: 1,
        description: "its own mount namespace",
        hint: "it shares the host's mount namespace: add CLONE_NEWNS to clone — chapter 01",
        grade: |c| namespace(c, "mnt"),
    },
    Check {
        id: "01.ns-net",
        stage: 1,
        description: "its own network namespace",
        hint: "it shares the host's network namespace: add CLONE_NEWNET to clone — chapter 01",
        grade: |c| namespace(c, "net"),
    },
    Check {
        id: "01.hostname",
        stage: 1,
        description: "the host name is the container's own",
        hint: "call sethostname() inside the new UTS namespace, before the command runs — chapter 01",
        grade: hostname,
    },
    Check {
        id: "01.no-leftovers",
        stage: 1,
        description: "no process outlives the runtime (host side)",
        hint: "a process of the container was still running after the runtime exited: wait for init, and let PID 1's exit end its namespace — chapter 01",
        grade: |c| {
            let left: Vec<String> = c
                .obs
                .runs()
                .iter()
                .flat_map(|r| r.finished.leftovers.iter().map(move |p| format!("{} (after {})", p, r.scenario)))
                .collect();
            if left.is_empty() {
                pass("nothing left in the checker's cgroups after each run")
            } else {
                fail(format!("left running: {}", left.join(", ")))
            }
        },
    },
    // ---- 02 ---------------------------------------------------------------
    Check {
        id: "02.proc-own",
        stage: 2,
        description: "/proc is the container's: it shows its PID namespace",
        hint: "PID namespace created but /proc is the host's: mount a new proc after making the tree private — chapter 02",
        grade: |c| with_report(c, |r| match r.proc_self_pid {
            Some(p) if p == r.pid => pass(format!(
                "/proc/self is {p}; ps sees {} process(es)",
                r.process_count
            )),
            Some(p) => fail(format!(
                "/proc/self is {p}, not {}: /proc belongs to another PID namespace and shows {} processes",
                r.pid, r.process_count
            )),
            None => fail("/proc/self cannot be read: /proc is not mounted"),
        }),
    },
    Check {
        id: "02.proc-options",
        stage: 2,
        description: "/proc is mounted nosuid,nodev,noexec",
        hint: "mount proc with MS_NOSUID|MS_NODEV|MS_NOEXEC: nothing in /proc needs them — chapter 02",
        grade: |c| with_mounts(c, |r| match r.mount_at("/proc") {
            None => fail("no mount at /proc"),
            Some(m) => {
                let missing: Vec<&str> = ["nosuid", "nodev", "noexec"]
                    .into_iter()
                    .filter(|o| !m.has_option(o))
                    .collect();
                if missing.is_empty() {
                    pass(format!("/proc {} ({})", m.fstype, m.options))
                } else {
                    fail(format!("/proc is mounted {} (missing {})", m.options, missing.join(",")))
                }
            }
        }),
    },
    Check {
        id: "02.no-propagation",
        stage: 2,
        description: "the container's mounts do not propagate to the host",
        hint: "a mount of the container shares a peer group with the host: make / rprivate (or rslave) right after creating the mount namespace — chapter 02",
        grade: |c| with_mounts(c, |r| {
            let shared: Vec<String> = r
                .mounts
                .iter()
                .flatten()
                .flat_map(|m| {
                    m.tags
                        .iter()
                        .filter(|t| c.obs.host.shared_groups.contains(t))
                        .map(move |t| format!("{} ({t})", m.mount_point))
                })
                .collect();
            if shared.is_empty() {
                pass("no mount in a host peer group")
            } else {
                fail(format!("in the host's peer groups: {}", shared.join(", ")))
            }
        }),
    },
    Check {
        id: "02.host-mounts",
        stage: 2,
        description: "the host's mount table is unchanged after each run (host side)",
        hint: "a mount was left on the host: mount only inside the container's private mount namespace, and clean up what the host side mounts — chapter 02",
        grade: |c| {
            let leaked: Vec<String> = c
                .obs
                .runs()
                .iter()
                .flat_map(|r| r.leaked_mounts.iter().map(move |m| format!("{m} (after {})", r.scenario)))
                .collect();
            if leaked.is_empty() {
                pass("unchanged")
            } else {
                fail(format!("left on the host: {}", leaked.join("; ")))
            }
        },
    },
    // ---- 03 ---------------------------------------------------------------
    Check {
        id: "03.argv-count",
        stage: 3,
        description: "the command gets exactly as many arguments as given",
        hint: "arguments were split, joined or dropped: pass the command as a list of byte strings, never through a shell or a space-joined string — chapter 03",
        grade: |c| with_args(c, |args| {
            if args.len() == ARGV_CASES.len() {
                pass(format!("{} arguments", args.len()))
            } else {
                fail(format!(
                    "{} arguments arrived, {} were sent: {}",
                    args.len(),
                    ARGV_CASES.len(),
                    args.iter().map(|a| show_bytes(a)).collect::<Vec<_>>().join(" ")
                ))
            }
        }),
    },
    Check {
        id: "03.argv-spaces",
        stage: 3,
        description: "an argument with spaces and a tab stays one argument",
        hint: "an argument with spaces was split: never join the command into one string — chapter 03",
        grade: |c| argv_case(c, 0),
    },
    Check {
        id: "03.argv-quotes",
        stage: 3,
        description: "quotes and backslashes arrive as they were sent",
        hint: "quotes or backslashes were interpreted: nothing between the runtime and execve may parse the command — chapter 03",
        grade: |c| argv_case(c, 1),
    },
    Check {
        id: "03.argv-empty",
        stage: 3,
        description: "an empty argument is kept",
        hint: "the empty argument was dropped: length-prefix or NUL-separate the arguments so an empty one survives — chapter 03",
        grade: |c| argv_case(c, 2),
    },
    Check {
        id: "03.argv-newline",
        stage: 3,
        description: "an argument with a newline stays one argument",
        hint: "a newline split the argument: do not send the command line by line — chapter 03",
        grade: |c| argv_case(c, 3),
    },
    Check {
        id: "03.argv-non-utf8",
        stage: 3,
        description: "non-UTF-8 bytes arrive unchanged",
        hint: "bytes that are not UTF-8 were replaced: keep arguments as OsString/bytes, not String — chapter 03",
        grade: |c| argv_case(c, 4),
    },
    Check {
        id: "03.argv-shell",
        stage: 3,
        description: "shell syntax ($HOME, *, ;, $(…)) is not interpreted",
        hint: "a shell expanded the command: execve the argument list directly — chapter 03",
        grade: |c| argv_case(c, 5),
    },
    Check {
        id: "03.argv-flags",
        stage: 3,
        description: "an argument like --help reaches the command, not the runtime",
        hint: "the runtime parsed the command's own flags: stop option parsing at the command (trailing arguments, `--`) — chapter 03",
        grade: |c| argv_case(c, 6),
    },
    // ---- 04 ---------------------------------------------------------------
    Check {
        id: "04.rootfs",
        stage: 4,
        description: "/ is the root filesystem the runtime was given",
        hint: "the container's / is not {rootfs}: make the rootfs the container's root (bind it onto itself, pivot_root into it) — chapter 04",
        grade: |c| with_run(c, |run, r| match &r.token {
            Some(t) if *t == run.token => pass("/.minibox-check-token is the checker's"),
            Some(t) => fail(format!("/.minibox-check-token holds {t:?}, not this run's token")),
            None => fail("no /.minibox-check-token at /: the container's / is not the rootfs (the host's?)"),
        }),
    },
    Check {
        id: "04.root-escape",
        stage: 4,
        description: "a root process cannot walk out of / (chroot escape)",
        hint: "the root is a chroot, and root walks out of a chroot: pivot_root into the rootfs and unmount the old root — chapter 04",
        grade: |c| with_report(c, |r| match r.escape.as_ref().map(|e| e.result.as_str()) {
            Some("contained") => pass("'..' stops at the container's /"),
            Some("chroot-refused") => pass("chroot(2) is refused (no CAP_SYS_CHROOT)"),
            Some("reached-host-root") => fail(
                "chroot into a subdirectory, fchdir out, chdir(\"..\") × 256, chroot(\".\"): that reached the host's /",
            ),
            Some(other) => skip(format!("the escape attempt could not run ({other})")),
            None => fail("the probe did not attempt the escape (it got no host root to compare)"),
        }),
    },
    Check {
        id: "04.old-root-gone",
        stage: 4,
        description: "the host's root file system is not mounted in the container",
        hint: "the host's / is still mounted in the container: after pivot_root, umount2(old root, MNT_DETACH) — chapter 04",
        grade: |c| with_mounts(c, |r| {
            let Some((dev, root)) = &c.obs.host.root_mount else {
                return skip("the host's root mount was not found in its mountinfo");
            };
            match r.mounts.iter().flatten().find(|m| &m.dev == dev && &m.root == root) {
                Some(m) => fail(format!("the host's / ({dev}) is mounted at {}", m.mount_point)),
                None => pass(format!("no mount of {dev} {root}")),
            }
        }),
    },
    Check {
        id: "04.root-mount",
        stage: 4,
        description: "/ is a mount point (pivot_root, not chroot)",
        hint: "there is no mount at /: the root was changed with chroot(2). Bind-mount the rootfs onto itself and pivot_root into it — chapter 04",
        grade: |c| with_mounts(c, |r| match r.mount_at("/") {
            Some(m) => pass(format!("/ is {} {}", m.fstype, m.root)),
            None => fail("/proc/self/mountinfo has no mount at /"),
        }),
    },
    Check {
        id: "04.dev-minimal",
        stage: 4,
        description: "/dev holds no host devices (disks, memory, consoles)",
        hint: "/dev exposes the host's devices: mount a tmpfs on /dev and create only null, zero, full, random, urandom and tty — never bind the host's /dev — chapter 04",
        grade: |c| with_report(c, |r| {
            let Some(dev) = &r.dev else {
                return fail("/dev cannot be listed");
            };
            let allowed = |major: u64, minor: u64| {
                matches!((major, minor), (1, 3) | (1, 5) | (1, 7) | (1, 8) | (1, 9) | (5, 0) | (5, 1) | (5, 2) | (136, _))
            };
            let extra: Vec<String> = dev
                .iter()
                .filter(|e| match (e.kind.as_str(), e.major, e.minor) {
                    ("b", _, _) => true,
                    ("c", Some(major), Some(minor)) => !allowed(major, minor),
                    _ => false,
                })
                .map(|e| format!("{} ({} {}:{})", e.name, e.kind, e.major.unwrap_or(0), e.minor.unwrap_or(0)))
                .collect();
            if extra.is_empty() {
                pass(format!("{} entries, no host device", dev.len()))
            } else {
                let shown: Vec<String> = extra.iter().take(5).cloned().collect();
                fail(format!(
                    "{} host device(s) in /dev: {}{}",
                    extra.len(),
                    shown.join(", "),
                    if extra.len() > 5 { ", …" } else { "" }
                ))
            }
        }),
    },
    Check {
        id: "04.dev-basic",
        stage: 4,
        description: "/dev has null, zero, full, random, urandom and tty",
        hint: "create the basic device nodes with mknod (1:3 null, 1:5 zero, 1:7 full, 1:8 random, 1:9 urandom, 5:0 tty) — chapter 04",
        grade: |c| with_report(c, |r| {
            let Some(dev) = &r.dev else {
                return fail("/dev cannot be listed");
            };
            let wanted = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0)];
            let missing: Vec<&str> = wanted
                .iter()
                .filter(|(name, major, minor)| {
                    !dev.iter().any(|e| e.name == *name && e.kind == "c" && e.major == Some(*major) && e.minor == Some(*minor))
                })
                .map(|(name, _, _)| *name)
                .collect();
            if missing.is_empty() {
                pass("all six")
            } else {
                fail(format!("missing or wrong: {}", missing.join(", ")))
            }
        }),
    },
    Check {
        id: "04.sys-readonly",
        stage: 4,
        description: "/sys is read-only (or not mounted)",
        hint: "/sys is writable: mount a fresh sysfs with MS_RDONLY — chapter 04",
        grade: |c| with_mounts(c, |r| match r.mount_at("/sys") {
            None => pass("/sys is not mounted"),
            Some(m) if m.has_option("ro") => pass(format!("/sys {} ({})", m.fstype, m.options)),
            Some(m) => fail(format!("/sys is mounted {}", m.options)),
        }),
    },
    // ---- 05 ---------------------------------------------------------------
    Check {
        id: "05.cgroup-own",
        stage: 5,
        description: "the container runs in a cgroup of its own (host side)",
        hint: "the container runs in the runtime's own cgroup: create a cgroup per container and move init into it before exec — chapter 05",
        grade: |c| {
            let Some(held) = &c.obs.hold else {
                return skip("the hold scenario did not run");
            };
            let (Some(memory), Some(pids)) = (&held.memory, &held.pids) else {
                return fail(held.problem.clone().unwrap_or_else(|| "the container's cgroups were not found".into()));
            };
            let runtime = &c.obs.runtime_cgroup;
            let shared: Vec<String> = [("memory", memory), ("pids", pids)]
                .iter()
                .filter(|(_, s)| &s.path == runtime || s.path == "/")
                .map(|(name, s)| format!("{name} {}", s.path))
                .collect();
            if shared.is_empty() {
                pass(format!("memory {}, pids {}", memory.path, pids.path))
            } else {
                fail(format!("in the runtime's own cgroup ({}): {}", runtime, shared.join(", ")))
            }
        },
    },
    Check {
        id: "05.memory-limit",
        stage: 5,
        description: "the memory limit asked for is set on its cgroup (host side)",
        hint: "write the limit to memory.max (v2) or memory.limit_in_bytes (v1) of the container's cgroup before the command runs — chapter 05",
        grade: |c| limit(c, "memory", session::MEMORY_LIMIT, |h| h.memory.as_ref()),
    },
    Check {
        id: "05.pids-limit",
        stage: 5,
        description: "the pids limit asked for is set on its cgroup (host side)",
        hint: "write the limit to pids.max of the container's cgroup before the command runs — chapter 05",
        grade: |c| limit(c, "pids", session::PIDS_LIMIT, |h| h.pids.as_ref()),
    },
    Check {
        id: "05.memory-enforced",
        stage: 5,
        description: "a process allocating past the memory limit is killed",
        hint: "memory use is not limited: put init in the limited cgroup before exec, and limit swap too (memory.swap.max / memory.memsw.limit_in_bytes) — chapter 05",
        grade: |c| {
            let graded = with_scenario(c.obs.hog.as_ref(), "hog", |run| {
                let hog: Option<crate::probe::Hog> = run.raw.clone().and_then(|v| serde_json::from_value(v).ok());
                let code = run.finished.code;
                match hog {
                    Some(h) if h.done => fail(format!(
                        "it allocated all {} MiB under a {} MiB limit",
                        h.allocated_mib,
                        session::MEMORY_LIMIT >> 20
                    )),
                    Some(h) if h.error.is_some() => fail(format!(
                        "mmap failed after {} MiB ({}): the limit should kill, not refuse",
                        h.allocated_mib,
                        h.error.unwrap_or_default()
                    )),
                    _ if code.is_some_and(|c| c >= 128) => pass(format!(
                        "killed after {} of {} MiB (exit {})",
                        run.raw.as_ref().and_then(|v| v["allocated_mib"].as_u64()).unwrap_or(0),
                        session::HOG_MIB,
                        code.unwrap_or_default()
                    )),
                    _ => fail(format!("the hog ended without being killed ({})", run.finished.summary())),
                }
            });
            explain_missing_limit(c, "memory", graded)
        },
    },
    Check {
        id: "05.pids-enforced",
        stage: 5,
        description: "forking past the pids limit fails",
        hint: "the number of processes is not limited: write pids.max on the container's cgroup before the command runs — chapter 05",
        grade: |c| {
            let graded = with_scenario(c.obs.fork.as_ref(), "fork", |run| {
                let forks: Option<crate::probe::Forks> = run.raw.clone().and_then(|v| serde_json::from_value(v).ok());
                match forks {
                    Some(f) if f.forked < f.wanted => pass(format!(
                        "fork #{} failed with {} (limit {})",
                        f.forked + 1,
                        f.error.unwrap_or_else(|| "an error".into()),
                        session::PIDS_LIMIT
                    )),
                    Some(f) => fail(format!(
                        "all {} forks succeeded under a pids limit of {}",
                        f.forked,
                        session::PIDS_LIMIT
                    )),
                    None => fail(format!("no fork report ({})", run.finished.summary())),
                }
            });
            explain_missing_limit(c, "pids", graded)
        },
    },
    Check {
        id: "05.cgroup-removed",
        stage: 5,
        description: "the container's cgroup is removed when it exits (host side)",
        hint: "the container's cgroup stays after it exits: rmdir it once its processes are gone — chapter 05",
        grade: |c| {
            let Some(held) = &c.obs.hold else {
                return skip("the hold scenario did not run");
            };
            let seen: Vec<_> = [&held.memory, &held.pids].into_iter().flatten().collect();
            if seen.is_empty() {
                return fail(held.problem.clone().unwrap_or_else(|| "the container's cgroups were not found".into()));
            }
            let own: Vec<_> = seen.iter().filter(|s| s.path != c.obs.runtime_cgroup && s.path != "/").collect();
            if own.is_empty() {
                return fail("the container had no cgroup of its own to remove (see 05.cgroup-own)");
            }
            let left: Vec<String> = own.iter().filter(|s| s.exists_after).map(|s| s.dir.display().to_string()).collect();
            if left.is_empty() {
                pass("removed")
            } else {
                fail(format!("still there: {}", left.join(", ")))
            }
        },
    },
    // ---- 06 ---------------------------------------------------------------
    Check {
        id: "06.volume-rw",
        stage: 6,
        description: "a bind volume is visible and writable at /vol/rw",
        hint: "bind-mount the host directory at the volume's path inside the new root (resolved inside the rootfs) — chapter 06",
        grade: |c| {
            if let Some(o) = missing_volume_placeholder(c, Placeholder::VolumeRw) {
                return o;
            }
            with_run(c, |run, r| match &r.volumes.rw {
                None => fail("/vol/rw/token is not there: the volume is not mounted at /vol/rw"),
                Some(v) if v.token != format!("{}-rw", run.token) => fail(format!("/vol/rw/token holds {:?}: another directory", v.token)),
                Some(v) if !v.write_ok => fail(format!(
                    "writing /vol/rw/from-container failed ({})",
                    v.write_error.clone().unwrap_or_default()
                )),
                Some(_) if !run.volume_rw_written => fail("the file written in /vol/rw did not appear in the host directory"),
                Some(_) => pass("read and written, seen on the host"),
            })
        },
    },
    Check {
        id: "06.volume-ro",
        stage: 6,
        description: "a read-only volume at /vol/ro cannot be written",
        hint: "a read-only bind needs a second mount call: MS_BIND|MS_REMOUNT|MS_RDONLY on the bind mount — chapter 06",
        grade: |c| {
            if let Some(o) = missing_volume_placeholder(c, Placeholder::VolumeRo) {
                return o;
            }
            with_run(c, |run, r| match &r.volumes.ro {
                None => fail("/vol/ro/token is not there: the volume is not mounted at /vol/ro"),
                Some(v) if v.token != format!("{}-ro", run.token) => fail(format!("/vol/ro/token holds {:?}: another directory", v.token)),
                Some(v) if v.write_ok || run.volume_ro_written => fail("the container wrote /vol/ro/from-container: the volume is writable"),
                Some(v) if v.write_error.as_deref() != Some("EROFS") => fail(format!(
                    "writing failed with {}, not EROFS: is it mounted read-only?",
                    v.write_error.clone().unwrap_or_default()
                )),
                Some(_) => pass("readable; writing fails with EROFS"),
            })
        },
    },
    Check {
        id: "06.image-unchanged",
        stage: 6,
        description: "what the container writes in / does not change the image",
        hint: "the container wrote into the image directory itself: mount an overlay (lowerdir=image, upperdir=a per-container directory) as its root — chapter 06",
        grade: |c| with_run(c, |run, r| match &r.root_write {
            None => fail("the probe did not find its rootfs at / (see 04.rootfs), so it wrote nothing"),
            Some(_) if run.rootfs_written => fail(format!("/{WROTE_FILE} written in the container appeared in {{rootfs}} on the host")),
            Some(w) if w.ok => pass("the write went to a layer above the image"),
            Some(w) if w.error.as_deref() == Some("EROFS") => pass("/ is read-only"),
            Some(w) => fail(format!("writing /{WROTE_FILE} failed ({})", w.error.clone().unwrap_or_default())),
        }),
    },
    // ---- 07 ---------------------------------------------------------------
    Check {
        id: "07.detach",
        stage: 7,
        description: "run -d returns at once and prints the container's id",
        hint: "with -d, fork a monitor that outlives `run` and return once the container started — chapter 07",
        grade: |c| with_lifecycle(c, |l| {
            if l.detach_ok {
                pass("exit 0, id printed")
            } else {
                fail(format!("run -d: {}", step_summary(l, "run -d")))
            }
        }),
    },
    Check {
        id: "07.ps",
        stage: 7,
        description: "ps lists running containers, ps -a the exited ones too",
        hint: "keep a record per container (state.json, written atomically) that ps reads — chapter 07",
        grade: |c| with_lifecycle(c, |l| match (l.ps_lists_running, l.ps_all_lists_exited) {
            (true, true) => pass("both listed"),
            (false, _) => fail("ps does not list the running container"),
            (_, false) => fail("ps -a does not list the exited container"),
        }),
    },
    Check {
        id: "07.logs",
        stage: 7,
        description: "logs shows what a detached container printed",
        hint: "the monitor must capture the container's stdout and stderr into a log that `logs` reads — chapter 07",
        grade: |c| with_lifecycle(c, |l| match &l.logs_report {
            Some(r) if r.pid == 1 => pass("the probe's report, from pid 1"),
            Some(r) => fail(format!("the report came from pid {}", r.pid)),
            None => fail(format!("no probe report in the logs ({})", step_summary(l, "logs -f"))),
        }),
    },
    Check {
        id: "07.stop",
        stage: 7,
        description: "stop ends a running container",
        hint: "stop: SIGTERM to init (PID 1 ignores it without a handler), then SIGKILL after the grace period — chapter 07",
        grade: |c| with_lifecycle(c, |l| match (l.stop_ok, l.ps_after_stop_lists) {
            (true, false) => pass("stopped, no longer listed by ps"),
            (false, _) => fail(format!("stop: {}", step_summary(l, "stop"))),
            (true, true) => fail("ps still lists it as running after stop"),
        }),
    },
    Check {
        id: "07.rm",
        stage: 7,
        description: "rm removes containers and leaves nothing behind (host side)",
        hint: "rm must remove the record, the layer and the cgroup; the monitor must not outlive its container — chapter 07",
        grade: |c| with_lifecycle(c, |l| {
            if !l.rm_ok {
                return fail(format!("rm: {}", step_summary(l, "rm")));
            }
            if l.ps_all_after_rm_lists {
                return fail("ps -a still lists a removed container");
            }
            if !l.leftover_processes.is_empty() {
                return fail(format!("processes left: {:?}", l.leftover_processes));
            }
            if !l.leftover_cgroups.is_empty() {
                return fail(format!("cgroups left: {}", l.leftover_cgroups.join(", ")));
            }
            pass("no record, process or cgroup left")
        }),
    },
    // ---- 08 ---------------------------------------------------------------
    Check {
        id: "08.net-none",
        stage: 8,
        description: "with no network the container sees only lo",
        hint: "the container sees interfaces it should not: give it a network namespace of its own (CLONE_NEWNET) — chapter 08",
        grade: |c| with_report(c, |r| match &r.net.interfaces {
            None => fail("its interfaces cannot be listed"),
            Some(list) => {
                let names: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
                if names == ["lo"] {
                    pass("lo only")
                } else {
                    fail(format!("interfaces: {}", names.join(", ")))
                }
            }
        }),
    },
    Check {
        id: "08.net-eth0",
        stage: 8,
        description: "on a bridge network the container has eth0 with an address",
        hint: "create a veth pair, move one end into the container's namespace as eth0, give it an address and bring it up — chapter 08",
        grade: |c| with_bridge(c, |r| {
            let Some(list) = &r.net.interfaces else {
                return fail("its interfaces cannot be listed");
            };
            match list.iter().find(|i| i.name == "eth0") {
                None => fail(format!(
                    "no eth0 (interfaces: {})",
                    list.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
                Some(i) if !i.up => fail("eth0 is down"),
                Some(i) if i.ipv4.is_empty() => fail("eth0 has no IPv4 address"),
                Some(i) => pass(format!("eth0 {}", i.ipv4.join(" "))),
            }
        }),
    },
    Check {
        id: "08.net-route",
        stage: 8,
        description: "on a bridge network the container has a default route",
        hint: "add a default route via the bridge's address inside the container's namespace — chapter 08",
        grade: |c| with_bridge(c, |r| match &r.net.default_route {
            Some(route) => pass(format!("default via {} dev {}", route.gateway, route.iface)),
            None => fail("no default route in /proc/net/route"),
        }),
    },
    // ---- 09 ---------------------------------------------------------------
    Check {
        id: "09.capabilities",
        stage: 9,
        description: "no capability beyond docker's 14 (bounding and effective sets)",
        hint: "drop every capability outside docker's 14 from the bounding set (prctl PR_CAPBSET_DROP) and from the other sets (capset) just before execve — chapter 09",
        grade: |c| with_report(c, |r| {
            let (Some(bounding), Some(effective)) = (r.capabilities("CapBnd"), r.capabilities("CapEff")) else {
                return fail_because("/proc/self/status cannot be read: there is no /proc", NO_PROC_HINT);
            };
            let extra = (bounding | effective) & !DOCKER_CAPABILITIES;
            if extra == 0 {
                pass(format!("CapBnd {bounding:016x}, CapEff {effective:016x}"))
            } else {
                let names = capability_names(extra);
                let shown: Vec<String> = names.iter().take(6).cloned().collect();
                fail(format!(
                    "{} capabilities beyond docker's: {}{}",
                    names.len(),
                    shown.join(", "),
                    if names.len() > 6 { ", …" } else { "" }
                ))
            }
        }),
    },
    Check {
        id: "09.seccomp",
        stage: 9,
        description: "a seccomp filter is in force",
        hint: "load a seccomp filter (docker's default profile) just before execve — chapter 09",
        grade: |c| with_report(c, |r| match r.status.as_ref().and_then(|s| s.get("Seccomp")).map(String::as_str) {
            Some("2") => pass("Seccomp: 2 (filter)"),
            Some(mode) => fail(format!("Seccomp: {mode} (no filter)")),
            None => fail_because("/proc/self/status cannot be read: there is no /proc", NO_PROC_HINT),
        }),
    },
    Check {
        id: "09.masked-paths",
        stage: 9,
        description: "docker's masked paths (/proc/kcore, /proc/keys, /sys/firmware, …) are masked",
        hint: "bind /dev/null over each masked file and mount an empty read-only tmpfs over each masked directory — chapter 09",
        grade: |c| with_mounts(c, |r| {
            if r.masked_paths.is_empty() {
                return fail("the probe reported no masked paths");
            }
            let present: Vec<&String> = r.masked_paths.iter().filter(|(_, e)| **e).map(|(p, _)| p).collect();
            let open: Vec<&str> = present
                .iter()
                .filter(|p| r.mount_at(p).is_none())
                .map(|p| p.as_str())
                .collect();
            if open.is_empty() {
                pass(format!(
                    "{} present, all masked ({} absent from this kernel)",
                    present.len(),
                    r.masked_paths.len() - present.len()
                ))
            } else {
                fail(format!("not masked: {}", open.join(", ")))
            }
        }),
    },
    Check {
        id: "09.read-only-paths",
        stage: 9,
        description: "/proc/sys, /proc/irq, /proc/bus, /proc/fs, /proc/sysrq-trigger are read-only",
        hint: "bind each of these paths onto itself and remount the bind MS_RDONLY — chapter 09",
        grade: |c| with_mounts(c, |r| {
            if r.read_only_paths.is_empty() {
                return fail("the probe reported no read-only paths");
            }
            let writable: Vec<&str> = r
                .read_only_paths
                .iter()
                .filter(|(p, exists)| **exists && !r.mount_covering(p).is_some_and(|m| m.has_option("ro")))
                .map(|(p, _)| p.as_str())
                .collect();
            if writable.is_empty() {
                pass("every one present is on a read-only mount")
            } else {
                fail(format!("writable: {}", writable.join(", ")))
            }
        }),
    },
    // ---- 10 ---------------------------------------------------------------
    Check {
        id: "10.userns",
        stage: 10,
        description: "the container is in a user namespace of its own (its uid map is not the host's identity map)",
        hint: USERNS_HINT,
        grade: |c| with_report(c, |r| {
            let Some(lines) = &r.uid_map else {
                return fail_because("/proc/self/uid_map cannot be read: there is no /proc", NO_PROC_HINT);
            };
            let map = parse_map(lines);
            let user = r.ns.get("user").copied().flatten();
            let host = c.obs.host.ns.get("user").copied();
            if map == [IDENTITY_MAP] || (user.is_some() && user == host) {
                fail(format!(
                    "the host's user namespace (uid_map {})",
                    show_map(&map)
                ))
            } else if map.is_empty() {
                fail("an empty uid map: the runtime never wrote it")
            } else {
                pass(format!("uid_map {}", show_map(&map)))
            }
        }),
    },
    Check {
        id: "10.root-unmapped",
        stage: 10,
        description: "container root is not host root: the host sees the container's process with another uid and gid",
        hint: "map container uid and gid 0 to an unprivileged host range (/etc/subuid, /etc/subgid) — chapter 10",
        grade: |c| {
            let Some(held) = &c.obs.hold else {
                return skip("the hold scenario did not run");
            };
            let Some(report) = held.run.report() else {
                return no_report(&held.run);
            };
            let inside = report.status.as_ref().and_then(|s| s.get("Uid")).cloned().unwrap_or_default();
            match held.host_ids {
                None => fail(held.problem.clone().unwrap_or_else(|| "the probe's process was not found on the host".into())),
                Some((0, gid)) => fail(format!("host uid 0 (gid {gid}): container root is host root")),
                Some((uid, 0)) => fail(format!("host uid {uid}, but gid 0: container gid 0 is host root's group")),
                Some((uid, gid)) => pass(format!(
                    "uid {} inside is host uid {uid}, gid {gid}",
                    inside.split_whitespace().next().unwrap_or("?")
                )),
            }
        },
    },
    Check {
        id: "10.id-range",
        stage: 10,
        description: "the maps give the container 65536 ids, so its users (nobody is 65534) exist",
        hint: "map a range of 65536 subordinate uids and gids, not root alone, so -u and files owned by other users work — chapter 10",
        grade: |c| with_userns(c, |r, uids| {
            let gids = parse_map(r.gid_map.as_deref().unwrap_or_default());
            let missing = |map: &[IdRange]| (0..65_536).find(|id| map_id(map, *id).is_none());
            match (missing(uids), missing(&gids)) {
                (None, None) => pass(format!("uid_map {}, gid_map {}", show_map(uids), show_map(&gids))),
                (Some(id), _) => fail(format!("uid {id} is not mapped (uid_map {})", show_map(uids))),
                (None, Some(id)) => fail(format!("gid {id} is not mapped (gid_map {})", show_map(&gids))),
            }
        }),
    },
    Check {
        id: "10.setgroups",
        stage: 10,
        description: "the container may call setgroups (its gid map was written by a privileged writer)",
        hint: "write the gid map from the parent namespace as root (or with newgidmap), leaving /proc/PID/setgroups at allow, so -u user:group can drop supplementary groups — chapter 10",
        grade: |c| with_userns(c, |r, _| match r.setgroups.as_deref() {
            Some("allow") => pass("setgroups: allow"),
            Some(other) => fail(format!("setgroups: {other}")),
            None => fail_because("/proc/self/setgroups cannot be read: there is no /proc", NO_PROC_HINT),
        }),
    },
    Check {
        id: "10.volume-owner",
        stage: 10,
        description: "a file container root writes into a volume belongs to its mapped host uid, not to host root",
        hint: "run the container in a user namespace whose root is an unprivileged host uid: what it writes through a volume is that uid's — chapter 10",
        grade: |c| {
            if let Some(missing) = missing_volume_placeholder(c, Placeholder::VolumeRw) {
                return missing;
            }
            with_run(c, |run, r| match (run.volume_rw_owner, r.volumes.rw.as_ref()) {
                (Some((0, _)), _) => fail("the file is host uid 0's: container root wrote as host root"),
                (Some((uid, gid)), _) => pass(format!("the file is host uid {uid}, gid {gid}")),
                (None, Some(v)) if !v.write_ok => fail(format!(
                    "container root could not write into the rw volume ({})",
                    v.write_error.as_deref().unwrap_or("no error reported")
                )),
                (None, _) => fail("no file written through the rw volume reached the host"),
            })
        },
    },
];

// ---- helpers -------------------------------------------------------------

const USERNS_HINT: &str = "create a user namespace (unshare CLONE_NEWUSER in a child) and write its uid_map and gid_map from outside it before the other namespaces — chapter 10";

/// A check of the container's own user namespace: in the host's (the
/// identity map) there are no maps of its own to grade, which is a
/// failure, never a pass.
fn with_userns(c: &Context<'_>, f: impl FnOnce(&Report, &[IdRange]) -> Outcome) -> Outcome {
    with_report(c, |r| {
        let Some(lines) = &r.uid_map else {
            return fail_because(
                "/proc/self/uid_map cannot be read: there is no /proc",
                NO_PROC_HINT,
            );
        };
        let map = parse_map(lines);
        if map == [IDENTITY_MAP] {
            return fail_because(
                "the host's user namespace: there are no maps of the container's own",
                USERNS_HINT,
            );
        }
        f(r, &map)
    })
}

/// An id map as `0→100000×65536`, for details.
fn show_map(map: &[IdRange]) -> String {
    if map.is_empty() {
        return "(empty)".into();
    }
    map.iter()
        .map(|r| format!("{}→{}×{}", r.inside, r.outside, r.count))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hint of every check whose run printed no probe report. The table
/// shows the run's error once, above the checks, instead of this hint on
/// each (see [`crate::output::text`]).
pub const NO_REPORT_HINT: &str = "the runtime never ran the probe: rerun with --keep, run the command shown above the table by hand, and read its error";

fn no_report(run: &ScenarioRun) -> Outcome {
    fail_because(
        format!(
            "no probe report from the {} run (the runtime failed: see above)",
            run.scenario
        ),
        NO_REPORT_HINT,
    )
}

fn with_run(c: &Context<'_>, f: impl FnOnce(&ScenarioRun, &Report) -> Outcome) -> Outcome {
    let Some(run) = &c.obs.report else {
        return skip("the report scenario did not run");
    };
    match run.report() {
        Some(report) => f(run, &report),
        None => no_report(run),
    }
}

fn with_report(c: &Context<'_>, f: impl FnOnce(&Report) -> Outcome) -> Outcome {
    with_run(c, |_, r| f(r))
}

/// Why the probe could see neither its namespaces nor its mounts.
const NO_PROC_HINT: &str =
    "the container has no /proc, so nothing in it can see its own namespaces or mounts: mount a fresh proc at /proc — chapter 02";

/// A check that reads the container's mount table: without /proc there is
/// none to read, which is a failure, never a pass.
fn with_mounts(c: &Context<'_>, f: impl FnOnce(&Report) -> Outcome) -> Outcome {
    with_report(c, |r| match r.mounts {
        Some(_) => f(r),
        None => fail_because(
            "/proc/self/mountinfo cannot be read: there is no /proc",
            NO_PROC_HINT,
        ),
    })
}

fn with_scenario(
    run: Option<&ScenarioRun>,
    name: &str,
    f: impl FnOnce(&ScenarioRun) -> Outcome,
) -> Outcome {
    match run {
        Some(run) => f(run),
        None => skip(format!("the {name} scenario did not run")),
    }
}

fn with_args(c: &Context<'_>, f: impl FnOnce(&[Vec<u8>]) -> Outcome) -> Outcome {
    with_report(c, |r| match r.test_args() {
        Some(args) => f(&args),
        None => fail(format!(
            "the probe's \"--\" never arrived: argv was {}",
            r.argv()
                .iter()
                .map(|a| show_bytes(a))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    })
}

/// One argv case: right where it was sent, or (if an earlier argument was
/// split or dropped) intact elsewhere.
fn argv_case(c: &Context<'_>, index: usize) -> Outcome {
    let expected = ARGV_CASES[index].1;
    with_args(c, |args| match args.get(index) {
        Some(got) if got == expected => pass(show_bytes(expected)),
        _ if args.iter().any(|a| a == expected) => pass(format!(
            "{} arrived intact (at another position: see 03.argv-count)",
            show_bytes(expected)
        )),
        Some(got) => fail(format!(
            "sent {}, got {}",
            show_bytes(expected),
            show_bytes(got)
        )),
        None => fail(format!("sent {}, it never arrived", show_bytes(expected))),
    })
}

fn namespace(c: &Context<'_>, name: &str) -> Outcome {
    with_report(c, |r| {
        let host = c.obs.host.ns.get(name).copied();
        match (r.ns.get(name).copied().flatten(), host) {
            (None, _) => fail_because(
                format!("/proc/self/ns/{name} cannot be read: there is no /proc"),
                NO_PROC_HINT,
            ),
            (Some(_), None) => skip(format!("the host's {name} namespace cannot be read")),
            (Some(mine), Some(host)) if mine == host => {
                fail(format!("the host's {name} namespace ({host})"))
            }
            (Some(mine), Some(_)) => pass(format!("{name}:[{mine}]")),
        }
    })
}

fn hostname(c: &Context<'_>) -> Outcome {
    with_report(c, |r| {
        let got = r.hostname.clone().unwrap_or_default();
        let template = &c.runtime.template;
        if template.uses(Placeholder::Hostname) || template.uses(Placeholder::Bundle) {
            if got == session::HOSTNAME {
                pass(format!("{got:?}, as asked"))
            } else {
                fail(format!(
                    "{got:?}, not the {:?} asked for",
                    session::HOSTNAME
                ))
            }
        } else if got == c.obs.host.hostname {
            fail(format!("{got:?}: the host's"))
        } else {
            pass(format!(
                "{got:?} (the template sets none; it is not the host's)"
            ))
        }
    })
}

/// A failure of a limit check, when the template passes no such limit:
/// say so, and make adding it the hint.
fn explain_missing_limit(c: &Context<'_>, what: &str, graded: Outcome) -> Outcome {
    match (graded.status, missing_limit_placeholder(c, what)) {
        (Status::Fail, Some(missing)) => Outcome {
            detail: format!("{}; {}", missing.detail, graded.detail),
            ..missing
        },
        _ => graded,
    }
}

/// A template that cannot pass a limit: why the limit checks fail.
fn missing_limit_placeholder(c: &Context<'_>, what: &str) -> Option<Outcome> {
    let t = &c.runtime.template;
    let passes = t.uses(Placeholder::Bundle)
        || match what {
            "memory" => t.uses(Placeholder::Memory) || t.uses(Placeholder::MemoryMb),
            _ => t.uses(Placeholder::Pids),
        };
    let example = if what == "memory" {
        "-m {memory}"
    } else {
        "--pids-limit {pids}"
    };
    (!passes).then(|| {
        fail_because(
            format!("the template passes no {what} limit"),
            format!("a stage-05 runtime takes limits: add its flag to the template, e.g. {example} — chapter 05"),
        )
    })
}

fn missing_volume_placeholder(c: &Context<'_>, which: Placeholder) -> Option<Outcome> {
    let t = &c.runtime.template;
    (!(t.uses(which) || t.uses(Placeholder::Bundle))).then(|| {
        let (name, example) = match which {
            Placeholder::VolumeRw => ("{volume_rw}", "-v {volume_rw}:/vol/rw"),
            _ => ("{volume_ro}", "-v {volume_ro}:/vol/ro:ro"),
        };
        fail_because(
            format!("the template mounts no {name}"),
            format!("a stage-06 runtime takes volumes: add one to the template, e.g. {example} — chapter 06"),
        )
    })
}

fn limit(
    c: &Context<'_>,
    what: &str,
    wanted: u64,
    seen: fn(&session::Held) -> Option<&session::SeenCgroup>,
) -> Outcome {
    let Some(held) = &c.obs.hold else {
        return skip("the hold scenario did not run");
    };
    let graded = match seen(held) {
        None => fail(
            held.problem
                .clone()
                .unwrap_or_else(|| format!("the container's {what} cgroup was not found")),
        ),
        Some(cgroup) => match cgroup.limit.as_deref() {
            Some(l) if l.parse::<u64>().ok() == Some(wanted) => {
                pass(format!("{l} on {}", cgroup.path))
            }
            Some(l) => fail(format!(
                "{} has {what} limit {l}, not {wanted}",
                cgroup.path
            )),
            None => fail(format!("no {what} limit file in {}", cgroup.dir.display())),
        },
    };
    explain_missing_limit(c, what, graded)
}

fn with_lifecycle(c: &Context<'_>, f: impl FnOnce(&session::LifecycleRun) -> Outcome) -> Outcome {
    match (&c.runtime.lifecycle, &c.obs.lifecycle) {
        (None, _) => skip(format!(
            "{} has no lifecycle commands: stage 07 needs run -d, ps, logs, stop and rm, which only the minibox presets (7 on) describe",
            c.runtime.label
        )),
        (Some(_), None) => skip("the lifecycle scenario did not run"),
        (Some(_), Some(l)) => f(l),
    }
}

fn step_summary(l: &session::LifecycleRun, step: &str) -> String {
    l.steps
        .iter()
        .find(|(name, _)| name == step)
        .map_or_else(|| "did not run".into(), |(_, f)| f.summary())
}

fn with_bridge(c: &Context<'_>, f: impl FnOnce(&Report) -> Outcome) -> Outcome {
    if !c.runtime.template.uses(Placeholder::Network) {
        return fail_because(
            "the template takes no {network}",
            "a stage-08 runtime takes a network mode: add e.g. --network {network} to the template — chapter 08",
        );
    }
    if let Some(problem) = &c.obs.bridge_problem {
        return skip(problem.clone());
    }
    let Some(run) = &c.obs.bridge else {
        return skip("the bridge scenario did not run");
    };
    match run.report() {
        Some(r) => f(&r),
        None => no_report(run),
    }
}
