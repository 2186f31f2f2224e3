//! The commands the book tells readers to type, run as they are printed.
//!
//! A fenced block opened with ```` ```sh,runnable ```` (mdBook renders it
//! as an ordinary `sh` block) is run here, command by command, from the
//! top of the checkout, the way a reader would type it into a root shell:
//! `just stage N …`, `just check N …`, `just diff …`, and whatever else the
//! block holds. Each command must exit 0, or the code its line states in a
//! trailing comment `# exit N` (`just stage 3 no-such-command  # exit 127`).
//! Blocks of one page run in order in one shell, so a block may use what an
//! earlier one made (a container, a variable, a script in `$d`).
//!
//! Each page runs in namespaces this test makes: a mount namespace with a
//! private tmpfs at /var/lib/minibox (so `run -d --name web` and the
//! default paths the book prints work, and two pages never see each
//! other's containers) and a network namespace with only `lo` (so stage
//! 08's bridge, addresses and nftables rules are made there and vanish
//! with it). Containers' cgroups go under a parent of this test's own
//! (`MINIBOX_CGROUP_PARENT`). A page must clean up after itself: a
//! container still listed by `ps -a`, or a cgroup left under that parent,
//! when its commands are done is a failure.
//!
//! Needs root (containers), and `just` and `cargo` on PATH: the commands
//! are the justfile's recipes. Blocks not marked runnable are left alone:
//! commands for a second terminal, for the students' VM only, or that
//! never end on their own.

use minibox_tests::{have_root, test_env};
use regex::Regex;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The info string that marks a block as run by this test.
const RUNNABLE: &str = "sh,runnable";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// One command of a runnable block: where it is, its text (several lines
/// for a quoted script or a here-document), and the exit code it must end
/// with.
#[derive(Debug, PartialEq)]
struct BookCommand {
    line: usize,
    text: String,
    expect: i32,
}

/// The runnable blocks of a page, as commands, in page order.
fn commands_of(page: &str) -> Vec<BookCommand> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending: Vec<(usize, &str)> = Vec::new();
    for (index, line) in page.lines().enumerate() {
        let fence = line.trim_start();
        if !in_block {
            in_block = fence == format!("```{RUNNABLE}");
            continue;
        }
        if fence.starts_with("```") {
            assert!(
                pending.is_empty(),
                "line {}: the block ends inside a command: {pending:?}",
                index + 1
            );
            in_block = false;
            continue;
        }
        if pending.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        pending.push((index + 1, line));
        let text: Vec<&str> = pending.iter().map(|(_, l)| *l).collect();
        let text = text.join("\n");
        if is_complete(&text) {
            commands.push(BookCommand {
                line: pending[0].0,
                expect: expected_exit(pending.last().map_or("", |(_, l)| l)),
                text,
            });
            pending.clear();
        }
    }
    assert!(!in_block, "a runnable block is never closed");
    commands
}

/// Whether `text` is a whole shell command: no open quote, loop or
/// here-document, no trailing backslash. `bash -n` parses without running;
/// it accepts an unterminated here-document with only a warning, so those
/// are matched here.
fn is_complete(text: &str) -> bool {
    if text.ends_with('\\') {
        return false;
    }
    let heredoc = Regex::new(r#"<<-?\s*['"]?([A-Za-z_][A-Za-z0-9_]*)['"]?"#).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for (index, line) in lines.iter().enumerate() {
        for cap in heredoc.captures_iter(line) {
            let closed = lines[index + 1..].iter().any(|l| l.trim() == &cap[1]);
            if !closed {
                return false;
            }
        }
    }
    let mut bash = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bash is needed to read the book's commands");
    bash.stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .expect("write to bash -n");
    bash.wait().expect("bash -n").success()
}

/// `# exit N` at the end of a command's last line; otherwise 0.
fn expected_exit(last_line: &str) -> i32 {
    let comment = Regex::new(r"\s#\s*exit\s+([0-9]+)\b").unwrap();
    comment
        .captures(last_line)
        .map_or(0, |cap| cap[1].parse().expect("an exit code is a number"))
}

/// The shell script that runs a page's commands and reports each one that
/// ends with another code than it should, with the end of its output.
fn script_for(page: &str, commands: &[BookCommand]) -> String {
    let mut script = String::from(
        "set +e\n\
         exec </dev/null\n\
         # The book writes sudo for readers who are not root; this test is.\n\
         sudo() { \"$@\"; }\n\
         ip link set lo up\n\
         __top=$PWD\n\
         __log=$(mktemp -d)\n\
         __failed=0\n",
    );
    for (n, command) in commands.iter().enumerate() {
        let first = command.text.lines().next().unwrap_or_default();
        script.push_str(&format!(
            "{{\n{text}\n}} >\"$__log/{n}\" 2>&1\n\
             __rc=$?\n\
             if [ \"$__rc\" != {expect} ]; then\n\
             \x20   printf '%s:%s: exit %s, the book says %s: %s\\n' {page} {line} \"$__rc\" {expect} {first}\n\
             \x20   tail -n 25 \"$__log/{n}\" | sed 's/^/    | /'\n\
             \x20   __failed=1\n\
             fi\n",
            text = command.text,
            expect = command.expect,
            page = shell_quote(page),
            line = command.line,
            first = shell_quote(first),
        ));
    }
    // Whatever the page started, it must also have removed.
    script.push_str(
        "cd \"$__top\"\n\
         for __bin in target/debug/07-full target/debug/08-network target/debug/09-hardening target/debug/10-rootless; do\n\
         \x20   [ -x \"$__bin\" ] || continue\n\
         \x20   __left=$(\"$__bin\" ps -aq 2>/dev/null)\n\
         \x20   if [ -n \"$__left\" ]; then\n\
         \x20       echo \"containers left behind: $__left\"\n\
         \x20       MINIBOX_TRACE=off \"$__bin\" rm -f $__left >/dev/null 2>&1\n\
         \x20       __failed=1\n\
         \x20   fi\n\
         done\n\
         rm -rf \"$__log\"\n\
         exit $__failed\n",
    );
    script
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Container cgroups (not the parent itself) left under `parent` in any
/// hierarchy; removes the parent directories that are empty.
fn cgroups_left_under(parent: &str) -> Vec<PathBuf> {
    let mut trees = vec![PathBuf::from("/sys/fs/cgroup")];
    for entry in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        trees.push(entry.path());
    }
    let mut left = Vec::new();
    for tree in trees {
        let dir = tree.join(parent);
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                left.push(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&dir);
    }
    left
}

/// Run a page's script in a new mount namespace (a private tmpfs on
/// /var/lib/minibox) and network namespace.
fn run_page(name: &str, script: &str, cgroup_parent: &str) -> (bool, String) {
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(script)
        .current_dir(workspace())
        .env("NO_COLOR", "1")
        .env("MINIBOX_CGROUP_PARENT", cgroup_parent)
        .env_remove("MINIBOX_ROOT")
        .env_remove("MINIBOX_TRACE");
    minibox_tests::without_inherited_fds(&mut command);
    // SAFETY: runs in the forked child before exec, and only makes
    // syscalls, which allocate nothing and take no locks.
    unsafe {
        command.pre_exec(|| {
            use nix::mount::{mount, MsFlags};
            use nix::sched::{unshare, CloneFlags};
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET)?;
            // Private first: nothing below may reach the host's mounts.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )?;
            mount(
                Some("tmpfs"),
                "/var/lib/minibox",
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=0711"),
            )?;
            Ok(())
        });
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{name}: cannot start bash: {e}"));
    let mut report = String::from_utf8_lossy(&out.stdout).into_owned();
    report.push_str(&String::from_utf8_lossy(&out.stderr));
    let left = cgroups_left_under(cgroup_parent);
    if !left.is_empty() {
        report.push_str(&format!("cgroups left behind: {left:?}\n"));
    }
    (out.status.success() && left.is_empty(), report)
}

/// The book's pages that have runnable blocks, with their commands.
///
/// `MINIBOX_BOOK_PAGE=stage-05` keeps only the pages whose file name
/// contains it, while you work on one chapter.
fn runnable_pages() -> BTreeMap<String, Vec<BookCommand>> {
    let only = std::env::var("MINIBOX_BOOK_PAGE").ok();
    let mut pages = BTreeMap::new();
    for entry in std::fs::read_dir(workspace().join("docs/src")).expect("docs/src exists") {
        let path = entry.expect("a readable directory entry").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a page is text");
        let commands = commands_of(&text);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !commands.is_empty() && only.as_ref().is_none_or(|o| name.contains(o.as_str())) {
            pages.insert(name, commands);
        }
    }
    pages
}

/// `just` and `cargo`, which the commands are made of. The qemu test VMs
/// (`tests/vm/run.sh`, which leaves `/vm.env` at their root) carry only
/// the test binaries and busybox: there the commands are skipped, since
/// they ran on the host. Anywhere else under `CI=true`, a missing tool is a
/// failure, not a skip.
fn have_tools(test: &str) -> bool {
    let missing: Vec<&str> = ["just", "cargo", "bash", "unshare"]
        .into_iter()
        .filter(|tool| {
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map_or(true, |s| !s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let in_test_vm = Path::new("/vm.env").exists();
    if std::env::var("CI").is_ok_and(|v| v == "true") && !in_test_vm {
        panic!("{test}: needs {missing:?} on PATH to run the book's commands, and CI=true forbids skipping");
    }
    let why = if in_test_vm {
        "this test VM has none of them (the commands ran on the host)"
    } else {
        "just setup installs them"
    };
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: the book's commands are the justfile's recipes and need {} on PATH; {why}",
        missing.join(", ")
    );
    false
}

#[test]
fn runnable_blocks_are_split_into_commands() {
    let page = "text\n\
                ```sh,runnable\n\
                # a comment line, not a command\n\
                just stage 1 true\n\
                just stage 3 no-such-command   # exit 127\n\
                sh -c '\n\
                \x20 echo two lines'\n\
                cat > \"$d/x\" <<'EOF'\n\
                'unbalanced\n\
                EOF\n\
                ```\n\
                ```sh\n\
                just stage 9 never-run\n\
                ```\n";
    let commands = commands_of(page);
    let summary: Vec<(usize, &str, i32)> = commands
        .iter()
        .map(|c| (c.line, c.text.as_str(), c.expect))
        .collect();
    assert_eq!(
        summary,
        [
            (4, "just stage 1 true", 0),
            (5, "just stage 3 no-such-command   # exit 127", 127),
            (6, "sh -c '\n  echo two lines'", 0),
            (8, "cat > \"$d/x\" <<'EOF'\n'unbalanced\nEOF", 0),
        ]
    );
}

#[test]
fn every_runnable_command_in_the_book_works() {
    if !have_root(module_path!()) {
        let pages = runnable_pages();
        let _ = writeln!(
            std::io::stderr(),
            "  (not run: the {} commands of the book's runnable blocks, on {} pages)",
            pages.values().map(Vec::len).sum::<usize>(),
            pages.len()
        );
        return;
    }
    // Before reading the book: in the qemu test VMs, a `bash -n` per line
    // takes long under emulation, for nothing.
    if !have_tools("every_runnable_command_in_the_book_works") {
        return;
    }
    let pages = runnable_pages();
    // The stage chapters 01–08 carry runnable blocks (their "Check your
    // work" at least): finding fewer means the marker was lost.
    if std::env::var_os("MINIBOX_BOOK_PAGE").is_none() {
        assert!(
            pages.keys().filter(|p| p.starts_with("stage-")).count() >= 8,
            "runnable blocks found only in {:?}",
            pages.keys().collect::<Vec<_>>()
        );
    }
    let count: usize = pages.values().map(Vec::len).sum();
    std::fs::create_dir_all("/var/lib/minibox").expect("create /var/lib/minibox");
    let tag = test_env().cgroup_parent.clone();
    // Pages in parallel: each has its own namespaces, state and cgroup parent.
    let results: Vec<(String, bool, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = pages
            .iter()
            .map(|(name, commands)| {
                let script = script_for(name, commands);
                let parent = format!("{tag}-{}", name.trim_end_matches(".md"));
                scope.spawn(move || {
                    let (ok, report) = run_page(name, &script, &parent);
                    (name.clone(), ok, report)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a page's thread"))
            .collect()
    });
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(name, _, report)| format!("== {name}\n{report}"))
        .collect();
    assert!(
        failed.is_empty(),
        "book commands that do not do what the book says ({count} commands on {} pages):\n{}",
        pages.len(),
        failed.join("\n")
    );
}
