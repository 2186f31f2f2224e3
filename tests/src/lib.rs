//! Helpers for the minibox test suite: the stage table, finding stage
//! binaries, running containers ([`harness`]), and turning their output
//! into stable, reviewable snapshots.

pub mod harness;
pub mod netns;

/// A static UDP server for containers (tests/helpers/udp_echo.c).
pub const UDP_ECHO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/udp_echo"));
/// `escape_probe`: one escape attempt per call (see tests/helpers/escape_probe.c).
pub const ESCAPE_PROBE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/escape_probe"));

pub use harness::Container;
/// Re-exported so test files can write `#[apply(every_stage)]` with one import.
pub use rstest::rstest;
pub use rstest_reuse::{self, apply};

use regex::Regex;

use rstest_reuse::template;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::Output;

/// The stage binaries, in course order: the one table of stages. The
/// templates below are the sets of stages tests run across; a new stage is
/// added here and to the templates it belongs to, nowhere else.
pub const STAGES: [&str; 10] = [
    "01-namespaces",
    "02-proc-mount",
    "03-pipe-args",
    "04-pivot-root",
    "05-cgroups",
    "06-volumes",
    "07-full",
    "08-network",
    "09-hardening",
    "10-rootless",
];

/// The stage's number: `"05-cgroups"` → 5.
pub fn number(stage: &str) -> u32 {
    stage
        .get(..2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stage} is not a stage name"))
}

/// Every stage: `#[apply(every_stage)] fn test(stage: &str)`.
#[template]
#[export]
#[rstest]
pub fn every_stage(
    #[values(
        minibox_tests::STAGES[0],
        minibox_tests::STAGES[1],
        minibox_tests::STAGES[2],
        minibox_tests::STAGES[3],
        minibox_tests::STAGES[4],
        minibox_tests::STAGES[5],
        minibox_tests::STAGES[6],
        minibox_tests::STAGES[7],
        minibox_tests::STAGES[8],
        minibox_tests::STAGES[9]
    )]
    stage: &str,
) {
}

/// The stages that still run in the host's file system (01–03).
#[template]
#[export]
#[rstest]
pub fn host_root_stages(
    #[values(
        minibox_tests::STAGES[0],
        minibox_tests::STAGES[1],
        minibox_tests::STAGES[2]
    )]
    stage: &str,
) {
}

/// The stages with cgroup limits (05 on).
#[template]
#[export]
#[rstest]
pub fn limited_stages(
    #[values(
        minibox_tests::STAGES[4],
        minibox_tests::STAGES[5],
        minibox_tests::STAGES[6],
        minibox_tests::STAGES[7],
        minibox_tests::STAGES[8],
        minibox_tests::STAGES[9]
    )]
    stage: &str,
) {
}

/// The stages with a root of their own (04 on).
#[template]
#[export]
#[rstest]
pub fn own_root_stages(
    #[values(
        minibox_tests::STAGES[3],
        minibox_tests::STAGES[4],
        minibox_tests::STAGES[5],
        minibox_tests::STAGES[6],
        minibox_tests::STAGES[7],
        minibox_tests::STAGES[8],
        minibox_tests::STAGES[9]
    )]
    stage: &str,
) {
}

/// This test process's own state root and cgroup parent, so that test runs
/// (and test binaries running side by side) never share state, and nothing
/// outside names the project owns is touched.
pub struct TestEnv {
    pub root: PathBuf,
    pub cgroup_parent: String,
    /// A subuid/subgid file granting `minibox` [`REMAP_START`]+65536.
    pub subids: PathBuf,
}

/// The host uid of container root in stage 10's remapped containers.
pub const REMAP_START: u32 = 100000;

pub fn test_env() -> &'static TestEnv {
    static ENV: std::sync::OnceLock<TestEnv> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        remove_dead_test_roots();
        remove_dead_test_cgroups();
        let tag = format!("minibox-test-{}", std::process::id());
        let root = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(&root).expect("create the test state root");
        let subids = root.join("subids");
        std::fs::write(&subids, format!("minibox:{REMAP_START}:65536\n"))
            .expect("write the test's subuid file");
        TestEnv {
            root,
            cgroup_parent: tag,
            subids,
        }
    })
}

/// Earlier test processes' cgroup parents (`minibox-test-PID…`), once
/// those processes are gone: runs keep their parent cgroup for the next
/// run, as docker does, so a finished test process leaves its parents.
fn remove_dead_test_cgroups() {
    let mut trees = vec![PathBuf::from("/sys/fs/cgroup")];
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        trees.push(entry.path());
    }
    for tree in trees {
        for entry in std::fs::read_dir(&tree).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix("minibox-test-")
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
}

/// rmdir a cgroup and its children, deepest first (only empty ones go).
fn remove_cgroup_tree(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            remove_cgroup_tree(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Earlier test processes' state roots, once those processes are gone.
fn remove_dead_test_roots() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("minibox-test-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A command for `<stage> ARGS…` in this test process's environment.
pub fn stage_command(stage: &str) -> assert_cmd::Command {
    assert_cmd::Command::from_std(stage_process(stage))
}

/// The same, as a std command (for tests that talk to a running container).
pub fn stage_process(stage: &str) -> std::process::Command {
    binary_process(&stage_bin(stage))
}

/// A stage binary at `binary` (a copy, say) in this test process's
/// environment.
pub fn binary_process(binary: &std::path::Path) -> std::process::Command {
    let env = test_env();
    let mut cmd = std::process::Command::new(binary);
    cmd.env("NO_COLOR", "1")
        .env_remove("MINIBOX_TRACE")
        .env("MINIBOX_ROOT", &env.root)
        .env("MINIBOX_CGROUP_PARENT", &env.cgroup_parent)
        // Stage 10's remapped root: a `minibox` range without touching /etc.
        .env("MINIBOX_SUBUID", &env.subids)
        .env("MINIBOX_SUBGID", &env.subids);
    without_inherited_fds(&mut cmd);
    cmd
}

/// Only stdin, stdout and stderr reach the child: whatever else the shell
/// that started `cargo test` left open would shift the fd numbers the
/// traces show (and the snapshots would depend on who ran them). A test
/// that hands a child an fd on purpose does so in a later `pre_exec`.
pub fn without_inherited_fds(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: close_range is async-signal-safe and touches no memory; it
    // runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let ret = libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if ret < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `target/debug/<stage>`: beside the directory holding this test binary.
pub fn stage_bin(stage: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in target/<profile>/deps");
    let bin = dir.join(stage);
    assert!(
        bin.exists(),
        "{} is missing: run the suite with `cargo test --workspace` (or `just test`)",
        bin.display()
    );
    bin
}

/// Whether a test that needs root may run. Under CI (`CI=true`) every test
/// runs for real, so a missing root is a failure, not a skip.
pub fn have_root(module: &str) -> bool {
    // libtest names each test's thread after the test.
    let current = std::thread::current();
    let test = current.name().unwrap_or(module);
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: needs root, and CI=true forbids skipping");
    }
    // Straight to stderr, not eprintln!: the test harness would capture that
    // and the skip would go unseen.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs root (containers need CAP_SYS_ADMIN); run `just test`, which uses sudo"
    );
    false
}

/// Skip the current test (with a message) unless it can run as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::have_root(module_path!()) {
            return;
        }
    };
}

/// The host's mount table, as text.
pub fn host_mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo")
}

/// Run `<stage> run ARGS…` with a plain trace and check that the host's
/// mount table is the same afterwards (containers must leave nothing).
///
/// ARGS are options and a command, the form stages 01–05 take. From stage
/// 06 on `run` wants `IMAGE [COMMAND]`; `--rootfs` keeps the old form, and
/// is added here so every earlier test also runs against the later stages.
pub fn run_stage<I, S>(stage: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut full: Vec<std::ffi::OsString> = Vec::new();
    full.extend(compat_flags(stage));
    full.extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
    run_stage_as_given(stage, full)
}

/// What keeps the stage 01–05 form of `run` working on later stages:
/// `--rootfs` (06: IMAGE [COMMAND] otherwise), `--rm` (07: containers
/// are kept until `rm` otherwise) and `--network none` (08).
pub fn compat_flags(stage: &str) -> Vec<std::ffi::OsString> {
    let mut flags = Vec::new();
    if number(stage) >= 6 {
        flags.extend(["--rootfs".into(), default_rootfs().into_os_string()]);
    }
    if number(stage) >= 7 {
        flags.push("--rm".into());
    }
    // Stage 08's default network makes a bridge: outside a network sandbox
    // of the test's own (see `netns`), tests must not make one on the host.
    if number(stage) >= 8 {
        flags.extend(["--network".into(), "none".into()]);
    }
    flags
}

/// `<stage> run ARGS…` exactly as given (e.g. docker's `IMAGE COMMAND` form).
pub fn run_stage_as_given<I, S>(stage: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let before = host_mountinfo();
    let output = stage_command(stage)
        .arg("run")
        .args(args)
        .output()
        .expect("start the stage binary");
    assert_eq!(
        before,
        host_mountinfo(),
        "{stage} changed the host's mount table"
    );
    output
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The canonical path of the rootfs the stages use by default (the
/// library's own rule).
pub fn default_rootfs() -> PathBuf {
    minibox::rootfs::resolve(None).unwrap_or_else(|e| panic!("{e}"))
}

/// Make a plain trace stable: host PIDs and the rootfs path vary per run and
/// per machine; init's own `pid 1` does not, and stays.
pub fn redact_trace(trace: &str) -> String {
    let rootfs = default_rootfs().display().to_string();
    let rules = [
        (r"(?m)^(\w+)  \(pid \d+\)", "$1  (pid [PID])"),
        (r"session \d+", "session [PID]"),
        (r"/proc/\d+/", "/proc/[PID]/"),
        (r"pidfd_open\(\d+\)", "pidfd_open([PID])"),
        (r"→ pid \d+", "→ pid [PID]"),
        (r"host pid \d+", "host pid [PID]"),
        // Stage 10's middle process.
        (r"child pid \d+", "child pid [PID]"),
        (r"(waitpid|kill)\(\d+", "$1([PID]"),
        (r#"cgroup.procs", "\d+""#, r#"cgroup.procs", "[PID]""#),
        // The seccomp cache's key hashes the kernel version, among others.
        (r"seccomp/[0-9a-f]{12}…", "seccomp/[KEY]…"),
        (r"/[0-9a-f]{12}\b", "/[ID]"),
        (r"minibox-test-\d+", "[PARENT]"),
        // The config's size depends on the rootfs path of the checkout.
        (r"\b\d+ bytes\b", "[N] bytes"),
    ];
    // Stages 01–03 keep the caller's working directory: the test's own.
    let cwd = std::env::current_dir().map_or(String::new(), |d| d.display().to_string());
    let mut text = trace
        .replace(&rootfs, "[ROOTFS]")
        .replace(&format!("getcwd() → {cwd}"), "getcwd() → [CWD]")
        .replace(&test_env().root.display().to_string(), "[ROOT]");
    for (pattern, replacement) in rules {
        text = Regex::new(pattern)
            .expect("valid regex")
            .replace_all(&text, replacement)
            .into_owned();
    }
    text
}

/// One mountinfo line reduced to what a stage decides — mount point, file
/// system type and per-mount options — without ids, device numbers or
/// propagation tags, which differ from machine to machine.
pub fn normalize_mount(line: &str) -> Option<String> {
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let mount_point = fields.get(4)?;
    let options = fields.get(5)?;
    let fstype = after.split(' ').next()?;
    Some(format!("{mount_point} {fstype} {options}"))
}

/// A whole mount table, normalized, in mount order.
pub fn normalize_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo.lines().filter_map(normalize_mount).collect()
}

/// What a container's mount table adds (`+`) and lacks (`-`) compared with
/// the host's: for stages 01–03, whose table starts as a copy of the host's.
pub fn mount_table_diff(host: &str, container: &str) -> String {
    let mut counts: BTreeMap<String, i32> = BTreeMap::new();
    for line in normalize_mounts(container) {
        *counts.entry(line).or_default() += 1;
    }
    for line in normalize_mounts(host) {
        *counts.entry(line).or_default() -= 1;
    }
    let changes: Vec<String> = counts
        .into_iter()
        .flat_map(|(line, n)| {
            let sign = if n > 0 { "+" } else { "-" };
            std::iter::repeat_n(format!("{sign} {line}"), n.unsigned_abs() as usize)
        })
        .collect();
    if changes.is_empty() {
        "(no change: the container's mount table is the host's)\n".to_string()
    } else {
        changes.join("\n") + "\n"
    }
}

/// Trace events of a `--trace json` run, one JSON object per line.
pub fn json_events(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The container's cgroup directories, from the trace's `mkdir` steps
/// (the leaf: a 12-hex-digit container id).
pub fn cgroup_leaf_dirs(events: &[serde_json::Value]) -> Vec<PathBuf> {
    let re = Regex::new(r#"^mkdir\("(/sys/fs/cgroup/.*/[0-9a-f]{12})"\)$"#).expect("valid regex");
    events
        .iter()
        .filter_map(|e| e["step"].as_str())
        .filter_map(|step| re.captures(step).map(|c| PathBuf::from(&c[1])))
        .collect()
}

/// init's host pid, from the trace: the result `host pid N` of the step
/// that made it (`clone`, `clone3`, or stage 10's child's `fork`).
pub fn init_host_pid(events: &[serde_json::Value]) -> Option<i32> {
    events
        .iter()
        .filter_map(|e| e["result"].as_str())
        .find_map(|r| {
            r.strip_prefix("host pid ")
                .or_else(|| r.strip_prefix("grandchild host pid "))
        })
        .and_then(|pid| pid.parse().ok())
}

/// The cgroup mode of this machine, as the snapshot variants name it
/// (the library's own detection).
pub fn cgroup_mode() -> &'static str {
    match minibox::cgroups::Hierarchy::detect()
        .expect("cgroups are mounted")
        .mode()
    {
        minibox::cgroups::Mode::Unified => "v2",
        minibox::cgroups::Mode::Hybrid => "hybrid",
        minibox::cgroups::Mode::Legacy => "v1",
    }
}
