//! The presenter's stepper (`--trace step`): the tree drawn line by line,
//! and after each step a pause until the presenter says go on.
//!
//! ```text
//! init  (pid 1, host pid 4243)
//!  ├─ chdir("/home/me/minibox/build/rootfs")
//! ⏸ paused at step 17: `just next` goes on
//! ```
//!
//! The word to go on comes through a side channel, not the terminal: `-it`
//! gives the container run's stdin, and the presenter wants a second
//! terminal anyway, to look at the half-built container
//! (`/proc/PID/ns/*`, its mountinfo, its cgroup). run makes a fifo,
//! `<runtime dir>/step/<run's pid>` (0600 in a 0700 directory: only its
//! owner may step it), and reads one byte from it per step; `just next`
//! writes them. Any byte means "one step", except `g`: "go, stop pausing".
//!
//! init's steps pause too: init sends them as `Msg::Step` and waits for
//! run's `Msg::Resume`, which run sends once the presenter has let that step
//! go (see `sync`). So only run reads the fifo, and the steps of both
//! processes come one at a time, in the order the trace shows them.
//! Stepping ends when the command runs: run's later steps (relaying a
//! terminal, waitpid) are shown without stops.

use super::{outcome, tree, Event, Sink};
use crate::error::{Error, Result};
use crate::paths;
use colored::Colorize;
use std::fs::File;
use std::io::{ErrorKind, IsTerminal, Read, Write};
use std::path::PathBuf;

/// Where the stepper of the run with pid `pid` reads its word to go on.
pub fn fifo_path(pid: u32) -> PathBuf {
    paths::runtime_dir().join("step").join(pid.to_string())
}

pub struct StepSink {
    /// The process that made the fifo: the only one that pauses. A forked
    /// copy of run (the child between clone and exec) must not read the
    /// presenter's words meant for run.
    owner: u32,
    fifo: PathBuf,
    reader: File,
    /// Steps shown so far: the number the presenter sees in the pause line.
    shown: u64,
    /// Whose step came last, to start a new header when that changes.
    last: Option<(String, i32)>,
    init_host_pid: Option<i32>,
    /// The presenter said `g`, or the run is ending: show, do not stop.
    running: bool,
    /// On a terminal the pause line is erased when the step is let go.
    terminal: bool,
}

impl StepSink {
    /// Make the fifo and tell the presenter how to step.
    pub fn new() -> Result<StepSink> {
        let owner = std::process::id();
        paths::runtime_subdir("step")?;
        let fifo = fifo_path(owner);
        // A fifo left by a run that was killed, whose pid this run now has.
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
            |errno| Error::Sys {
                step: format!("mkfifo({}, 0600)", fifo.display()),
                errno,
            },
        )?;
        // Read *and* write: opening a fifo for reading alone would block
        // until a writer comes, and every `just next` closing its end would
        // be an end-of-file here. As a writer of our own we see neither, and
        // words written before we read are kept in the pipe. std opens it
        // close-on-exec, so init and the container never hold it.
        let reader = File::options()
            .read(true)
            .write(true)
            .open(&fifo)
            .map_err(|e| Error::io(format!("open {}", fifo.display()), e))?;
        let terminal = std::io::stderr().is_terminal();
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            format!(
                "⏸ --trace step: run waits after every step; go on with `just next` in another terminal (it writes to {})",
                fifo.display()
            )
            .dimmed()
        );
        Ok(StepSink {
            owner,
            fifo,
            reader,
            shown: 0,
            last: None,
            init_host_pid: None,
            running: false,
            terminal,
        })
    }

    /// Block until the presenter's next word; `false` means stop pausing.
    fn wait_for_word(&mut self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match self.reader.read(&mut byte) {
                Ok(1) => return byte[0] != b'g',
                // We hold a writing end ourselves, so a fifo never reads
                // end-of-file; if it somehow did, stepping is over.
                Ok(_) => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {
                    // Ctrl-C (run's handler has already killed init): let
                    // run unwind instead of waiting for a word.
                    if crate::process::checkpoint().is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }
}

impl Sink for StepSink {
    fn event(&mut self, event: Event) {
        self.shown += 1;
        let mut text = String::new();
        let who = (event.actor.clone(), event.pid);
        if self.last.as_ref() != Some(&who) {
            text.push_str(&tree::header(&event, self.init_host_pid));
            text.push('\n');
            self.last = Some(who);
        }
        text.push_str(&" ├─ ".dimmed().to_string());
        text.push_str(&outcome(&event));
        text.push('\n');
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
    }

    fn init_started(&mut self, host_pid: i32) {
        self.init_host_pid = Some(host_pid);
    }

    fn pause(&mut self) {
        if self.running || std::process::id() != self.owner {
            return;
        }
        if !super::pauses_allowed() {
            // Only the state lock's few steps (writing a record): holding it
            // through a pause would make every `ps` wait for the presenter.
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}",
                "   (not paused here: run holds a lock other commands wait for)".dimmed()
            );
            return;
        }
        let line = format!("⏸ paused at step {}: `just next` goes on", self.shown);
        {
            let mut stderr = std::io::stderr().lock();
            // On a terminal the line goes away again at the word to go on;
            // elsewhere (a log, a test reading it) it stays, one line each.
            let _ = match self.terminal {
                true => write!(stderr, "{}", line.yellow()),
                false => writeln!(stderr, "{line}"),
            };
            let _ = stderr.flush();
        }
        if !self.wait_for_word() {
            self.running = true;
        }
        if self.terminal {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }

    fn finish(&mut self) {
        self.running = true;
        if std::process::id() == self.owner {
            let _ = std::fs::remove_file(&self.fifo);
        }
    }
}
