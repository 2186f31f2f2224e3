//! The trace: one line per real step of run and init, drawn as a tree.
//!
//! Steps are recorded *where the syscall happens*, with the arguments it was
//! really given and the result it really returned: [`step`] wraps a call's
//! `nix::Result`, so a failed step carries its errno and nothing is narrated
//! after the fact.
//!
//! Where the events go is a [`Sink`], chosen by the process that records
//! them: `run` draws a tree ([`tree::TreeSink`]) or prints JSON lines
//! ([`JsonSink`]); init, whose stderr belongs to the container, forwards
//! every event to run over the sync socket (`sync::ForwardSink`). This
//! module knows nothing about sockets: any type that can take an [`Event`]
//! can be a sink.
//!
//! In debug builds every traced step is also a *failpoint*:
//! `MINIBOX_FAILPOINT=N` kills the process right after its N-th step (or
//! stops it, with `N:stop`), which the fault-injection tests use to prove
//! that a SIGKILL or a Ctrl-C at any step leaves nothing `cleanup` cannot
//! remove. Release builds compile it out.

pub mod stepper;
pub mod tree;

use crate::error::{Error, Result};
use colored::Colorize;
use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

pub use tree::TreeSink;

/// How run prints the trace (`--trace`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TraceMode {
    /// A process tree on stderr, colored on a terminal.
    #[default]
    Tree,
    /// One JSON object per line on stderr.
    Json,
    /// Nothing.
    Off,
    /// The presenter's stepper: each step as it happens, and after each one
    /// run (and init) wait until `just next` says go on.
    Step,
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

/// Where recorded events go.
pub trait Sink: Send {
    /// Take one event (run's own, or one that arrived from init).
    fn event(&mut self, event: Event);
    /// Show what is buffered (the tree sink draws here).
    fn flush(&mut self) {}
    /// init's host pid is known: the tree shows it in init's header.
    fn init_started(&mut self, _host_pid: i32) {}
    /// The step just taken may be looked at: wait here if the sink says so
    /// (only the stepper does).
    fn pause(&mut self) {}
    /// No more pauses (the command runs, or the process ends): let go of
    /// whatever the sink made.
    fn finish(&mut self) {}
}

/// Prints one JSON object per event on stderr, as it happens.
pub struct JsonSink;

impl Sink for JsonSink {
    fn event(&mut self, event: Event) {
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

struct Recorder {
    actor: &'static str,
    sink: Option<Box<dyn Sink>>,
}

// run and init are single-threaded; the mutex only makes the global safe.
static RECORDER: Mutex<Recorder> = Mutex::new(Recorder {
    actor: "init",
    sink: None,
});

fn recorder() -> std::sync::MutexGuard<'static, Recorder> {
    RECORDER.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Called by run: start recording in `mode`.
pub fn start(mode: TraceMode) {
    start_as("run", mode);
}

/// Start recording the steps of the process `actor` (`run`, `exec`, `stop`,
/// …) and show them on stderr in `mode`.
pub fn start_as(actor: &'static str, mode: TraceMode) {
    if !std::io::stderr().is_terminal()
        || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    {
        colored::control::set_override(false);
    }
    let sink: Option<Box<dyn Sink>> = match mode {
        TraceMode::Tree => Some(Box::new(TreeSink::default())),
        TraceMode::Json => Some(Box::new(JsonSink)),
        TraceMode::Off => None,
        TraceMode::Step => match stepper::StepSink::new() {
            Ok(sink) => Some(Box::new(sink)),
            // Asked to stop at every step and unable to: going on without
            // stopping would race past what the presenter wants to show.
            // Nothing exists yet (every verb starts its trace first).
            Err(err) => {
                eprintln!("{}: --trace step: {err}", crate::process::program_name());
                std::process::exit(crate::error::EXIT_MINIBOX_FAILED.into());
            }
        },
    };
    set_sink(actor, sink);
}

/// Send this process's events (as `actor`) to `sink`; `None` drops them.
pub fn set_sink(actor: &'static str, sink: Option<Box<dyn Sink>>) {
    let mut recorder = recorder();
    recorder.actor = actor;
    recorder.sink = sink;
}

/// This process is now `actor` (`run -d`'s monitor after the fork); its
/// events keep going to the same sink.
pub fn set_actor(actor: &'static str) {
    recorder().actor = actor;
}

/// Remember init's pid on the host, for the `init (pid 1, host pid N)` header.
pub fn init_started(host_pid: i32) {
    if let Some(sink) = recorder().sink.as_mut() {
        sink.init_started(host_pid);
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
            emit_own(step, show(&value), None);
            Ok(value)
        }
        Err(errno) => {
            emit_own(step.clone(), None, Some(errno));
            Err(Error::Sys { step, errno })
        }
    }
}

/// Record a step that is not one syscall (a `PATH` lookup, say) and its result.
pub fn note(step: impl Into<String>, result: Option<String>) {
    emit_own(step.into(), result, None);
}

/// Record a step that failed with `errno` outside of [`step`].
pub fn failed(step: impl Into<String>, errno: Errno) {
    emit_own(step.into(), None, Some(errno));
}

/// An event that arrived from init: run records it like its own.
pub fn record(event: Event) {
    if let Some(sink) = recorder().sink.as_mut() {
        sink.event(event);
    }
}

/// An event from init that waits for run's word (`--trace step`): record
/// it, and return when the presenter says go on.
pub fn record_and_pause(event: Event) {
    if let Some(sink) = recorder().sink.as_mut() {
        sink.event(event);
        sink.pause();
    }
}

/// The container's command runs, or the process is about to end: the
/// stepper stops pausing and removes its fifo.
pub fn finish() {
    if let Some(sink) = recorder().sink.as_mut() {
        sink.finish();
    }
}

/// Locks other minibox commands wait for, held by this process now.
static LOCKS_HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// While one lives, the stepper shows steps without stopping at them: a
/// lock held through a pause would make `ps` in the presenter's second
/// terminal wait for `just next` too. Held next to such a lock
/// ([`crate::lock::StateLock`], the address ledger's).
#[derive(Debug)]
pub struct NoPause(());

impl NoPause {
    pub fn new() -> NoPause {
        LOCKS_HELD.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        NoPause(())
    }
}

impl Default for NoPause {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoPause {
    fn drop(&mut self) {
        LOCKS_HELD.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn pauses_allowed() -> bool {
    LOCKS_HELD.load(std::sync::atomic::Ordering::SeqCst) == 0
}

/// Draw every event recorded so far (tree mode) and start a new batch.
///
/// run calls this when init is about to exec, and once more at the end.
pub fn flush() {
    if let Some(sink) = recorder().sink.as_mut() {
        sink.flush();
    }
}

fn emit_own(step: String, result: Option<String>, errno: Option<Errno>) {
    let step = shorten(step);
    let mut recorder = recorder();
    let actor = recorder.actor;
    if let Some(sink) = recorder.sink.as_mut() {
        sink.event(Event {
            actor: actor.to_string(),
            pid: std::process::id() as i32,
            step: step.clone(),
            result,
            errno: errno.map(|e| format!("{e:?}")),
            error: errno.map(|e| e.desc().to_string()),
            t_us: monotonic_us(),
        });
        sink.pause();
    }
    drop(recorder);
    #[cfg(debug_assertions)]
    failpoint::count_step(&step);
}

/// This process is a child forked from run (between clone and exec): the
/// failpoints count run's own steps, not its copy's.
pub fn forked_child() {
    #[cfg(debug_assertions)]
    failpoint::turn_off();
}

/// Fault injection for the tests: compiled only into debug builds.
#[cfg(debug_assertions)]
mod failpoint {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// Steps this process has recorded so far.
    static STEPS: AtomicU64 = AtomicU64::new(0);
    /// Set in a forked child (see [`super::forked_child`]).
    static OFF: AtomicBool = AtomicBool::new(false);

    pub fn turn_off() {
        OFF.store(true, Ordering::SeqCst);
    }

    /// `MINIBOX_FAILPOINT=N` (or `N:kill`): SIGKILL ourselves right after
    /// step N, the harshest way a process can die (no handler, no
    /// unwinding). `N:stop`: SIGSTOP ourselves there instead, so a test can
    /// act while we hold whatever we hold at that step, then SIGCONT us.
    /// `MINIBOX_FAILPOINT_LOG=FILE`: append `N<TAB>t_us<TAB>step` for every
    /// step, so a test knows which points there are.
    pub fn count_step(step: &str) {
        if OFF.load(Ordering::SeqCst) {
            return;
        }
        let n = STEPS.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(log) = std::env::var_os("MINIBOX_FAILPOINT_LOG") {
            use std::io::Write;
            if let Ok(mut file) = std::fs::File::options().create(true).append(true).open(log) {
                let _ = writeln!(file, "{n}\t{}\t{step}", super::monotonic_us());
            }
        }
        let Ok(spec) = std::env::var("MINIBOX_FAILPOINT") else {
            return;
        };
        let (at, action) = spec.split_once(':').unwrap_or((spec.as_str(), "kill"));
        if at.parse::<u64>().ok() != Some(n) {
            return;
        }
        let signal = match action {
            "stop" => nix::sys::signal::Signal::SIGSTOP,
            _ => nix::sys::signal::Signal::SIGKILL,
        };
        let _ = nix::sys::signal::raise(signal);
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

/// `1 arg`, `3 args`.
pub fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A failed step in red, a result in green: how the tree shows outcomes.
fn outcome(event: &Event) -> String {
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
