//! Issue 16: `-t` gives the container a pseudo-terminal of its own (stage
//! 07 on), as docker does, where stages 01–06 hand it the caller's.
//!
//! The caller's terminal here is util-linux `script`, which runs a command
//! on a new pty and copies our pipes to and from it: no terminal is needed
//! to run the tests, and the test can type (Ctrl-C too), resize the
//! caller's terminal, and read what the container printed.

use minibox_tests::{binary_process, compat_flags, require_root, stage_bin, stage_command, stdout};
use rstest::rstest;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A shell word for `script -c`.
fn quote(word: impl Into<OsString>) -> String {
    let word = word.into().to_string_lossy().into_owned();
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `STAGE run <compat flags> ARGS…` as a shell command line.
fn run_line(stage: &str, args: &[&str]) -> String {
    let mut words = vec![quote(stage_bin(stage)), "run".into()];
    words.extend(compat_flags(stage).into_iter().map(quote));
    words.extend(["--trace", "off"].map(quote));
    words.extend(args.iter().map(|a| quote(*a)));
    words.join(" ")
}

/// `script` running `line` on a new terminal, with our pipes on its side.
fn on_a_terminal(line: &str) -> std::process::Command {
    let mut script = binary_process(std::path::Path::new("script"));
    script.args(["-q", "-f", "-e", "-c", line, "/dev/null"]);
    script
}

/// Prints, for the process's stdin: its terminal's name, its size, and
/// whether that terminal belongs to the devpts mounted on /dev/pts (the
/// container's own instance) — then /dev/console's device number.
const SHOW_TERMINAL: &str = "tty; stty size; \
     [ \"$(stat -L -c %d /proc/self/fd/0)\" = \"$(stat -c %d /dev/pts)\" ] && echo own-devpts; \
     stat -c console=%t:%T /dev/console 2>/dev/null; true";

fn lines(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

#[rstest]
fn run_t_gives_the_container_a_terminal_of_its_own(
    #[values("07-full", "08-network", "09-hardening", "10-rootless")] stage: &str,
) {
    require_root!();
    let line = format!(
        "stty rows 33 cols 99; {}",
        run_line(stage, &["-t", "sh", "-c", SHOW_TERMINAL])
    );
    let out = on_a_terminal(&line)
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    assert!(out.status.success(), "{stage}: {out:?}");
    let seen = lines(&out.stdout);
    // Numbered by the container's own devpts: the first terminal there.
    assert_eq!(
        seen.first().map(String::as_str),
        Some("/dev/pts/0"),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"33 99".into()),
        "window size not passed: {seen:?}"
    );
    assert!(seen.contains(&"own-devpts".into()), "{seen:?}");
    // 136:0 in hex: the terminal, bound onto /dev/console.
    assert!(seen.contains(&"console=88:0".into()), "{seen:?}");
}

/// The control: before stage 07, `-t` hands over the caller's terminal: a
/// terminal, but not of the container's devpts (so `tty` cannot even name
/// it there).
#[test]
fn before_stage_07_the_container_gets_the_callers_terminal() {
    require_root!();
    let inside = format!("[ -t 0 ] && echo stdin-is-a-terminal; {SHOW_TERMINAL}");
    let out = on_a_terminal(&run_line("06-volumes", &["-it", "sh", "-c", &inside]))
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let seen = lines(&out.stdout);
    assert!(seen.contains(&"stdin-is-a-terminal".into()), "{seen:?}");
    assert!(!seen.contains(&"own-devpts".into()), "{seen:?}");
}

/// What `script` printed so far, read on a thread so the test can wait for
/// a marker with a deadline instead of blocking forever on a silent pipe.
struct Session {
    child: Child,
    input: std::process::ChildStdin,
    chunks: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Session {
    fn start(line: &str) -> Session {
        let mut child = on_a_terminal(line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start script");
        let input = child.stdin.take().expect("script's stdin");
        let mut output = child.stdout.take().expect("script's stdout");
        let (send, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 || send.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Session {
            child,
            input,
            chunks,
            seen: String::new(),
        }
    }

    /// Wait until `marker` has been printed (the deadline only turns a hang
    /// into a failure; nothing is timed).
    fn wait_for(&mut self, marker: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.seen.contains(marker) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("never saw {marker:?}; the terminal showed:\n{}", self.seen),
            }
        }
    }

    fn type_in(&mut self, text: &str) {
        self.input
            .write_all(text.as_bytes())
            .and_then(|()| self.input.flush())
            .expect("type into the terminal");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A failed test must not leave script and its container behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[rstest]
fn run_it_ctrl_c_and_resizing_reach_the_container(
    #[values("07-full", "09-hardening")] stage: &str,
) {
    require_root!();
    let line = format!(
        "echo caller=$(tty); exec {}",
        run_line(stage, &["-it", "sh"])
    );
    let mut session = Session::start(&line);
    session.wait_for("\n");
    let caller = session
        .seen
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("caller="))
        .expect("the caller's terminal")
        .to_string();
    // $((…)): the typed line is echoed; only the shell's answer says 2.
    session.type_in("echo ready-$((1+1))\n");
    session.wait_for("ready-2");

    // The caller's window changes size: the kernel sends run SIGWINCH, and
    // the container's terminal follows.
    let resized = std::process::Command::new("stty")
        .args(["-F", &caller, "rows", "50", "cols", "100"])
        .status()
        .expect("run stty");
    assert!(resized.success());
    session.type_in("echo size=$(stty size)\n");
    session.wait_for("size=50 100");

    // Ctrl-C is a byte for the container's terminal, which turns it into
    // SIGINT for the job in its foreground: the job's trap runs, the
    // container's shell (PID 1) carries on.
    session.type_in(
        "sh -c 'trap \"echo got-INT; exit 7\" INT; echo loop-$((2+2)); while :; do sleep 1; done'\n",
    );
    session.wait_for("loop-4");
    session.type_in("\x03");
    session.wait_for("got-INT");
    session.type_in("echo status=$?\n");
    session.wait_for("status=7");
    session.type_in("exit 3\n");
    let status = session.child.wait().expect("wait for script");
    assert_eq!(status.code(), Some(3), "{}", session.seen);
}

#[test]
fn run_d_t_logs_what_the_terminal_printed() {
    require_root!();
    let out = stage_command("07-full")
        .arg("run")
        .args(compat_flags("07-full").iter().filter(|f| *f != "--rm"))
        .args(["-d", "-t", "--trace", "off", "sh", "-c", "tty; echo hi"])
        .write_stdin("")
        .output()
        .expect("run -d -t");
    assert!(out.status.success(), "{out:?}");
    let id = stdout(&out).trim().to_string();
    let wait = stage_command("07-full")
        .args(["wait", &id])
        .output()
        .expect("wait");
    assert_eq!(stdout(&wait).trim(), "0");
    let logs = stage_command("07-full")
        .args(["logs", &id])
        .output()
        .expect("logs");
    let _ = stage_command("07-full").args(["rm", "-f", &id]).output();
    // A terminal ends lines with CR LF (onlcr): the log holds what the
    // terminal printed, not what the command wrote to a pipe.
    assert_eq!(stdout(&logs), "/dev/pts/0\r\nhi\r\n");
}

#[test]
fn exec_t_gets_a_terminal_of_the_containers_own() {
    require_root!();
    let out = stage_command("07-full")
        .arg("run")
        .args(compat_flags("07-full").iter().filter(|f| *f != "--rm"))
        .args(["-d", "--trace", "off", "sleep", "1000"])
        .output()
        .expect("run -d");
    let id = stdout(&out).trim().to_string();
    assert!(out.status.success(), "{out:?}");
    let line = format!(
        "stty rows 40 cols 77; exec {} exec -t --trace off {} sh -c {}",
        quote(stage_bin("07-full")),
        quote(&id),
        quote(SHOW_TERMINAL)
    );
    let out = on_a_terminal(&line)
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let _ = stage_command("07-full").args(["rm", "-f", &id]).output();
    let seen = lines(&out.stdout);
    assert!(out.status.success(), "{seen:?}");
    assert_eq!(
        seen.first().map(String::as_str),
        Some("/dev/pts/0"),
        "{seen:?}"
    );
    assert!(seen.contains(&"40 77".into()), "{seen:?}");
    assert!(seen.contains(&"own-devpts".into()), "{seen:?}");
}

/// `-u` with `-t`: the terminal is the user's, as runc makes it; with `-i`
/// alone the caller's own terminal on the host is left as it was.
#[rstest]
fn the_terminal_belongs_to_the_containers_user(#[values("07-full", "09-hardening")] stage: &str) {
    require_root!();
    let inside = run_line(
        stage,
        &[
            "-t",
            "-u",
            "1000:1000",
            "sh",
            "-c",
            "stat -c owner=%u $(tty)",
        ],
    );
    let untouched = run_line(stage, &["-i", "-u", "1000:1000", "true"]);
    let line = format!("{inside}; {untouched}; stat -c caller=%u $(tty)");
    let out = on_a_terminal(&line)
        .stdin(Stdio::null())
        .output()
        .expect("run script");
    let seen = lines(&out.stdout);
    assert!(seen.contains(&"owner=1000".into()), "{seen:?}");
    assert!(seen.contains(&"caller=0".into()), "{seen:?}");
}
