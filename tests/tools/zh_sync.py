#!/usr/bin/env python3
"""Keep the Chinese book (docs/zh/src) in step with the English one (docs/src).

Every Chinese page starts with a header naming the English file it was
translated from and the SHA-256 of that file's bytes at the time:

    <!-- source: src/stage-02-proc-mount.md sha256:<64 hex digits> -->

Pages with no English original (the glossary, the tutorial map) say
`<!-- source: none -->`.

    zh_sync.py check          one line per problem, naming the page; exit 1 if any
    zh_sync.py diff PAGE...   what changed in the English page since the version
                              the translation was stamped with (found in git history)
    zh_sync.py stamp PAGE...  record the current English hash in PAGE's header,
                              after its translation has been brought up to date

`check` reports: an English page without a Chinese one; a Chinese page whose
recorded hash is not that of the current English file (stale: something in
the English page changed since); a missing or malformed header; a Chinese
page whose English original is gone; a page missing from the Chinese
SUMMARY.md; an `{{#include}}` that does not resolve, or a set of included
files (snapshots, traces) that differs from the English page's; a section
anchor of the English page (`#what-goes-wrong-without-this-step`) that the
Chinese page lacks; a code block that differs from the English page's (code,
commands and traces stay untranslated); and a link in the Chinese book to a page or anchor that
does not exist there.

`--root DIR` works on another checkout (the tests use a temporary copy).
Standard library only.
"""
import argparse
import hashlib
import re
import subprocess
import sys
from pathlib import Path

HEADER = re.compile(
    r"^<!-- source: (?:src/(?P<page>[^\s]+\.md) sha256:(?P<hash>[0-9a-f]{64})|(?P<none>none)) -->$"
)
INCLUDE = re.compile(r"\{\{#include ([^:}\s]+)((?::[0-9]*)*)\}\}")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*(?:\{#([^}\s]+)\})?\s*$")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


class Book:
    def __init__(self, root: Path):
        self.root = root
        self.en = root / "docs" / "src"
        self.zh = root / "docs" / "zh" / "src"

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def en_pages(self):
        return sorted(p.name for p in self.en.glob("*.md"))

    def zh_pages(self):
        return sorted(p.name for p in self.zh.glob("*.md"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def header_of(text: str):
    first = text.split("\n", 1)[0].rstrip("\r")
    return HEADER.match(first)


def prose_lines(text: str):
    """The lines outside fenced code blocks (a `# comment` in a shell block
    is not a heading, a `](x)` in a trace is not a link)."""
    fenced = None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m:
            if fenced is None:
                fenced = m.group(1)
            elif m.group(1) == fenced:
                fenced = None
            continue
        if fenced is None:
            yield line


def code_blocks(page: Path, text: str):
    """The fenced code blocks of a page, each as its lines without the
    indentation, with an include replaced by the file it resolves to (the
    Chinese pages sit one directory deeper)."""
    blocks, current, fenced = [], None, None
    for line in text.splitlines():
        m = FENCE.match(line)
        if m and (fenced is None or m.group(1) == fenced and line.strip() == fenced):
            if fenced is None:
                fenced, current = m.group(1), [line.strip()]
            else:
                blocks.append(current)
                fenced, current = None, None
            continue
        if fenced is not None:
            current.append(INCLUDE.sub(
                lambda i: "{{#include %s%s}}" % ((page.parent / i.group(1)).resolve(), i.group(2)),
                line.strip()))
    return blocks


def slug(heading: str) -> str:
    """mdBook's `normalize_id` of a heading's text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) -> text
    text = text.replace("`", "")
    out = []
    for ch in text:
        if ch.isalnum() or ch in "_-":
            out.append(ch.lower())
        elif ch.isspace():
            out.append("-")
    return "".join(out)


def anchors(text: str):
    """(every id the page's headings get, the English-style ids of its
    headings of level 2 and below, in order). Repeated ids get -1, -2, …
    as mdBook gives them."""
    every, sections, seen = set(), [], {}
    for line in prose_lines(text):
        m = HEADING.match(line)
        if not m:
            continue
        ident = m.group(3) or slug(m.group(2))
        if not m.group(3):
            n = seen.get(ident, 0)
            seen[ident] = n + 1
            if n:
                ident = f"{ident}-{n}"
        every.add(ident)
        if len(m.group(1)) >= 2:
            sections.append((ident, line.strip()))
    return every, sections


def includes(page: Path, text: str):
    """Each include as (the file it resolves to, its line range)."""
    found = []
    for m in INCLUDE.finditer(text):
        target = (page.parent / m.group(1)).resolve()
        found.append((target, m.group(2)))
    return found


def check(book: Book) -> list:
    problems = []

    def problem(path: Path, what: str):
        problems.append(f"{book.rel(path)}: {what}")

    en_pages, zh_pages = book.en_pages(), book.zh_pages()
    if not en_pages:
        return [f"{book.rel(book.en)}: no English pages found"]
    for name in en_pages:
        if name not in zh_pages:
            problem(book.zh / name, f"missing: docs/src/{name} has no Chinese page")

    zh_texts = {name: (book.zh / name).read_text(encoding="utf-8") for name in zh_pages}
    zh_anchors = {name: anchors(text)[0] for name, text in zh_texts.items()}

    for name in zh_pages:
        zh_path, text = book.zh / name, zh_texts[name]
        en_path = book.en / name
        header = header_of(text)
        if len(text.strip().splitlines()) <= 1:
            problem(zh_path, "empty: not translated yet (mdBook creates a listed page that "
                    "does not exist; create-missing is off in docs/zh/book.toml)")
            continue
        if header is None:
            problem(zh_path, "no source header: the first line must be "
                    f"<!-- source: src/{name} sha256:<hex> --> or <!-- source: none -->")
        elif header.group("none"):
            if en_path.exists():
                problem(zh_path, f"says source: none, but docs/src/{name} exists: "
                        f"translate it, then run zh_sync.py stamp {name}")
        elif header.group("page") != name:
            problem(zh_path, f"header names src/{header.group('page')}, expected src/{name}")
        elif not en_path.exists():
            problem(zh_path, f"its source docs/src/{name} no longer exists")
        else:
            now = sha256(en_path)
            if header.group("hash") != now:
                problem(zh_path, f"stale: docs/src/{name} changed since it was translated "
                        f"(recorded sha256 {header.group('hash')[:12]}…, now {now[:12]}…); "
                        f"see python3 tests/tools/zh_sync.py diff {name}, update the translation, "
                        f"then run: python3 tests/tools/zh_sync.py stamp {name}")

        # The same snapshot files as the English page, resolved from one level deeper.
        zh_inc = includes(zh_path, text)
        for target, _ in zh_inc:
            if not target.is_file():
                problem(zh_path, f"includes {book.rel(target)}, which does not exist")
        if en_path.exists():
            en_text = en_path.read_text(encoding="utf-8")
            en_inc = includes(en_path, en_text)
            if zh_inc != en_inc:
                missing = [f"{book.rel(t)}{r}" for t, r in en_inc if (t, r) not in zh_inc]
                extra = [f"{book.rel(t)}{r}" for t, r in zh_inc if (t, r) not in en_inc]
                detail = "; ".join(
                    part for part in (
                        "lacks " + ", ".join(missing) if missing else "",
                        "adds " + ", ".join(extra) if extra else "",
                    ) if part
                ) or "the same files in another order"
                problem(zh_path, f"includes differ from docs/src/{name}: {detail}")
            # Commands, code and traces stay exactly as in English.
            en_code, zh_code = code_blocks(en_path, en_text), code_blocks(zh_path, text)
            if len(en_code) != len(zh_code):
                problem(zh_path, f"has {len(zh_code)} code blocks, docs/src/{name} has {len(en_code)}")
            else:
                for n, (en_block, zh_block) in enumerate(zip(en_code, zh_code), 1):
                    if en_block != zh_block:
                        problem(zh_path, f"code block {n} ({en_block[0]}…) differs from "
                                f"docs/src/{name}'s: code blocks stay untranslated")
            # Section anchors stay the English ones, so links work in both books.
            for ident, line in anchors(en_text)[1]:
                if ident not in zh_anchors[name]:
                    problem(zh_path, f"no heading with id #{ident} (docs/src/{name} has "
                            f"\"{line}\"): add {{#{ident}}} to the matching heading")

        # Links inside the Chinese book.
        for line in prose_lines(text):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target) or target.startswith("/"):
                    continue
                file, _, anchor = target.partition("#")
                if file and not file.endswith(".md"):
                    continue
                dest = name if not file else file
                if dest not in zh_anchors:
                    problem(zh_path, f"links to {target}, but docs/zh/src/{dest} does not exist")
                elif anchor and anchor not in zh_anchors[dest]:
                    problem(zh_path, f"links to {target}, but docs/zh/src/{dest} has no #{anchor}")

    summary = book.zh / "SUMMARY.md"
    if "SUMMARY.md" in zh_texts:
        listed = set(LINK.findall(zh_texts["SUMMARY.md"]))
        for name in zh_pages:
            if name != "SUMMARY.md" and name not in listed:
                problem(summary, f"does not list {name}")
        en_summary = book.en / "SUMMARY.md"
        if en_summary.exists():
            for name in LINK.findall(en_summary.read_text(encoding="utf-8")):
                if name not in listed and name not in zh_pages:
                    problem(summary, f"does not list {name}, which docs/src/SUMMARY.md lists")
    return problems


def zh_name(book: Book, page: str) -> str:
    name = Path(page).name
    return name if name.endswith(".md") else name + ".md"


def stamp(book: Book, pages) -> int:
    status = 0
    for page in pages:
        name = zh_name(book, page)
        zh_path, en_path = book.zh / name, book.en / name
        if not zh_path.is_file():
            print(f"{book.rel(zh_path)}: no such Chinese page", file=sys.stderr)
            status = 1
            continue
        if not en_path.is_file():
            print(f"{book.rel(zh_path)}: no English original docs/src/{name} to stamp it with",
                  file=sys.stderr)
            status = 1
            continue
        text = zh_path.read_text(encoding="utf-8")
        line = f"<!-- source: src/{name} sha256:{sha256(en_path)} -->"
        if text.startswith("<!-- source:"):
            rest = text.split("\n", 1)[1] if "\n" in text else ""
        else:
            rest = text
        zh_path.write_text(line + "\n" + rest, encoding="utf-8")
        print(f"stamped {book.rel(zh_path)} with docs/src/{name} sha256:{sha256(en_path)[:12]}…")
    return status


def diff(book: Book, pages) -> int:
    """Show how each English page differs from the version its translation
    was stamped with: the newest commit whose copy has the recorded hash."""
    status = 0
    for page in pages:
        name = zh_name(book, page)
        zh_path, en_rel = book.zh / name, f"docs/src/{name}"
        header = header_of(zh_path.read_text(encoding="utf-8")) if zh_path.is_file() else None
        if header is None or not header.group("hash"):
            print(f"{book.rel(zh_path)}: no recorded English hash", file=sys.stderr)
            status = 1
            continue
        git = ["git", "-C", str(book.root)]
        log = subprocess.run(git + ["log", "--format=%H", "--", en_rel],
                             capture_output=True, text=True)
        found = None
        for commit in log.stdout.split():
            blob = subprocess.run(git + ["show", f"{commit}:{en_rel}"], capture_output=True)
            if blob.returncode == 0 and hashlib.sha256(blob.stdout).hexdigest() == header.group("hash"):
                found = commit
                break
        if found is None:
            print(f"{book.rel(zh_path)}: no commit of {en_rel} has sha256 "
                  f"{header.group('hash')[:12]}… (uncommitted, or history not available)",
                  file=sys.stderr)
            status = 1
            continue
        print(f"# {en_rel}: translated from {found[:12]}, changes since:", flush=True)
        subprocess.run(git + ["--no-pager", "diff", "--word-diff", found, "--", en_rel])
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="the checkout to work on (default: this one)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="report missing, stale and broken Chinese pages")
    stamp_cmd = sub.add_parser("stamp", help="record the current English hash in pages' headers")
    stamp_cmd.add_argument("pages", nargs="+", metavar="PAGE",
                           help="stage-02-proc-mount.md, or a path ending in it")
    diff_cmd = sub.add_parser("diff", help="the English changes a stale page has not caught up with")
    diff_cmd.add_argument("pages", nargs="+", metavar="PAGE")
    args = parser.parse_args()
    book = Book(args.root.resolve())
    if args.command == "stamp":
        return stamp(book, args.pages)
    if args.command == "diff":
        return diff(book, args.pages)
    problems = check(book)
    for line in problems:
        print(line)
    if problems:
        print(f"zh_sync: {len(problems)} problem(s) in the Chinese book", file=sys.stderr)
        return 1
    print(f"zh_sync: {len(book.zh_pages())} Chinese pages in step with docs/src", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
