#!/usr/bin/env python3
"""`just student N`: a copy of the workspace where stage N's library
functions are the student's to write.

The copy (build/student-N by default) is the whole project except its
build output and git history, with each function listed in
student/stubs/NN.rs replaced by the stub written there. Every earlier
stage keeps minibox's solution (a student at stage N starts from the
solution of N-1, as rubber-docker's levels do), and so does every later
stage: their binaries still build.

A stub does not panic: it says on stderr that it stands in for the
student's code, then does the least that keeps the container running
without stage N's idea, so `minibox-check N` fails stage N's checks and
passes the earlier ones. The stubs exist only in student/ and in the
copies made from it: the normal build never compiles them.

    student.py N [--dest DIR] [--force]   make the copy (--force: make it
                                          again over an existing one, its
                                          target/ and build/ kept)
    student.py --list N                   what stage N's student writes
    student.py --check                    every stub file applies (no copy)
"""
import argparse
import os
import re
import shutil
import sys
from pathlib import Path

top = Path(__file__).resolve().parents[2]
STUBS = top / "student/stubs"
HELPER = top / "student/student.rs"
# Never copied: build output, git's data, the stubs themselves.
SKIP = {".git", "target", "build", "student"}
MARK = "STUDENT MODE"


def stages() -> list:
    return sorted(int(p.stem) for p in STUBS.glob("[0-9][0-9].rs"))


class Stub:
    def __init__(self, file: str, owner, name: str, section: str, text: str):
        self.file, self.owner, self.name, self.section, self.text = file, owner, name, section, text

    @property
    def item(self) -> str:
        if self.owner:
            return f"{self.owner}::{self.name}"
        return f"{Path(self.file).stem}::{self.name}"


def parse_stubs(n: int) -> list:
    """student/stubs/NN.rs: blocks that start with
    `// @stub FILE [TYPE::]NAME` and `// @section TITLE`; the rest of the
    block (up to the next @stub) replaces that function, signature and all."""
    path = STUBS / f"{n:02d}.rs"
    stubs = []
    current = None
    for line in path.read_text().splitlines(keepends=True):
        m = re.match(r"\s*// @stub (\S+) (\S+)\s*$", line)
        if m:
            owner, _, name = m.group(2).rpartition("::")
            current = Stub(m.group(1), owner or None, name, "", "")
            stubs.append(current)
            continue
        m = re.match(r"\s*// @section (.+?)\s*$", line)
        if m and current is not None and not current.text:
            current.section = m.group(1)
            continue
        if current is not None:
            current.text += line
    for stub in stubs:
        stub.text = stub.text.strip("\n") + "\n"
        if not stub.section:
            sys.exit(f"error: {path.name}: the stub for {stub.item} names no @section")
    if not stubs:
        sys.exit(f"error: {path.name} holds no stub")
    return stubs


def raw_string_start(text: str, i: int):
    """A match for `r"`, `r#"`, `br#"`… at i (not inside an identifier)."""
    if text[i] not in "br" or (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
        return None
    return re.match(r'b?r(#*)"', text[i:i + 260])


def code_mask(text: str) -> str:
    """`text` with every comment, string and char literal blanked out
    (same length), so braces and keywords can be found by position."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := raw_string_start(text, i)) is not None:
            close = '"' + m.group(1)
            j = text.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{7f}', '{') or a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:i + 12])
            if m:
                blank(i, i + m.end())
                i += m.end()
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def find_function(text: str, stub: Stub, where: str):
    """(start, end) of the function's definition: from the start of its
    doc comment (or of the line holding `fn NAME`) to the end of the line
    of its closing brace."""
    code = code_mask(text)
    pattern = rf"^[ \t]*(?:pub(?:\([\w:]+\))?\s+)?(?:const\s+|unsafe\s+)*fn\s+{stub.name}\b"
    if stub.owner:
        # Every `impl Owner` and `impl Trait for Owner` block.
        blocks = [
            (m.end(), matching_brace(code, m.end() - 1))
            for m in re.finditer(rf"^impl(?:<[^>]*>)?\s+(?:[\w:<>, ]+\s+for\s+)?{stub.owner}\b[^{{;]*\{{", code, re.M)
        ]
        if not blocks:
            sys.exit(f"error: {where}: no `impl {stub.owner}` block")
    else:
        blocks = [(0, len(code))]
    found = [(lo, m) for lo, hi in blocks for m in re.finditer(pattern, code[lo:hi], re.M)]
    if len(found) != 1:
        sys.exit(f"error: {where}: {len(found)} definitions of fn {stub.item} (want exactly one)")
    lo, found = found[0][0], [found[0][1]]
    start = lo + found[0].start()
    # The doc comment and attributes above it go too: the stub brings its own.
    while start > 0:
        above = text.rfind("\n", 0, start - 1) + 1
        if not re.match(r"[ \t]*(///|#\[)", text[above:start]):
            break
        start = above
    # The body's opening brace: the first `{` after the signature.
    open_brace = code.index("{", start + found[0].end() - found[0].start())
    end = matching_brace(code, open_brace) + 1
    if end < len(text) and text[end] == "\n":
        end += 1
    return start, end


def matching_brace(code: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(code)):
        if code[i] == "{":
            depth += 1
        elif code[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    sys.exit("error: unbalanced braces")


def chapter(n: int) -> Path:
    found = sorted((top / "docs/src").glob(f"stage-{n:02d}-*.md"))
    if not found:
        sys.exit(f"error: no chapter for stage {n:02d} in docs/src")
    return found[0]


def apply(n: int, root: Path, write: bool) -> list:
    """Replace stage n's functions in the tree at `root`; return the stubs."""
    stubs = parse_stubs(n)
    headings = {h.strip() for h in re.findall(r"^#+ (.+)$", chapter(n).read_text(), re.M)}
    by_file = {}
    for stub in stubs:
        if stub.section not in headings:
            sys.exit(f"error: stub {stub.item}: chapter {chapter(n).name} has no section {stub.section!r}")
        by_file.setdefault(stub.file, []).append(stub)
    for file, group in by_file.items():
        path = root / file
        text = path.read_text()
        spans = []
        for stub in group:
            start, end = find_function(text, stub, f"{file}")
            spans.append((start, end, stub))
        for start, end, stub in sorted(spans, key=lambda s: s[0], reverse=True):
            indent = re.match(r"[ \t]*", text[start:]).group(0)
            banner = (
                f"{indent}// ---- {MARK}, stage {n:02d}: yours to write. A stub stands in for minibox's\n"
                f"{indent}// solution; chapter {n:02d} ({chapter(n).name}), section \"{stub.section}\", says how.\n"
            )
            text = text[:start] + banner + stub.text + text[end:]
        if write:
            path.write_text(text)
    return stubs


def copy_tree(dest: Path):
    def ignore(directory, names):
        if Path(directory).resolve() == top:
            return [n for n in names if n in SKIP]
        return [n for n in names if n == "target" or n.endswith((".snap.new", ".pending-snap"))]

    # Fresh modification times (shutil.copy, not copy2): a copy made again
    # at the same place must never look older than a build of the last one,
    # or cargo would keep the last one's stubs.
    shutil.copytree(top, dest, ignore=ignore, symlinks=True, copy_function=shutil.copy)


def sync_tree(src: Path, dest: Path):
    """Make `dest` hold exactly `src`'s files, leaving its build output
    (`target/`, `build/`) alone. A file is rewritten only when its bytes
    differ, so it gets a fresh modification time exactly when it changed:
    cargo rebuilds what the new stubs touch and nothing else."""
    for dirpath, _, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        there = dest / rel
        if there.exists() and not there.is_dir():
            there.unlink()
        there.mkdir(exist_ok=True)
        for name in filenames:
            new, old = Path(dirpath) / name, there / name
            if old.is_file() and old.read_bytes() == new.read_bytes():
                continue
            if old.is_dir():
                shutil.rmtree(old)
            shutil.copy(new, old)
    for dirpath, dirnames, filenames in os.walk(dest, topdown=True):
        rel = Path(dirpath).relative_to(dest)
        if rel == Path("."):
            dirnames[:] = [d for d in dirnames if d not in ("target", "build")]
        for name in list(dirnames):
            if not (src / rel / name).is_dir():
                shutil.rmtree(Path(dirpath) / name)
                dirnames.remove(name)
        for name in filenames:
            if not (src / rel / name).is_file():
                (Path(dirpath) / name).unlink()


def install_helper(dest: Path, n: int):
    shutil.copyfile(HELPER, dest / "shared/src/student.rs")
    lib = dest / "shared/src/lib.rs"
    text = lib.read_text()
    # After the crate's doc comment: inner attributes come before any item.
    lines = text.splitlines(keepends=True)
    at = 0
    while at < len(lines) and (lines[at].startswith("//!") or not lines[at].strip()):
        at += 1
    allow = (
        f"// {MARK} (stage {n:02d}): the solution's helpers and imports stay, for you\n"
        "// to use or ignore; unused, they would only bury your own warnings.\n"
        "#![allow(dead_code, unused_imports)]\n\n"
    )
    lines.insert(at, allow)
    lines.append(f"\n// {MARK}: what the stubs call to say they stand in for your code.\npub mod student;\n")
    lib.write_text("".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", nargs="?", type=int)
    parser.add_argument("--dest", type=Path)
    parser.add_argument("--force", action="store_true", help="make an existing copy's sources again (the work in them is lost; target/ and build/ stay)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    covered = stages()
    if args.check:
        for n in covered:
            stubs = apply(n, top, write=False)
            print(f"stage {n:02d}: {', '.join(s.item for s in stubs)}")
        return
    if args.stage not in covered:
        sys.exit(f"error: student mode covers stages {' '.join(f'{n:02d}' for n in covered)}, not {args.stage}")
    n = args.stage
    if args.list:
        for s in parse_stubs(n):
            print(f"{s.file:28} {s.item:40} chapter {n:02d}, \"{s.section}\"")
        return
    dest = (args.dest or top / f"build/student-{n}").resolve()
    # Never copy the tree into a part of itself that gets copied, and never
    # let --force "sync" anything but a student copy (it deletes what the
    # source lacks).
    inside = dest == top or top.is_relative_to(dest) or (
        dest.is_relative_to(top) and not any(dest.is_relative_to(top / d) for d in ("build", "target"))
    )
    if inside:
        sys.exit(f"error: {dest}: a copy goes outside the project, or under its build/ or target/")
    if dest.exists() and not (dest / "shared/src/student.rs").is_file():
        sys.exit(f"error: {dest} exists and is not a student copy: not touching it")
    if dest.exists() and not args.force:
        sys.exit(f"error: {dest} exists, perhaps with your work in it: build it with `cd {dest} && cargo build --workspace`, or make it again with --force")
    tmp = dest.with_name(dest.name + f".tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        copy_tree(tmp)
        stubs = apply(n, tmp, write=True)
        install_helper(tmp, n)
        if dest.exists():
            # --force: the sources start again; the build output stays.
            sync_tree(tmp, dest)
        else:
            tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"student mode, stage {n:02d}: {dest}")
    print("write these (each marked STUDENT MODE):")
    for s in stubs:
        print(f"  {s.file:28} {s.item:40} chapter {n:02d}, \"{s.section}\"")


if __name__ == "__main__":
    main()
