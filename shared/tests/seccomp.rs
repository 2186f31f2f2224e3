//! The seccomp library: docker-format profiles, docker's default, and what
//! a loaded filter really does to a process.
//!
//! The behaviour tests run the filter in a *child*: this test binary
//! started again with `MINIBOX_SECCOMP_PROBE` set, which runs only
//! `probe_child`. The child sets `no_new_privs`, loads the default filter
//! and makes each syscall, printing `probe: NAME=RESULT` lines that the
//! parent reads. A filter can never be removed, so it must not be loaded in
//! the test process itself.

use minibox::security::seccomp::{
    parse_security_opt, Caps, Filter, Profile, SeccompChoice, SeccompError, SecurityOpt,
};
use minibox::Error;
use nix::errno::Errno;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";
const PROBE_ENV: &str = "MINIBOX_SECCOMP_PROBE";

/// docker's 14 default capabilities (`CapBnd: 00000000a80425fb`).
const DOCKER_CAPS: Caps = Caps::from_bits(0xa804_25fb);
const CAP_SYS_ADMIN: u8 = 21;
/// listmount(2) (Linux 6.8): the same number on every architecture, as are
/// all syscalls since 403.
const SYS_LISTMOUNT: libc::c_long = 458;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn one_line(err: &Error) -> String {
    let text = err.to_string();
    assert!(!text.contains('\n'), "not one line: {text:?}");
    text
}

fn profile_text(body: &str) -> String {
    format!(r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{body}]}}"#)
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

#[test]
fn podmans_profile_parses_and_compiles() {
    if !Path::new(PODMAN_PROFILE).exists() {
        eprintln!("{PODMAN_PROFILE} not installed: skipped");
        return;
    }
    let profile = Profile::from_file(PODMAN_PROFILE).expect("podman's profile");
    assert!(profile.rules.len() > 10);
    let filter = profile.compile(DOCKER_CAPS).expect("compiles");
    assert!(filter.instructions() > 100, "{}", filter.summary());
    // Its default is already ENOSYS: no stub in front.
    assert_eq!(filter.default_action(), "ERRNO(ENOSYS)");
    assert_eq!(filter.stub_instructions(), 0);
}

#[test]
fn the_small_fixture_parses_and_compiles() {
    let path = fixture("seccomp-small.json");
    let profile = Profile::from_file(&path).expect("fixture");
    assert_eq!(profile.source, path.display().to_string());
    assert_eq!(profile.rules.len(), 11);
    assert_eq!(profile.rules[1].names, vec!["openat".to_string()]);

    let filter = profile.compile(DOCKER_CAPS).expect("compiles");
    assert_eq!(filter.default_action(), "ERRNO(EPERM)");
    assert_eq!(
        filter.unknown_syscalls(),
        ["not_a_real_syscall".to_string()]
    );
    assert!(filter.stub_instructions() > 0);
    let admin = profile
        .compile(DOCKER_CAPS.with(CAP_SYS_ADMIN))
        .expect("compiles with CAP_SYS_ADMIN");
    assert_ne!(admin.program(), filter.program());
}

#[test]
fn malformed_json_names_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [\n    {\"names\": [\"read\"] \"action\": \"SCMP_ACT_ALLOW\"}\n").unwrap();
    let err = Profile::from_file(&path).unwrap_err();
    let text = one_line(&err);
    assert!(
        matches!(err, Error::Seccomp(SeccompError::Json { line: 4, .. })),
        "{text}"
    );
    assert_eq!(
        text,
        format!(
            "seccomp profile {}: malformed JSON at line 4 column 24: expected `,` or `}}`",
            path.display()
        )
    );
}

#[test]
fn an_unreadable_profile_is_one_line() {
    let err = Profile::from_file("/nonexistent/profile.json").unwrap_err();
    assert_eq!(
        one_line(&err),
        "seccomp profile /nonexistent/profile.json: cannot read it: ENOENT (No such file or directory)"
    );
    let dir = tempfile::tempdir().unwrap();
    let err = Profile::from_file(dir.path()).unwrap_err();
    assert!(one_line(&err).ends_with("EISDIR (Is a directory)"), "{err}");
}

#[test]
fn unknown_actions_ops_caps_and_arches_are_typed_errors() {
    let err = Profile::from_json(
        &profile_text(r#"{"names": ["read"], "action": "SCMP_ACT_MAYBE"}"#),
        "p.json",
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Seccomp(SeccompError::UnknownAction { action, .. }) if action == "SCMP_ACT_MAYBE")
    );
    assert!(one_line(&err).starts_with("seccomp profile p.json: unknown action \"SCMP_ACT_MAYBE\""));

    let err = Profile::from_json(r#"{"defaultAction": "SCMP_ACT_NOPE"}"#, "p.json").unwrap_err();
    assert!(matches!(
        err,
        Error::Seccomp(SeccompError::UnknownAction { .. })
    ));

    let err = Profile::from_json(
        &profile_text(
            r#"{"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ROUGHLY"}]}"#,
        ),
        "p.json",
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Seccomp(SeccompError::UnknownOp { op, syscall, .. }) if op == "SCMP_CMP_ROUGHLY" && syscall == "clone")
    );
    assert_eq!(
        one_line(&err),
        "seccomp profile p.json: unknown operator \"SCMP_CMP_ROUGHLY\" for \"clone\" (expected SCMP_CMP_NE, _LT, _LE, _EQ, _GE, _GT or _MASKED_EQ)"
    );

    let err = Profile::from_json(
        &profile_text(
            r#"{"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_GODMODE"]}}"#,
        ),
        "p.json",
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Seccomp(SeccompError::UnknownCap { cap, .. }) if cap == "CAP_SYS_GODMODE")
    );
    assert_eq!(
        one_line(&err),
        "seccomp profile p.json: unknown capability \"CAP_SYS_GODMODE\""
    );

    let err = Profile::from_json(
        r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_Z80"]}"#,
        "p.json",
    )
    .unwrap_err();
    assert!(matches!(
        err,
        Error::Seccomp(SeccompError::UnknownArch { .. })
    ));
    one_line(&err);
}

#[test]
fn profiles_that_cannot_work_say_why() {
    for (json, expected) in [
        (
            profile_text(r#"{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errnoRet": 70000}"#),
            "errnoRet 70000 is not an errno (0–4095)",
        ),
        (
            profile_text(
                r#"{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}"#,
            ),
            "argument index 6 of \"read\": syscalls have arguments 0 to 5",
        ),
        (
            profile_text(r#"{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}"#),
            "SCMP_ACT_NOTIFY needs a seccomp agent",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86"],
                "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#
                .to_string(),
            "both \"architectures\" and \"archMap\" are given",
        ),
        (
            profile_text(
                r#"{"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}"#,
            ),
            "minKernel \"four\" is not a version",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": "read"}"#.to_string(),
            "malformed JSON at line 1 column",
        ),
    ] {
        let err = Profile::from_json(&json, "p.json").unwrap_err();
        let text = one_line(&err);
        assert!(text.starts_with("seccomp profile p.json: "), "{text}");
        assert!(text.contains(expected), "{text} lacks {expected}");
    }
}

#[test]
fn security_opt_values() {
    assert_eq!(
        parse_security_opt("seccomp=unconfined").unwrap(),
        SecurityOpt::Seccomp(SeccompChoice::Unconfined)
    );
    assert_eq!(
        parse_security_opt("seccomp=builtin").unwrap(),
        SecurityOpt::Seccomp(SeccompChoice::Default)
    );
    assert_eq!(
        parse_security_opt("no-new-privileges").unwrap(),
        SecurityOpt::NoNewPrivileges(true)
    );
    assert_eq!(
        parse_security_opt("no-new-privileges=false").unwrap(),
        SecurityOpt::NoNewPrivileges(false)
    );
    assert_eq!(
        parse_security_opt("no-new-privileges:true").unwrap(),
        SecurityOpt::NoNewPrivileges(true)
    );

    let path = fixture("seccomp-small.json");
    match parse_security_opt(&format!("seccomp={}", path.display())).unwrap() {
        SecurityOpt::Seccomp(SeccompChoice::Profile(profile)) => {
            assert_eq!(profile.source, path.display().to_string())
        }
        other => panic!("{other:?}"),
    }
    assert!(SeccompChoice::Unconfined.into_profile().is_none());
    assert_eq!(
        SeccompChoice::Default.into_profile(),
        Some(Profile::docker_default())
    );

    for (option, expected) in [
        (
            "no-new-privileges=maybe",
            "--security-opt \"no-new-privileges=maybe\": \"maybe\" is not true or false",
        ),
        (
            "seccomp=",
            "--security-opt \"seccomp=\": give a profile: seccomp=unconfined, seccomp=builtin or seccomp=PROFILE.json",
        ),
        (
            "apparmor=unconfined",
            "--security-opt \"apparmor=unconfined\": not supported by minibox (it knows seccomp=… and no-new-privileges)",
        ),
        (
            "privileged",
            "--security-opt \"privileged\": unknown option (expected seccomp=unconfined|builtin|PROFILE.json or no-new-privileges[=true|false])",
        ),
        (
            "seccomp=/nonexistent.json",
            "seccomp profile /nonexistent.json: cannot read it: ENOENT (No such file or directory)",
        ),
    ] {
        let err = parse_security_opt(option).unwrap_err();
        assert_eq!(one_line(&err), expected);
        assert_eq!(err.exit_code(), 125);
    }
}

// ---------------------------------------------------------------------------
// Compiling docker's default
// ---------------------------------------------------------------------------

#[test]
fn the_default_profile_compiles_to_a_real_program() {
    let filter = Profile::docker_default().compile(DOCKER_CAPS).unwrap();
    assert!(filter.instructions() > 100, "{}", filter.summary());
    assert!(filter.instructions() <= 4096);
    assert_eq!(filter.default_action(), "ERRNO(EPERM)");
    assert!(filter
        .summary()
        .ends_with(" instructions, default ERRNO(EPERM)"));
    // The stub covers the native architecture at least.
    assert!(filter.stub_instructions() > 0);
    assert!(!filter.enosys_above().is_empty());
    // Plain data: run can compile it and send it to init.
    let json = serde_json::to_string(&filter).unwrap();
    let back: Filter = serde_json::from_str(&json).unwrap();
    assert_eq!(back, filter);

    let admin = Profile::docker_default()
        .compile(DOCKER_CAPS.with(CAP_SYS_ADMIN))
        .unwrap();
    assert_ne!(admin.program(), filter.program());
}

// ---------------------------------------------------------------------------
// A loaded filter, in a child process
// ---------------------------------------------------------------------------

/// Run `probe_child` in a fresh copy of this test binary and collect its
/// `probe: NAME=RESULT` lines.
fn probe(mode: &str) -> HashMap<String, String> {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args(["probe_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(PROBE_ENV, mode)
        .output()
        .expect("start the probe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "probe {mode} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("probe: "))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn without_cap_sys_admin_the_default_filter_denies_what_docker_denies() {
    let r = probe("docker");
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("missing");
    assert!(
        get("trace").starts_with("seccomp(SECCOMP_SET_MODE_FILTER, 0, <filter: "),
        "{r:?}"
    );
    assert!(
        get("trace").ends_with(" instructions, default ERRNO(EPERM)>)"),
        "{r:?}"
    );
    assert_eq!(get("getpid"), "ok", "{r:?}");
    assert_eq!(get("write"), "ok", "{r:?}");
    assert_eq!(get("unshare(CLONE_NEWUTS)"), "EPERM", "{r:?}");
    assert_eq!(get("clone3"), "ENOSYS", "{r:?}");
    assert_eq!(get("keyctl"), "EPERM", "{r:?}");
    assert_eq!(get("add_key"), "EPERM", "{r:?}");
    assert_eq!(get("clone(CLONE_NEWNS)"), "EPERM", "{r:?}");
    assert_eq!(get("fork"), "ok", "{r:?}");
    assert_eq!(get("mount"), "EPERM", "{r:?}");
    assert_eq!(get("socket(AF_UNIX)"), "ok", "{r:?}");
    assert_eq!(get("socket(AF_VSOCK)"), "EPERM", "{r:?}");
    assert_eq!(get("personality(query)"), "ok", "{r:?}");
    assert_eq!(get("personality(ADDR_NO_RANDOMIZE)"), "EPERM", "{r:?}");
    // A syscall newer than every one the profile names (listmount, Linux
    // 6.8, unknown to libseccomp 2.5.4): ENOSYS from the stub, so that libc
    // would fall back. With a libseccomp that knows it, the allowlist has
    // it and the kernel's own answer (EFAULT for a null request) comes back.
    if get("listmount(unfiltered)") == "EFAULT" {
        let expected = if get("listmount known") == "yes" {
            "EFAULT"
        } else {
            "ENOSYS"
        };
        assert_eq!(get("listmount"), expected, "{r:?}");
    }
    // An old syscall the profile denies stays EPERM (the stub only answers
    // above the largest number the profile names).
    assert_eq!(get("init_module"), "EPERM", "{r:?}");
    // The same program guards the 32-bit ABI a 64-bit process can reach.
    if get("int80 getpid") != "n/a" {
        assert_eq!(get("int80 getpid"), "ok", "{r:?}");
        assert_eq!(get("int80 unshare"), "EPERM", "{r:?}");
    }
}

#[test]
fn with_cap_sys_admin_the_filter_lets_namespaces_through() {
    let r = probe("docker+sys_admin");
    let get = |k: &str| r.get(k).map(String::as_str).unwrap_or("missing");
    assert_eq!(get("getpid"), "ok", "{r:?}");
    // The filter lets these through; what the kernel then says depends on
    // our own privileges (root here: the new UTS namespace is the child's).
    if nix::unistd::geteuid().is_root() {
        assert_eq!(get("unshare(CLONE_NEWUTS)"), "ok", "{r:?}");
    } else {
        assert_ne!(get("unshare(CLONE_NEWUTS)"), "missing", "{r:?}");
    }
    // The kernel itself rejects these arguments, after the filter allowed
    // the call: EINVAL, not the filter's ENOSYS/EPERM.
    assert_eq!(get("clone3"), "EINVAL", "{r:?}");
    assert_eq!(get("clone(CLONE_NEWNS)"), "EINVAL", "{r:?}");
    // keyctl is not in docker's profile at all.
    assert_eq!(get("keyctl"), "EPERM", "{r:?}");
}

/// Only does something in the child that `probe` starts.
#[test]
fn probe_child() {
    let Ok(mode) = std::env::var(PROBE_ENV) else {
        return;
    };
    let code = match run_probe(&mode) {
        Ok(()) => 0,
        Err(why) => {
            report("error", &why);
            3
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn report(name: &str, result: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "probe: {name}={result}");
    let _ = out.flush();
}

/// `ok` or the errno's name.
fn outcome(ret: libc::c_long) -> String {
    if ret >= 0 {
        "ok".to_string()
    } else {
        format!("{:?}", Errno::last())
    }
}

struct PrintSink;

impl minibox::trace::Sink for PrintSink {
    fn event(&mut self, event: minibox::trace::Event) {
        report("trace", &event.step);
    }
}

fn run_probe(mode: &str) -> Result<(), String> {
    let caps = match mode {
        "docker" => DOCKER_CAPS,
        "docker+sys_admin" => DOCKER_CAPS.with(CAP_SYS_ADMIN),
        other => return Err(format!("unknown mode {other}")),
    };
    let filter = Profile::docker_default()
        .compile(caps)
        .map_err(|e| e.to_string())?;

    // SAFETY: listmount with a null request fails (EFAULT) before doing
    // anything; this only tells whether the kernel has the call.
    let ret = unsafe { libc::syscall(SYS_LISTMOUNT, 0usize, 0usize, 0usize, 0u32) };
    report("listmount(unfiltered)", &outcome(ret));
    let known = libseccomp::ScmpSyscall::from_name("listmount").is_ok();
    report("listmount known", if known { "yes" } else { "no" });

    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    minibox::trace::set_sink("init", Some(Box::new(PrintSink)));
    filter.load().map_err(|e| e.to_string())?;
    minibox::trace::set_sink("init", None);

    // SAFETY (for every raw syscall below): each call passes only integers
    // or pointers to our own live buffers, or arguments the kernel rejects
    // before using them (null pointers with zero sizes), so none can touch
    // memory we do not own.
    report(
        "getpid",
        &outcome(unsafe { libc::syscall(libc::SYS_getpid) }),
    );

    let mut fds = [0i32; 2];
    // SAFETY: see above; `fds` has room for the two descriptors.
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if made != 0 {
        return Err(format!("pipe2: {}", Errno::last()));
    }
    // SAFETY: see above; one byte from a static buffer.
    let wrote = unsafe { libc::syscall(libc::SYS_write, fds[1], b"x".as_ptr(), 1usize) };
    report("write", &outcome(wrote));

    report(
        "unshare(CLONE_NEWUTS)",
        // SAFETY: see above.
        &outcome(unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUTS) }),
    );
    // A null clone_args of size 0: the kernel would answer EINVAL; only the
    // filter can answer ENOSYS.
    report(
        "clone3",
        // SAFETY: see above.
        &outcome(unsafe { libc::syscall(libc::SYS_clone3, 0usize, 0usize) }),
    );
    // KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), no create.
    report(
        "keyctl",
        // SAFETY: see above.
        &outcome(unsafe { libc::syscall(libc::SYS_keyctl, 0, -3i32, 0) }),
    );
    report(
        "add_key",
        // SAFETY: see above; null type and description fail with EFAULT.
        &outcome(unsafe {
            libc::syscall(libc::SYS_add_key, 0usize, 0usize, 0usize, 0usize, -3i32)
        }),
    );
    // CLONE_NEWNS together with CLONE_FS is invalid: if the filter let it
    // through, the kernel would refuse it (EINVAL) and no child would exist.
    let flags = (libc::CLONE_NEWNS | libc::CLONE_FS | libc::SIGCHLD) as libc::c_ulong;
    report(
        "clone(CLONE_NEWNS)",
        // SAFETY: see above.
        &outcome(unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) }),
    );
    report("fork", &fork_and_reap());
    report(
        "mount",
        // SAFETY: see above; null source/target/type fail with EFAULT.
        &outcome(unsafe { libc::syscall(libc::SYS_mount, 0usize, 0usize, 0usize, 0usize, 0usize) }),
    );
    report(
        "socket(AF_UNIX)",
        // SAFETY: see above.
        &outcome(unsafe {
            libc::syscall(
                libc::SYS_socket,
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
            )
        }),
    );
    report(
        "socket(AF_VSOCK)",
        // SAFETY: see above.
        &outcome(unsafe {
            libc::syscall(
                libc::SYS_socket,
                libc::AF_VSOCK,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
            )
        }),
    );
    report(
        "personality(query)",
        // SAFETY: see above; 0xffffffff only reads the persona.
        &outcome(unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) }),
    );
    report(
        "personality(ADDR_NO_RANDOMIZE)",
        // SAFETY: see above (and the filter refuses it).
        &outcome(unsafe { libc::syscall(libc::SYS_personality, 0x0040000u64) }),
    );

    report(
        "listmount",
        // SAFETY: see above; a null request fails with EFAULT.
        &outcome(unsafe { libc::syscall(SYS_LISTMOUNT, 0usize, 0usize, 0usize, 0u32) }),
    );
    report(
        "init_module",
        // SAFETY: see above; a null image of length 0 is rejected.
        &outcome(unsafe { libc::syscall(libc::SYS_init_module, 0usize, 0usize, 0usize) }),
    );

    let (getpid, unshare) = int80_probes();
    report("int80 getpid", &getpid);
    report("int80 unshare", &unshare);
    Ok(())
}

/// fork(): the child exits 7 at once; we wait for it.
fn fork_and_reap() -> String {
    // SAFETY: the child only calls _exit, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: leaving the child without running any Rust code.
        unsafe { libc::_exit(7) };
    }
    if pid < 0 {
        return format!("{:?}", Errno::last());
    }
    let mut status = 0;
    // SAFETY: `status` is ours; `pid` is our child.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    if waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7 {
        "ok".to_string()
    } else {
        format!("child status {status}")
    }
}

/// The i386 ABI (`int $0x80`) from this 64-bit process, in a forked child
/// so that a kernel without IA-32 emulation (SIGSEGV) only costs the child:
/// getpid (20) and unshare (310, CLONE_NEWUTS).
#[cfg(target_arch = "x86_64")]
fn int80_probes() -> (String, String) {
    fn int80(nr: u32, arg: u32) -> i32 {
        let ret: i32;
        // SAFETY: a 32-bit syscall with one integer argument. The argument
        // goes in ebx, which LLVM reserves, so it is swapped in and out
        // around the call; eax returns the result, and r8–r11 (which the
        // kernel may zero on this entry) are declared clobbered.
        unsafe {
            std::arch::asm!(
                "xchg {arg}, rbx",
                "int 0x80",
                "xchg {arg}, rbx",
                arg = inout(reg) u64::from(arg) => _,
                inlateout("eax") nr as i32 => ret,
                lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
                options(nostack)
            );
        }
        ret
    }
    let run = |nr: u32, arg: u32| -> String {
        // SAFETY: the child makes one syscall and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let ret = int80(nr, arg);
            let code = if ret >= 0 { 0 } else { (-ret).min(250) };
            // SAFETY: leaving the child without running any Rust code.
            unsafe { libc::_exit(code) };
        }
        if pid < 0 {
            return "n/a".to_string();
        }
        let mut status = 0;
        // SAFETY: `status` is ours; `pid` is our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS {
            return "killed by SIGSYS".to_string();
        }
        if !libc::WIFEXITED(status) {
            return "n/a".to_string();
        }
        match libc::WEXITSTATUS(status) {
            0 => "ok".to_string(),
            errno => format!("{:?}", Errno::from_raw(errno)),
        }
    };
    (run(20, 0), run(310, libc::CLONE_NEWUTS as u32))
}

#[cfg(not(target_arch = "x86_64"))]
fn int80_probes() -> (String, String) {
    ("n/a".to_string(), "n/a".to_string())
}
