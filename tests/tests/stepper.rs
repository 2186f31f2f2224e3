//! The presenter's stepper (`--trace step`), driven without a terminal:
//! the run is a child whose stderr the test reads line by line, and the
//! presenter's `just next` is a byte the test writes to the run's fifo.
//! Every wait is for a line the run prints (`paused at step N`) or for its
//! end, never for time.

use minibox_tests::{
    apply, compat_flags, default_rootfs, every_stage, require_root, rstest, stage_command,
    stage_process, stderr, stdout, test_env,
};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

/// How long one step may take before the test calls the run stuck: a
/// failure detector, not a synchronisation (each wait ends at a line).
const STUCK: Duration = Duration::from_secs(60);

/// A `run --trace step` in progress.
struct Stepped {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line so far, for failure messages and assertions.
    seen: Vec<String>,
}

/// Where the run stands.
enum Next {
    /// Paused after step `n`, which is the line `step`.
    Paused { n: u64, step: String },
    /// stderr closed: the run has ended.
    Ended,
}

impl Stepped {
    fn start(stage: &str, args: &[std::ffi::OsString]) -> Stepped {
        let mut child = stage_process(stage)
            .arg("run")
            .args(["--trace", "step"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the stage binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Stepped {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The run's fifo: named after its pid, under the test's runtime dir.
    fn fifo(&self) -> PathBuf {
        test_env()
            .root
            .join("run/step")
            .join(self.child.id().to_string())
    }

    /// Read stderr up to the next pause, or to its end.
    fn next(&mut self) -> Next {
        loop {
            let line = match self.lines.recv_timeout(STUCK) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Next::Ended,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no line for {STUCK:?}; so far:\n{}", self.seen.join("\n"))
                }
            };
            let pause = line
                .strip_prefix("⏸ paused at step ")
                .and_then(|rest| rest.split(':').next())
                .and_then(|n| n.parse::<u64>().ok());
            let step = self.seen.last().cloned().unwrap_or_default();
            self.seen.push(line);
            if let Some(n) = pause {
                return Next::Paused { n, step };
            }
        }
    }

    /// The presenter's word: `x` is one step, `g` goes to the end.
    fn say(&self, word: u8) {
        // O_NONBLOCK: a fifo nobody reads is ENXIO, not a hang.
        let mut fifo = std::fs::File::options()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(self.fifo())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.fifo().display()));
        fifo.write_all(&[word]).expect("write to the fifo");
    }

    /// While paused, run has not finished.
    fn assert_running(&mut self, at: u64) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "run ended while paused at step {at}:\n{}",
            self.seen.join("\n")
        );
    }

    /// `init  (pid 1, host pid N)`: init's pid on the host.
    fn init_host_pid(&self) -> Option<i32> {
        self.seen.iter().find_map(|l| {
            l.strip_prefix("init  (pid 1, host pid ")?
                .strip_suffix(')')?
                .parse()
                .ok()
        })
    }

    /// Release one step at a time to the end; the exit code.
    fn step_to_the_end(&mut self) -> i32 {
        while let Next::Paused { n, .. } = self.next() {
            self.assert_running(n);
            self.say(b'x');
        }
        self.wait()
    }

    fn wait(&mut self) -> i32 {
        let status = self.child.wait().expect("wait for run");
        status
            .code()
            .unwrap_or_else(|| panic!("run died of a signal: {status:?}"))
    }
}

impl Drop for Stepped {
    /// A failed assertion must not leave the run (and its container) behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Mount points (field 5) of a process's mount table.
fn mount_points(pid: i32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_else(|e| panic!("read init's mountinfo: {e}"));
    text.lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .collect()
}

#[test]
fn stage_04_stops_before_pivot_root_and_finishes_with_the_exit_code() {
    require_root!();
    let rootfs = default_rootfs().display().to_string();
    let mut run = Stepped::start(
        "04-pivot-root",
        &["sh".into(), "-c".into(), "exit 7".into()],
    );
    let mut before_pivot = false;
    let mut after_pivot = false;
    let mut pauses = 0;
    while let Next::Paused { n, step } = run.next() {
        pauses += 1;
        run.assert_running(n);
        if step.ends_with(&format!("chdir({rootfs:?})")) {
            // The step before pivot_root: init is held right here, so its
            // mount table still has the host's root with the rootfs bound
            // on itself somewhere inside it.
            let init = run.init_host_pid().expect("init's header came first");
            assert!(
                !run.seen.iter().any(|l| l.contains("pivot_root(")),
                "pivot_root shown before it was let go"
            );
            let points = mount_points(init);
            assert!(
                points.iter().any(|p| p == &rootfs),
                "before pivot_root init's mountinfo should show the rootfs bound at {rootfs}: {points:?}"
            );
            assert!(points.len() > 3, "the old root's mounts: {points:?}");
            before_pivot = true;
        }
        if step.ends_with("umount2(\".\", MNT_DETACH)") {
            let init = run.init_host_pid().expect("init's header came first");
            let points = mount_points(init);
            assert!(
                !points.iter().any(|p| p == &rootfs),
                "after pivot_root and the unmount the old root is gone: {points:?}"
            );
            after_pivot = true;
        }
        run.say(b'x');
    }
    assert!(before_pivot && after_pivot, "{}", run.seen.join("\n"));
    assert!(pauses > 20, "a pause per step of run and init: {pauses}");
    assert_eq!(run.wait(), 7, "{}", run.seen.join("\n"));
    assert!(!run.fifo().exists(), "run removes its fifo at the end");
}

#[test]
fn ps_answers_while_a_stage_07_run_is_paused() {
    require_root!();
    let mut args = compat_flags("07-full");
    args.extend(["sh".into(), "-c".into(), "exit 3".into()]);
    let mut run = Stepped::start("07-full", &args);
    let id = loop {
        match run.next() {
            Next::Paused { step, .. } => {
                // init's hostname is the container id: the record exists.
                if let Some(id) = step
                    .strip_prefix(" ├─ sethostname(\"")
                    .and_then(|s| s.strip_suffix("\")"))
                {
                    break id.to_string();
                }
                run.say(b'x');
            }
            Next::Ended => panic!("ended before sethostname:\n{}", run.seen.join("\n")),
        }
    };
    // `ps` in the presenter's second terminal: it takes the state lock,
    // which the paused run must not hold. A thread, so that a hang is a
    // failure after STUCK and not a test that never ends.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(stage_command("07-full").args(["ps", "-a"]).output());
    });
    let ps = rx
        .recv_timeout(STUCK)
        .expect("ps answers while run is paused")
        .expect("run ps");
    assert!(ps.status.success(), "ps: {}", stderr(&ps));
    assert!(
        stdout(&ps).contains(&id[..12]),
        "ps lists the paused container {id}:\n{}",
        stdout(&ps)
    );
    run.assert_running(0);
    // `just next go`: no more pauses.
    run.say(b'g');
    if let Next::Paused { n, .. } = run.next() {
        panic!("paused at step {n} after go:\n{}", run.seen.join("\n"));
    }
    assert_eq!(run.wait(), 3, "{}", run.seen.join("\n"));
}

#[apply(every_stage)]
fn every_stage_pauses_run_and_init(stage: &str) {
    require_root!();
    let mut args = compat_flags(stage);
    args.extend(["sh".into(), "-c".into(), "exit 5".into()]);
    let mut run = Stepped::start(stage, &args);
    let code = run.step_to_the_end();
    assert_eq!(code, 5, "{stage}:\n{}", run.seen.join("\n"));
    // A pause right after one of init's own steps (sethostname is init's
    // in every stage), so init waited too, not only run.
    let paused_after = |needle: &str| {
        run.seen
            .windows(2)
            .any(|w| w[0].contains(needle) && w[1].starts_with("⏸ paused at step "))
    };
    assert!(
        paused_after("sethostname("),
        "{stage}: no pause after init's sethostname:\n{}",
        run.seen.join("\n")
    );
    // The last stop is before the command's execve: once it runs, run's
    // own steps (waitpid, …) are shown without stopping.
    let last_stop = run
        .seen
        .iter()
        .rposition(|l| l.starts_with("⏸ paused at step "))
        .expect("stops");
    assert!(
        run.seen[last_stop - 1].contains(", [\"sh\", \"-c\", \"exit 5\"])"),
        "{stage}: the last stop should be before the command runs:\n{}",
        run.seen.join("\n")
    );
    assert!(
        run.seen[last_stop..].iter().any(|l| l.contains("waitpid(")),
        "{stage}: waitpid shown after the last stop:\n{}",
        run.seen.join("\n")
    );
}

#[test]
fn step_and_detach_do_not_mix() {
    require_root!();
    let out = stage_command("07-full")
        .args(["run", "--trace", "step", "-d", "--rootfs"])
        .arg(default_rootfs())
        .arg("true")
        .output()
        .expect("run 07-full");
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--trace step needs run in the foreground"),
        "{}",
        stderr(&out)
    );
}
