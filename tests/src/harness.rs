//! The one way tests start a container that stays up while they look at it.

use crate::{cgroup_leaf_dirs, compat_flags, init_host_pid, json_events, stage_process};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Stdio};

/// A running container: `run -i --trace json …` whose command has printed
/// a line `ready`. Its trace up to init's final `execve` has been read (run
/// draws the trace before it lets init exec, so all of it is out by then).
pub struct Container {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    trace: BufReader<ChildStderr>,
    /// What the container printed before `ready`.
    pub said: String,
    /// The JSON trace events up to init's final `execve`.
    pub events: Vec<serde_json::Value>,
}

impl Container {
    /// `<stage> run -i --trace json ARGS…`; ARGS end with a command that
    /// prints `ready` once it is up.
    pub fn start<I, S>(stage: &str, args: I) -> Container
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = stage_process(stage)
            .args(["run", "-i", "--trace", "json"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the stage binary");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut trace = BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut said = String::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap_or(0) == 0 {
                let mut err = String::new();
                let _ = trace.read_to_string(&mut err);
                panic!("the container ended before it said ready: {said}\nrun's stderr:\n{err}");
            }
            if line == "ready\n" {
                break;
            }
            said.push_str(&line);
        }
        let mut events = Vec::new();
        loop {
            let mut line = String::new();
            assert_ne!(
                trace.read_line(&mut line).unwrap_or(0),
                0,
                "the trace ended before init's exec"
            );
            let done = json_events(&line).into_iter().any(|event| {
                let exec = event["actor"] == "init"
                    && event["step"].as_str().is_some_and(|s| {
                        s.starts_with("execve(") && !s.starts_with("execve(\"/proc/self/exe\"")
                    });
                events.push(event);
                exec
            });
            if done {
                break;
            }
        }
        Container {
            child,
            stdin,
            stdout,
            trace,
            said,
            events,
        }
    }

    /// Run `script` in `sh -c` on any stage (with the flags that keep the
    /// stage 01–05 form working on later stages), then say `ready` and wait
    /// for a line on stdin ([`Container::finish`] sends it).
    pub fn script(stage: &str, flags: &[&str], script: &str) -> Container {
        let mut args: Vec<std::ffi::OsString> = compat_flags(stage);
        args.extend(flags.iter().map(Into::into));
        args.extend(["sh".into(), "-c".into()]);
        args.push(format!("{script}; echo ready; read line").into());
        Container::start(stage, args)
    }

    /// `run`'s pid on the host.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// init's pid on the host, from the trace's `clone` step.
    pub fn init_pid(&self) -> i32 {
        init_host_pid(&self.events).expect("a clone step in the trace")
    }

    /// The container's cgroup directories, from the trace.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        cgroup_leaf_dirs(&self.events)
    }

    /// Read trace events until run reports having forwarded `signal`.
    /// (Two signals sent back to back can merge into one pending signal,
    /// so a test waits for run to have handled the first.)
    pub fn wait_for_forward(&mut self, signal: &str) {
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            assert_ne!(
                self.trace.read_line(&mut line).unwrap_or(0),
                0,
                "the trace ended before {signal} was forwarded:\n{seen}"
            );
            if line.contains("\"step\":\"kill(") && line.contains(signal) {
                return;
            }
            seen.push_str(&line);
        }
    }

    /// Send the container a line on stdin (a script waiting in `read`
    /// goes on), then collect the rest: run's exit code and stderr.
    pub fn finish(mut self) -> (Option<i32>, String) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "bye");
        }
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        let mut err = String::new();
        let _ = self.trace.read_to_string(&mut err);
        let code = self.child.wait().expect("wait for run").code();
        (code, err)
    }

    /// The container was ended from outside (a signal to run): collect
    /// run's exit code and the rest of its stderr. stdin stays open until
    /// run has exited: an EOF on it would end a waiting `read` first.
    pub fn ended_from_outside(mut self) -> (Option<i32>, String) {
        let mut err = String::new();
        let _ = self.trace.read_to_string(&mut err);
        let code = self.child.wait().expect("wait for run").code();
        drop(self.stdin.take());
        (code, err)
    }

    /// Wait for run to end on its own: its exit code.
    pub fn wait(mut self) -> Option<i32> {
        drop(self.stdin.take());
        self.child.wait().expect("wait for run").code()
    }
}
