//! The book includes the real snapshot files, so it cannot drift from the
//! code as long as every include points at a file that exists.

use minibox_tests::STAGES;
use regex::Regex;
use std::path::{Path, PathBuf};

fn book() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/src")
}

fn chapters() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(book())
        .expect("docs/src exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_include_points_at_an_existing_file() {
    let include = Regex::new(r"\{\{#include ([^:}]+)(:[0-9]*)*\}\}").unwrap();
    let mut count = 0;
    for chapter in chapters() {
        let text = std::fs::read_to_string(&chapter).unwrap();
        for cap in include.captures_iter(&text) {
            let target = chapter.parent().unwrap().join(&cap[1]);
            // `:5:` skips insta's 4-line header: should the header grow, the
            // book would silently show part of it. Line 4 must close it.
            if cap[0].contains(".snap:5:") {
                let header: Vec<String> = std::fs::read_to_string(&target)
                    .unwrap_or_default()
                    .lines()
                    .take(4)
                    .map(String::from)
                    .collect();
                assert!(
                    header.first().map(String::as_str) == Some("---")
                        && header.get(3).map(String::as_str) == Some("---"),
                    "{} has a header that is not 4 lines: {header:?}",
                    target.display()
                );
            }
            assert!(
                target.is_file(),
                "{} includes {}, which does not exist",
                chapter.display(),
                &cap[1]
            );
            count += 1;
        }
    }
    assert!(
        count >= STAGES.len(),
        "the book includes only {count} files"
    );
}

#[test]
fn every_stage_has_a_chapter_showing_its_real_trace() {
    for stage in STAGES {
        let chapter = book().join(format!("stage-{stage}.md"));
        let text = std::fs::read_to_string(&chapter)
            .unwrap_or_else(|_| panic!("no chapter {} for stage {stage}", chapter.display()));
        let prefix = &stage[..2];
        assert!(
            text.contains(&format!("snapshots__trace_{prefix}"))
                || text.contains(&format!("trace_{prefix}_")),
            "the chapter for {stage} does not include its trace snapshot"
        );
    }
}

#[test]
fn the_summary_lists_every_chapter() {
    let summary = std::fs::read_to_string(book().join("SUMMARY.md")).unwrap();
    for chapter in chapters() {
        let name = chapter.file_name().unwrap().to_string_lossy().into_owned();
        if name != "SUMMARY.md" {
            assert!(
                summary.contains(&format!("({name})")),
                "SUMMARY.md does not list {name}"
            );
        }
    }
}

/// The stage chapters that are lessons of the course so far: each ends
/// with Check your work and Exercises. A chapter joins this list when it
/// gets those sections.
const COURSE_CHAPTERS: std::ops::RangeInclusive<u32> = 1..=10;

/// The course chapters that also have Try it and What goes wrong: all of
/// them.
const TRY_IT_CHAPTERS: std::ops::RangeInclusive<u32> = 1..=10;

#[test]
fn every_lesson_ends_with_check_your_work_and_exercises() {
    for stage in STAGES {
        let n = minibox_tests::number(stage);
        if !COURSE_CHAPTERS.contains(&n) {
            continue;
        }
        let text = std::fs::read_to_string(book().join(format!("stage-{stage}.md"))).unwrap();
        let sections: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("## ")).collect();
        let try_it: &[&str] = if TRY_IT_CHAPTERS.contains(&n) {
            &["Try it", "What goes wrong without this step"]
        } else {
            &[]
        };
        for &wanted in try_it.iter().chain(&["Check your work", "Exercises"]) {
            assert!(
                sections.contains(&wanted),
                "chapter {stage} has no section \"{wanted}\" (it has {sections:?})"
            );
        }
        assert_eq!(
            &sections[sections.len() - 2..],
            ["Check your work", "Exercises"],
            "chapter {stage} must end with Check your work, then Exercises"
        );
        let check = &text[text.find("## Check your work").unwrap()..];
        assert!(
            check.contains(&format!("```sh,runnable\njust check {n}\n")),
            "chapter {stage}'s Check your work does not run `just check {n}` in a runnable block"
        );
        let exercises = &text[text.find("## Exercises").unwrap()..];
        let answers = exercises.matches("<summary>Answer</summary>").count();
        assert!(
            answers >= 3 && answers == exercises.matches("</details>").count(),
            "chapter {stage} has {answers} folded answers; three or more exercises, each with one"
        );
    }
}
