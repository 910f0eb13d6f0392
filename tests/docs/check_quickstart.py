#!/usr/bin/env python3
"""The quick start, in both languages, is what runs.

Usage: check_quickstart.py SOURCE_DIR BUILD_DIR     (ctest docs.quickstart)
       check_quickstart.py --full SOURCE_DIR        (by hand: the whole block, as written, in SOURCE_DIR)

1. The first code block of README.md, README.zh-CN.md and docs/zh/quickstart.md holds the same
   commands (comments aside): `bash scripts/demo.sh` and `bash scripts/test.sh`. CI runs the
   latter (.ci/run); the former is scripts/demo.sh.
2. The step-by-step block of docs/zh/quickstart.md (the code block after the line
   "<!-- quickstart-test ...") is the command sequence of scripts/demo.sh, line for line.
3. Its llmtrain and llmgen lines run, as written, in a fresh directory with the built programs
   (./build/ is BUILD_DIR; set-up and build lines are what built BUILD_DIR). To keep CI short the
   training line gets `--set train.steps=3 --set train.eval_batches=2`
   appended (scripts/demo.sh trains the full 400 steps); the checkpoint must exist and llmgen
   must print text.
With --full, every line of the step-by-step block runs unchanged in SOURCE_DIR (set-up, configure,
build, the 400 training steps into SOURCE_DIR/runs/tiny, generation): the quick start followed
exactly as a reader would, minutes long, so not part of ctest.
"""
import os
import pathlib
import re
import subprocess
import sys
import tempfile

MARKER = "<!-- quickstart-test"
SHORT_RUN = " --set train.steps=3 --set train.eval_batches=2"


def code_blocks(text):
    """(index of the line before the fence, [lines]) for every fenced block."""
    blocks, fence, start, lines = [], None, 0, []
    all_lines = text.splitlines()
    for i, line in enumerate(all_lines):
        m = re.match(r"^\s*(```+|~~~+)", line)
        if m and fence is None:
            fence, start, lines = m.group(1)[:3], i, []
        elif m and m.group(1)[:3] == fence:
            blocks.append((all_lines[start - 1] if start else "", lines))
            fence = None
        elif fence is not None:
            lines.append(line)
    return blocks


def commands(lines):
    out = []
    for line in lines:
        line = re.split(r"\s#\s", " " + line, maxsplit=1)[0].strip()
        line = re.sub(r"\s*>\s*/dev/null$", "", line)
        line = re.sub(r"\$\{\d+:-([^}]*)\}", r"\1", line)  # "${1:-床前明月光，}": the default
        if line:
            out.append(" ".join(line.split()))
    return out


def run_full(source):
    quick = (source / "docs/zh/quickstart.md").read_text(encoding="utf-8")
    marked = [lines for before, lines in code_blocks(quick) if before.startswith(MARKER)]
    if len(marked) != 1:
        print(f"docs/zh/quickstart.md: expected one code block after a {MARKER} line, found {len(marked)}")
        return 1
    out = ""
    for line in commands(marked[0]):
        print(f"$ {line}", flush=True)
        p = subprocess.run(["bash", "-c", line], cwd=source, stdout=subprocess.PIPE, text=True)
        print(p.stdout, end="", flush=True)
        if p.returncode != 0:
            print(f"exit status {p.returncode}")
            return 1
        out = p.stdout
    ok = (source / "runs/tiny/latest").exists() and out.strip()
    print("quick start, followed as written: " + ("ok" if ok else "no checkpoint or no generated text"))
    return 0 if ok else 1


def main(argv):
    if argv[:1] == ["--full"] and len(argv) == 2:
        return run_full(pathlib.Path(argv[1]).resolve())
    if len(argv) != 2:
        print(__doc__)
        return 2
    source, build = pathlib.Path(argv[0]).resolve(), pathlib.Path(argv[1]).resolve()
    bad = 0
    docs = ["README.md", "README.zh-CN.md", "docs/zh/quickstart.md"]
    first = {d: commands(code_blocks((source / d).read_text(encoding="utf-8"))[0][1]) for d in docs}
    for d in docs[1:]:
        if first[d] != first[docs[0]]:
            print(f"{d}: the first code block {first[d]} differs from README.md's {first[docs[0]]}")
            bad += 1
    print(f"first code blocks: {first[docs[0]]}")

    quick = (source / "docs/zh/quickstart.md").read_text(encoding="utf-8")
    marked = [lines for before, lines in code_blocks(quick) if before.startswith(MARKER)]
    if len(marked) != 1:
        print(f"docs/zh/quickstart.md: expected one code block after a {MARKER} line, found {len(marked)}")
        return 1
    steps = commands(marked[0])
    demo = [c for c in commands((source / "scripts/demo.sh").read_text(encoding="utf-8").splitlines())
            if not c.startswith(("#", "set ", "cd ", "echo"))]
    if steps != demo:
        print("docs/zh/quickstart.md: the step-by-step block is not scripts/demo.sh's commands:\n  doc:  " +
              "\n        ".join(steps) + "\n  demo: " + "\n        ".join(demo))
        bad += 1

    runnable = [c for c in steps if re.match(r"^\./build/(llmtrain|llmgen)\b", c)]
    if not any(c.startswith("./build/llmtrain") for c in runnable) or not any("llmgen" in c for c in runnable):
        print(f"docs/zh/quickstart.md: the block has no llmtrain and llmgen lines to run: {steps}")
        return 1
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"), OMP_WAIT_POLICY="PASSIVE")
    with tempfile.TemporaryDirectory() as tmp:
        for c in runnable:
            line = str(build) + "/" + c[len("./build/"):]
            if c.startswith("./build/llmtrain"):
                line += SHORT_RUN
            print(f"$ {line}", flush=True)
            p = subprocess.run(["bash", "-c", line], cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
            print(p.stderr[-1500:], end="")
            print(p.stdout[-1500:])
            if p.returncode != 0:
                print(f"exit status {p.returncode}")
                return 1
            if "llmgen" in c and not p.stdout.strip():
                print("llmgen printed nothing")
                return 1
        if not (pathlib.Path(tmp) / "runs/tiny/latest").exists():
            print("runs/tiny/latest was not written")
            return 1
    print("quick start: " + ("ok" if not bad else f"{bad} mismatch(es)"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
