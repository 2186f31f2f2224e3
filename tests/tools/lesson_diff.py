#!/usr/bin/env python3
"""`just diff N M`: what stage M adds to stage N.

A stage's main.rs is the lesson, but part of the lesson lives in the
library: prints the diff of the two main.rs files, then the library items
(modules, types, functions) that stage M uses and stage N does not, each
with the file and line where the library defines it.
"""
import re
import subprocess
import sys
from pathlib import Path

top = Path(__file__).resolve().parents[2]


def stage_dir(n: str) -> Path:
    found = sorted(top.glob(f"stages/{int(n):02d}-*"))
    if not found:
        stages = " ".join(p.name for p in sorted(top.glob("stages/*")))
        sys.exit(f"error: no stage {n} (stages: {stages})")
    return found[0]


SRC = top / "shared/src"


def definitions() -> dict:
    """name -> [(file, line, kind, owner)]: every `pub` item of the library,
    with the type whose `impl` block holds a method (`owner`)."""
    found = {}
    for path in sorted(SRC.rglob("*.rs")):
        owner = None
        depth = 0
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r"\s*impl(?:<[^>]*>)?\s+(?:[\w:]+(?:<[^>]*>)?\s+for\s+)?(\w+)", line)
            if m and depth == 0:
                owner = m.group(1)
            m = re.match(r"\s*pub (fn|struct|enum|mod|const|trait|type) (\w+)", line)
            if m:
                rel = str(path.relative_to(top))
                found.setdefault(m.group(2), []).append((rel, n, m.group(1), owner if depth else None))
            depth += line.count("{") - line.count("}")
            if depth == 0:
                owner = None
    return found


def module_files(module: str) -> list:
    single = SRC / f"{module}.rs"
    return [single] if single.exists() else sorted((SRC / module).glob("*.rs"))


def library_items(main: Path, defs: dict) -> dict:
    """What main.rs uses of the library: `item -> where it is defined`."""
    text = main.read_text()
    modules = {p.stem for p in SRC.glob("*.rs")} | {p.name for p in SRC.iterdir() if p.is_dir()}
    used = {}

    def where(name, kinds=None, owner=None, files=None):
        for rel, line, kind, own in defs.get(name, []):
            if kinds and kind not in kinds:
                continue
            if owner and own != owner:
                continue
            if files and not any(rel == str(f.relative_to(top)) for f in files):
                continue
            return f"{rel}:{line}"
        return None

    imported = set()
    for group in re.findall(r"use minibox::([^;]+);", text, re.S):
        group = re.sub(r"\s+", "", group)
        head, _, rest = group.partition("::{")
        for name in filter(None, rest.rstrip("}").split(",") if rest else [group]):
            name = head if name == "self" else name.split("::")[-1]
            imported.add(name)
    body = re.sub(r"use minibox::[^;]+;", "", text)
    for first, second in re.findall(r"\b([A-Za-z_]\w*)::([A-Za-z_]\w*)", body):
        if first in modules:
            loc = where(second, files=module_files(first)) or where(second)
        elif first in imported and first[0].isupper():
            loc = where(second, owner=first) or where(first, kinds={"enum", "struct", "trait"})
        else:
            continue
        if loc:
            used[f"{first}::{second}"] = loc
    for name in re.findall(r"\.([a-z_]\w*)\(", body):
        owners = sorted({own for _, _, kind, own in defs.get(name, []) if kind == "fn" and own})
        if owners:
            used[f"{'/'.join(owners)}::{name}"] = where(name, kinds={"fn"}, owner=owners[0])
    return used


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: lesson_diff.py N M")
    old, new = stage_dir(sys.argv[1]) / "src/main.rs", stage_dir(sys.argv[2]) / "src/main.rs"
    color = "--color=always" if sys.stdout.isatty() else "--color=never"
    sys.stdout.flush()
    subprocess.run(["diff", "-u", color, str(old), str(new)], cwd=top)
    defs = definitions()
    before = library_items(old, defs)
    after = library_items(new, defs)
    added = sorted(set(after) - set(before))
    print(f"\nLibrary items {new.parent.parent.name} starts using (the rest of its lesson):")
    if not added:
        print("  (none)")
    for item in added:
        print(f"  {item:<36} {after[item]}")


if __name__ == "__main__":
    main()
