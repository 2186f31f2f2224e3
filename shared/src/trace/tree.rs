//! The tree: consecutive events of one process under a header.
//!
//! ```text
//! run  (pid 4242)
//!  ├─ socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC) → run end fd 3, init end fd 4
//!  └─ clone(CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD) → host pid 4243
//! init  (pid 1, host pid 4243)
//!  ├─ execve("/proc/self/exe", ["01-namespaces", "init"])
//!  └─ execve("/bin/sh", ["sh", "-c", "echo hi"])
//! ```
//!
//! The sink buffers events and draws them on `flush`, which run calls when
//! init is about to exec: the tree is complete before the container prints
//! anything, and never interleaves with its output.

use super::{outcome, Event, Sink};
use colored::Colorize;
use std::io::Write;

#[derive(Default)]
pub struct TreeSink {
    pending: Vec<Event>,
    init_host_pid: Option<i32>,
}

impl Sink for TreeSink {
    fn event(&mut self, event: Event) {
        self.pending.push(event);
    }

    fn flush(&mut self) {
        let text = render(&self.pending, self.init_host_pid);
        self.pending.clear();
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
    }

    fn init_started(&mut self, host_pid: i32) {
        self.init_host_pid = Some(host_pid);
    }
}

/// Group consecutive events of one process under a header, tree-style.
pub fn render(events: &[Event], init_host_pid: Option<i32>) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < events.len() {
        let (actor, pid) = (&events[i].actor, events[i].pid);
        let end = events[i..]
            .iter()
            .position(|e| &e.actor != actor || e.pid != pid)
            .map_or(events.len(), |n| i + n);
        out.push_str(&header(&events[i], init_host_pid));
        out.push('\n');
        for (n, event) in events[i..end].iter().enumerate() {
            let branch = if i + n + 1 == end {
                " └─ "
            } else {
                " ├─ "
            };
            out.push_str(&branch.dimmed().to_string());
            out.push_str(&outcome(event));
            out.push('\n');
        }
        i = end;
    }
    out
}

/// `run  (pid 4242)`, `init  (pid 1, host pid 4243)`.
pub fn header(event: &Event, init_host_pid: Option<i32>) -> String {
    let pid = event.pid;
    match (event.actor.as_str(), init_host_pid) {
        ("init", Some(host)) => format!("{}  (pid {pid}, host pid {host})", "init".bold()),
        (name, _) => format!("{}  (pid {pid})", name.bold()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(actor: &str, pid: i32, step: &str) -> Event {
        Event {
            actor: actor.into(),
            pid,
            step: step.into(),
            result: None,
            errno: None,
            error: None,
            t_us: 0,
        }
    }

    #[test]
    fn consecutive_steps_of_one_process_share_a_header() {
        colored::control::set_override(false);
        let events = [
            event("run", 10, "a"),
            event("run", 10, "b"),
            event("init", 1, "c"),
            event("run", 10, "d"),
        ];
        assert_eq!(
            render(&events, Some(11)),
            "run  (pid 10)\n ├─ a\n └─ b\ninit  (pid 1, host pid 11)\n └─ c\nrun  (pid 10)\n └─ d\n"
        );
    }
}
