#!/usr/bin/env python3
"""Fails if a relative link in README*.md or docs/**/*.md does not resolve.

Usage: check_links.py [SOURCE_DIR]   (default: the repository root above this file)

Checks Markdown links [text](target) and <img src=...>/<a href=...> targets, outside code
blocks and code spans. Skips http(s)://, mailto: and pure #anchors; strips #anchor and
?query before resolving the path against the linking file's directory.

Also checks every "docs/<name>.md" named in the sources, configs and scripts (comments such
as "see docs/cuda.md"), which no Markdown renderer would flag.
"""
import os
import pathlib
import re
import sys

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML = re.compile(r"""<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*["']([^"']+)["']""", re.I)
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
SOURCE_SUFFIXES = {".cpp", ".h", ".cu", ".cuh", ".py", ".sh", ".cmake", ".json", ".in", ".md"}
SKIP = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.I)  # any scheme (http:, mailto:, ...) or #anchor


def targets(text):
    in_fence = None
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*(```+|~~~+)", line)
        if fence:
            mark = fence.group(1)[0] * 3
            if in_fence is None:
                in_fence = mark
            elif mark == in_fence:
                in_fence = None
            continue
        if in_fence:
            continue
        line = re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)  # code spans
        for pattern in (LINK, HTML, REF_DEF):
            for m in pattern.finditer(line):
                yield number, m.group(1)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
    files = sorted(root.glob("README*.md")) + sorted(root.glob("docs/**/*.md"))
    if not files:
        print(f"no README*.md or docs/**/*.md under {root}")
        return 1
    bad = 0
    count = 0
    for f in files:
        for number, target in targets(f.read_text(encoding="utf-8")):
            if SKIP.match(target):
                continue
            path = re.split(r"[#?]", target, maxsplit=1)[0]
            if not path:
                continue
            count += 1
            resolved = (root / path.lstrip("/")) if path.startswith("/") else (f.parent / path)
            if not resolved.exists():
                print(f"{f.relative_to(root)}:{number}: dead link {target}")
                bad += 1
    # "docs/<name>.md" in comments, configs and scripts, resolved against the root.
    mention = re.compile(r"\bdocs/[A-Za-z0-9_./-]*?\.md\b")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "build")) and d != "node_modules"]
        for name in filenames:
            f = pathlib.Path(dirpath) / name
            if f.suffix not in SOURCE_SUFFIXES and name != "CMakeLists.txt":
                continue
            try:
                text = f.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                for m in mention.finditer(line):
                    count += 1
                    if not (root / m.group(0)).exists():
                        print(f"{f.relative_to(root)}:{number}: names {m.group(0)}, which does not exist")
                        bad += 1
    print(f"{count} relative links and docs/ mentions, {bad} dead")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
