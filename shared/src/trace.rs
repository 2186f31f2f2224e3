//! The trace: one line per real step of run and init, drawn as a tree.
//!
//! Steps are recorded *where the syscall happens*, with the arguments it was
//! really given and the result it really returned: [`step`] wraps a call's
//! `nix::Result`, so a failed step carries its errno and nothing is narrated
//! after the fact.
//!
//! init cannot print: its stderr belongs to the container. So in init every
//! event is forwarded over the sync socket (see [`crate::sync`]), and run
//! renders both processes as one tree:
//!
//! ```text
//! run  (pid 4242)
//!  ├─ socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC) → run end fd 3, init end fd 4
//!  └─ clone(CLONE_NEWUTS|CLONE_NEWPID|CLONE_NEWNS|CLONE_NEWIPC|CLONE_NEWNET|SIGCHLD) → host pid 4243
//! init  (pid 1, host pid 4243)
//!  ├─ execve("/proc/self/exe", ["01-namespaces", "init", …])
//!  └─ execve("/bin/sh", ["sh", "-c", "echo hi"])
//! ```
//!
//! In `tree` mode run buffers events and draws them when init is about to
//! exec (so the tree never interleaves with the container's own output);
//! `json` mode prints one JSON object per event as it happens, for tools.

use crate::error::{Error, Result};
use crate::sync::{self, Msg};
use colored::Colorize;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// How run prints the trace (`--trace`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceMode {
    /// A process tree on stderr, colored on a terminal.
    #[default]
    Tree,
    /// One JSON object per line on stderr.
    Json,
    /// Nothing.
    Off,
}

/// One step, as sent between processes and printed in `json` mode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    /// Which process took the step: `run`, `init`, and in stage 07 also
    /// `exec`, `stop`, … (the subcommand's name).
    pub actor: String,
    /// The actor's pid as the actor itself sees it (init sees 1).
    pub pid: i32,
    /// The call with its arguments, e.g. `sethostname("c0ffee")`.
    pub step: String,
    /// What the call returned, when that is worth showing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The errno name when the step failed, e.g. `EPERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
    /// The errno's text, e.g. `Operation not permitted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// CLOCK_MONOTONIC in microseconds: the same clock in run and init, so
    /// `just bench` can tell how long each step took.
    pub t_us: u64,
}

enum Sink {
    /// run: draws (or prints) the events itself.
    Render {
        actor: &'static str,
        mode: TraceMode,
        pending: Vec<Event>,
        init_host_pid: Option<i32>,
    },
    /// init: hands every event to run over the sync socket.
    Forward,
}

// Both run and init are single-threaded; the mutex only makes the global safe.
static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// Called by run: start recording in `mode`.
pub fn start(mode: TraceMode) {
    start_as("run", mode);
}

/// Start recording steps of the process `actor` (`exec`, `stop`, …).
pub fn start_as(actor: &'static str, mode: TraceMode) {
    if !std::io::stderr().is_terminal()
        || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    {
        colored::control::set_override(false);
    }
    set_sink(Sink::Render {
        actor,
        mode,
        pending: Vec::new(),
        init_host_pid: None,
    });
}

/// Called in init (and in the child between clone and exec): events go to run.
pub fn forward_to_run() {
    // run put its mode in our environment (see `namespaces::spawn_init`).
    if std::env::var_os("MINIBOX_TRACE").is_some_and(|m| m == "off") {
        set_sink(Sink::Render {
            actor: "init",
            mode: TraceMode::Off,
            pending: Vec::new(),
            init_host_pid: None,
        });
    } else {
        set_sink(Sink::Forward);
    }
}

/// The current mode as `--trace` spells it (what init inherits).
pub fn mode_name() -> &'static str {
    match SINK.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(Sink::Render {
            mode: TraceMode::Off,
            ..
        }) => "off",
        Some(Sink::Render {
            mode: TraceMode::Json,
            ..
        }) => "json",
        _ => "tree",
    }
}

fn set_sink(sink: Sink) {
    *SINK.lock().unwrap_or_else(|poison| poison.into_inner()) = Some(sink);
}

/// Remember init's pid on the host, for the `init (pid 1, host pid N)` header.
pub fn set_init_host_pid(pid: i32) {
    if let Some(Sink::Render { init_host_pid, .. }) =
        SINK.lock().unwrap_or_else(|p| p.into_inner()).as_mut()
    {
        *init_host_pid = Some(pid);
    }
}

/// Record the outcome of a syscall and pass it on as a minibox [`Result`].
///
/// ```ignore
/// trace::step(format!("sethostname({name:?})"), sethostname(name))?;
/// ```
pub fn step<T>(step: impl Into<String>, result: nix::Result<T>) -> Result<T> {
    step_shows(step, result, |_| None)
}

/// Like [`step`], and show what the call returned: `→ host pid 4243`.
pub fn step_shows<T>(
    step: impl Into<String>,
    result: nix::Result<T>,
    show: impl FnOnce(&T) -> Option<String>,
) -> Result<T> {
    let step = step.into();
    match result {
        Ok(value) => {
            emit(own_event(step, show(&value), None));
            Ok(value)
        }
        Err(errno) => {
            emit(own_event(step.clone(), None, Some(errno)));
            Err(Error::Sys { step, errno })
        }
    }
}

/// Record a step that is not one syscall (a `PATH` lookup, say) and its result.
pub fn note(step: impl Into<String>, result: Option<String>) {
    emit(own_event(step.into(), result, None));
}

/// Record a step that failed with `errno` outside of [`step`].
pub fn failed(step: impl Into<String>, errno: Errno) {
    emit(own_event(step.into(), None, Some(errno)));
}

fn own_event(step: String, result: Option<String>, errno: Option<Errno>) -> Event {
    let actor = match SINK.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(Sink::Render { actor, .. }) => *actor,
        _ => "init",
    };
    Event {
        actor: actor.to_string(),
        pid: std::process::id() as i32,
        step: shorten(step),
        result,
        errno: errno.map(|e| format!("{e:?}")),
        error: errno.map(|e| e.desc().to_string()),
        t_us: monotonic_us(),
    }
}

/// An event that arrived from init: run records it like its own.
pub fn record(event: Event) {
    emit(event);
}

fn emit(event: Event) {
    let mut guard = SINK.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_mut() {
        None => {}
        Some(Sink::Forward) => {
            drop(guard);
            // If run is gone there is nobody to tell; the step's own result
            // still decides what init does next.
            let _ = sync::send_to_run(&Msg::Event(event));
        }
        Some(Sink::Render { mode, pending, .. }) => match mode {
            TraceMode::Off => {}
            TraceMode::Json => {
                if let Ok(line) = serde_json::to_string(&event) {
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            }
            TraceMode::Tree => pending.push(event),
        },
    }
}

/// Draw every event recorded so far (tree mode) and start a new batch.
///
/// run calls this when init is about to exec, and once more at the end.
pub fn flush() {
    let mut guard = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let Some(Sink::Render {
        mode: TraceMode::Tree,
        pending,
        init_host_pid,
        ..
    }) = guard.as_mut()
    else {
        return;
    };
    let text = render_tree(pending, *init_host_pid);
    pending.clear();
    drop(guard);
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// Group consecutive events of one actor under a header, tree-style.
pub fn render_tree(events: &[Event], init_host_pid: Option<i32>) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < events.len() {
        let actor = &events[i].actor;
        let end = events[i..]
            .iter()
            .position(|e| &e.actor != actor)
            .map_or(events.len(), |n| i + n);
        let pid = events[i].pid;
        let header = match (actor.as_str(), init_host_pid) {
            ("init", Some(host)) => format!("{}  (pid {pid}, host pid {host})", "init".bold()),
            (name, _) => format!("{}  (pid {pid})", name.bold()),
        };
        out.push_str(&header);
        out.push('\n');
        for (n, event) in events[i..end].iter().enumerate() {
            let branch = if i + n + 1 == end {
                " └─ "
            } else {
                " ├─ "
            };
            out.push_str(&branch.dimmed().to_string());
            out.push_str(&render_line(event));
            out.push('\n');
        }
        i = end;
    }
    out
}

fn render_line(event: &Event) -> String {
    match (&event.result, &event.errno) {
        (_, Some(errno)) => format!(
            "{} {}",
            event.step,
            format!("✗ {errno} ({})", event.error.as_deref().unwrap_or("")).red()
        ),
        (Some(result), None) => format!("{} {}", event.step, format!("→ {result}").green()),
        (None, None) => event.step.clone(),
    }
}

/// Keep one line one line: an argv of a megabyte is still one trace line.
fn shorten(mut step: String) -> String {
    const MAX: usize = 1000;
    if step.len() > MAX {
        let mut cut = MAX;
        while !step.is_char_boundary(cut) {
            cut -= 1;
        }
        step.truncate(cut);
        step.push('…');
    }
    step
}

fn monotonic_us() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// `"sh"` for a name, `["sh", "-c", "echo hi"]` for an argv: how paths and
/// arguments appear in trace lines (lossy only for display).
pub fn quote(s: impl AsRef<std::ffi::OsStr>) -> String {
    format!("{:?}", s.as_ref().to_string_lossy())
}

pub fn quote_list<S: AsRef<std::ffi::OsStr>>(items: &[S]) -> String {
    let parts: Vec<String> = items.iter().map(quote).collect();
    format!("[{}]", parts.join(", "))
}

/// `MS_NOSUID|MS_NODEV`: set flags by their kernel names, as in man pages.
pub fn flag_names<B: bitflags::Flags>(flags: &B) -> String {
    let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
    if names.is_empty() {
        "0".to_string()
    } else {
        names.join("|")
    }
}
