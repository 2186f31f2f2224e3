//! The verdict, three ways: a table per stage for people, JSON for tools,
//! JUnit XML for CI systems.

use crate::checks::{Graded, Status, NO_REPORT_HINT, STAGES};
use crate::runtime::Runtime;
use crate::session::Observations;
use serde_json::json;

/// The whole result of a checker run.
pub struct Verdict<'a> {
    pub stage: u8,
    pub runtime: &'a Runtime,
    pub graded: Vec<Graded>,
    pub observations: &'a Observations,
}

impl Verdict<'_> {
    pub fn count(&self, status: Status) -> usize {
        self.graded.iter().filter(|g| g.status == status).count()
    }

    /// Every check of the stages asked for passed (skips do not fail).
    pub fn passed(&self) -> bool {
        self.count(Status::Fail) == 0
    }

    /// The highest stage whose checks, and all below, have no failure.
    pub fn reached(&self) -> u8 {
        let mut reached = 0;
        for stage in 1..=self.stage {
            if self
                .graded
                .iter()
                .any(|g| g.stage == stage && g.status == Status::Fail)
            {
                break;
            }
            reached = stage;
        }
        reached
    }
}

struct Paint {
    on: bool,
}

impl Paint {
    fn status(&self, status: Status) -> String {
        let (text, code) = match status {
            Status::Pass => ("PASS", "32"),
            Status::Fail => ("FAIL", "31"),
            Status::Skip => ("SKIP", "33"),
        };
        if self.on {
            format!("\x1b[1;{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn bold(&self, text: &str) -> String {
        if self.on {
            format!("\x1b[1m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The table: one block per stage, PASS/FAIL/SKIP per check, the detail
/// and hint under each failure, the reason under each skip.
pub fn text(verdict: &Verdict<'_>, color: bool) -> String {
    let paint = Paint { on: color };
    let mut out = String::new();
    let runtime = verdict.runtime;
    let stages = match verdict.stage {
        1 => "stage 01".to_string(),
        n => format!("stages 01–{n:02}"),
    };
    out.push_str(&format!(
        "minibox-check: {stages} against {}\n",
        runtime.label
    ));
    out.push_str(&format!("template: {}\n", runtime.template.text()));
    if let Some(bin) = &runtime.minibox {
        out.push_str(&format!("{{minibox}} = {}\n", bin.display()));
    }
    for warning in &verdict.observations.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if let Some(why) = &verdict.observations.not_here {
        out.push_str(&format!(
            "{} not applicable on this host: {why}\n",
            paint.status(Status::Skip)
        ));
    }
    for run in verdict.observations.runs() {
        if verdict.observations.not_here.is_some() {
            break;
        }
        if let Some(problem) = run.problem() {
            out.push_str(&format!(
                "{} the {} run {problem}\n  command: {}\n  hint: {NO_REPORT_HINT}\n",
                paint.status(Status::Fail),
                run.scenario,
                shell_words(&run.finished.argv)
            ));
        }
    }
    let width = verdict.graded.iter().map(|g| g.id.len()).max().unwrap_or(0);
    for stage in STAGES.iter().filter(|s| s.number <= verdict.stage) {
        out.push('\n');
        out.push_str(&paint.bold(&format!("{:02} {}", stage.number, stage.title)));
        out.push_str(&format!("  (docs/src/{})\n", stage.chapter));
        for g in verdict.graded.iter().filter(|g| g.stage == stage.number) {
            out.push_str(&format!(
                "  {}  {:width$}  {}\n",
                paint.status(g.status),
                g.id,
                g.description
            ));
            match g.status {
                Status::Pass => {}
                Status::Fail => {
                    out.push_str(&format!("        seen: {}\n", g.detail));
                    if let Some(hint) = g.hint.as_ref().filter(|h| *h != NO_REPORT_HINT) {
                        out.push_str(&format!("        hint: {hint}\n"));
                    }
                }
                Status::Skip => out.push_str(&format!("        skipped: {}\n", g.detail)),
            }
        }
    }
    out.push('\n');
    let (passed, failed, skipped) = (
        verdict.count(Status::Pass),
        verdict.count(Status::Fail),
        verdict.count(Status::Skip),
    );
    let result = if verdict.observations.not_here.is_some() {
        format!("no check applies to {} on this host", runtime.label)
    } else if verdict.passed() {
        match verdict.stage {
            1 => "every check of stage 01 passes".to_string(),
            n => format!("every check of stages 01–{n:02} passes"),
        }
    } else {
        match verdict.reached() {
            0 => "stage 01 is not reached yet".to_string(),
            1 => "stage 01 passes; stage 02 is not reached yet".to_string(),
            n => format!(
                "stages 01–{n:02} pass; stage {:02} is not reached yet",
                n + 1
            ),
        }
    };
    out.push_str(&format!(
        "{}: {passed} passed, {failed} failed, {skipped} skipped — {result}\n",
        if verdict.passed() {
            paint.status(Status::Pass)
        } else {
            paint.status(Status::Fail)
        }
    ));
    out
}

/// A command line as a shell would need it typed (lossy for non-UTF-8).
pub fn shell_words(argv: &[std::ffi::OsString]) -> String {
    argv.iter()
        .map(|a| {
            let a = a.to_string_lossy();
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._-:=,+@%".contains(c))
            {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--json`: the checks, the summary, and what each run saw.
pub fn json(verdict: &Verdict<'_>) -> serde_json::Value {
    let obs = verdict.observations;
    let runs: Vec<serde_json::Value> = obs
        .runs()
        .iter()
        .map(|r| {
            json!({
                "scenario": r.scenario,
                "argv": r.finished.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
                "exit_code": r.finished.code,
                "timed_out": r.finished.timed_out,
                "stderr": String::from_utf8_lossy(&r.finished.stderr),
                "probe": r.raw,
                "leaked_mounts": r.leaked_mounts,
                "leftover_processes": r.finished.leftovers,
            })
        })
        .collect();
    let lifecycle = obs.lifecycle.as_ref().map(|l| {
        l.steps
            .iter()
            .map(|(name, f)| {
                json!({
                    "step": name,
                    "argv": f.argv.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>(),
                    "exit_code": f.code,
                    "stdout": String::from_utf8_lossy(&f.stdout),
                    "stderr": String::from_utf8_lossy(&f.stderr),
                })
            })
            .collect::<Vec<_>>()
    });
    let held = obs.hold.as_ref().map(|h| {
        json!({
            "host_pid": h.host_pid,
            "memory": h.memory.as_ref().map(|m| json!({"path": m.path, "limit": m.limit, "exists_after": m.exists_after})),
            "pids": h.pids.as_ref().map(|m| json!({"path": m.path, "limit": m.limit, "exists_after": m.exists_after})),
            "problem": h.problem,
        })
    });
    json!({
        "stage": verdict.stage,
        "runtime": {
            "label": verdict.runtime.label,
            "template": verdict.runtime.template.text(),
            "minibox": verdict.runtime.minibox,
        },
        "passed": verdict.passed(),
        "reached": verdict.reached(),
        "summary": {
            "pass": verdict.count(Status::Pass),
            "fail": verdict.count(Status::Fail),
            "skip": verdict.count(Status::Skip),
        },
        "checks": verdict.graded,
        "runs": runs,
        "cgroups_seen": held,
        "lifecycle": lifecycle,
        "warnings": obs.warnings,
        "not_applicable_here": obs.not_here,
    })
}

/// `--junit FILE`: one testsuite per stage, one testcase per check.
pub fn junit(verdict: &Verdict<'_>) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"minibox-check\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
        verdict.graded.len(),
        verdict.count(Status::Fail),
        verdict.count(Status::Skip)
    ));
    for stage in STAGES.iter().filter(|s| s.number <= verdict.stage) {
        let checks: Vec<&Graded> = verdict
            .graded
            .iter()
            .filter(|g| g.stage == stage.number)
            .collect();
        let count = |s: Status| checks.iter().filter(|g| g.status == s).count();
        out.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            xml(&format!(
                "{:02} {} ({})",
                stage.number, stage.title, verdict.runtime.label
            )),
            checks.len(),
            count(Status::Fail),
            count(Status::Skip)
        ));
        for g in checks {
            out.push_str(&format!(
                "    <testcase classname=\"minibox-check.stage{:02}\" name=\"{}\"",
                g.stage,
                xml(&format!("{} {}", g.id, g.description))
            ));
            match g.status {
                Status::Pass => out.push_str("/>\n"),
                Status::Fail => out.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml(&g.detail),
                    xml(g.hint.as_deref().unwrap_or_default())
                )),
                Status::Skip => out.push_str(&format!(
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                    xml(&g.detail)
                )),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Escape text for XML attributes and content; control characters XML 1.0
/// cannot hold become U+FFFD.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes() {
        assert_eq!(
            xml("a<b & \"c\"\u{1}"),
            "a&lt;b &amp; &quot;c&quot;\u{fffd}"
        );
    }
}
