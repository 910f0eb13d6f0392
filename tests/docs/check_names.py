#!/usr/bin/env python3
"""Fails if README*.md or docs/**/*.md (every language) names a command-line flag or a config key
that the programs do not have.

Usage: check_names.py SOURCE_DIR BUILD_DIR            check the docs
       check_names.py --self-test SOURCE_DIR BUILD_DIR  check that made-up names are caught

The truth comes from the built programs, not from their sources:
- flags: `llmtrain --help`, `llmgen --help`, `llmbench --help` and the help of every subcommand
  they list (CLI11's "Options:" and "Subcommands:" blocks);
- config keys: the config reader's own error for an unknown key, which lists the valid keys of
  its section (`llmtrain --dry-run --set train.zz_probe=1` -> "valid keys in train: ..."). Each
  section a doc names is probed once, nested ones too (tokenizer.train, data.inputs[]).

What counts as a name in a doc (outside code, words like "model.safetensors" are file names):
- in code blocks and `code spans`: the flags after llmtrain / llmgen / llmbench (and a
  subcommand), a span that starts with --flag, and dotted keys of a config section; in prose
  (and spans broken over lines) any --flag, which must be some program's
  (`train.seq_len`, `--set optim.lr=1e-3`, `data.inputs[1].format`);
- ```json blocks that parse and whose top-level keys are config sections: every key path;
- Markdown tables under a heading that is a section's name in backticks (## `train`): the keys
  in backticks in the first column, relative to that section (or one of its subsections).
"""
import json
import pathlib
import re
import subprocess
import sys

TOOLS = ("llmtrain", "llmgen", "llmbench")
# Flags of other programs that the docs show in their own code spans (mpirun, cmake, ctest, npm,
# huggingface-cli, modelscope, test binaries). A name here is never one of ours.
FOREIGN_FLAGS = {
    "--bind-to", "--map-by", "--oversubscribe", "--allow-run-as-root", "--hostfile", "--mca",
    "--output-filename", "--mpi", "--gtest_filter", "--output-on-failure", "--test-dir", "--target",
    "--local-dir", "--local_dir", "--include", "--ignore-scripts", "--deepspeed",
    "--nfc", "--utf8-lossy", "--bench",  # tests/tokenizer/js/encode.js, the JavaScript reference
}
# Dotted names that start like a config section but belong to another file format: GGUF metadata
# (docs/deployment.md), tokenizer.json paths (docs/tokenizers.md) and HF tensor names
# (model.embed_tokens.weight, model.layers.0.mlp.up_proj.weight, model.norm.weight), and the
# ctest name train.sm75 (docs/cuda-emulation.md).
NOT_CONFIG = ("tokenizer.ggml", "train.sm75", "tokenizer.chat_template", "model.merges", "model.vocab", "model.embed_tokens",
              "model.layers.", "model.norm")
TENSOR_NAME = re.compile(r"\.(?:weight|bias)$")
# Flags documented ahead of the branch that adds them (issue 16's planner): allowed only while
# the binaries lack them; remove an entry once it is merged (a note says so).
PENDING_FLAGS: dict[str, set[str]] = {}
PROBE = "zz_probe"
FILE_NAMES = re.compile(r"\.(?:json|jsonl|md|txt|py|sh|cpp|h|cu|tok|svg|safetensors|model|gguf|log)\b")
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
KEY = re.compile(r"(?<![\w./-])([a-z_][a-z0-9_]*(?:\[\d*\])?(?:\.[a-z_][a-z0-9_]*(?:\[\d*\])?)+)(?![\w(/-])")


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    return p.stdout + p.stderr


class Truth:
    """Flags from --help, config keys from the config reader's unknown-key errors."""

    def __init__(self, source, build):
        self.source, self.build = source, build
        self.flags = {}  # (tool, subcommand or "") -> set of flags
        self.subcommands = {}  # tool -> list
        for tool in TOOLS:
            exe = build / tool
            if not exe.exists():
                raise SystemExit(f"{exe}: not built (build the targets {', '.join(TOOLS)} first)")
            text = run([str(exe), "--help"], build)
            self.flags[(tool, "")], self.subcommands[tool] = self.parse_help(text)
            for sub in self.subcommands[tool]:
                self.flags[(tool, sub)], _ = self.parse_help(run([str(exe), sub, "--help"], build))
        self.all_flags = set().union(*self.flags.values())
        self.sections = {}  # "train", "tokenizer.train", "data.inputs[]" -> set of keys (or None)
        self.tiny = json.loads((source / "configs/tiny.json").read_text(encoding="utf-8"))
        self.sections[""] = self.probe("")

    @staticmethod
    def parse_help(text):
        flags, subs, block = set(), [], None
        for line in text.splitlines():
            if re.match(r"^\S.*:$", line):
                block = line.strip().lower()
                continue
            if block == "options:":
                flags.update(FLAG.findall(re.split(r"\s{2,}", line.strip())[0]))
            elif block == "subcommands:":
                m = re.match(r"^\s+([a-z][\w-]*)\s", line)
                if m:
                    subs.append(m.group(1))
        return flags, subs

    def probe(self, section):
        """The valid keys of a section ("" = top level), or None when it is not a section."""
        if section.endswith("[]"):
            # A list of objects: probe its first element as the tiny config has it.
            parent = section[:-2]
            node = self.tiny
            for part in parent.split("."):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            first = dict(node[0]) if isinstance(node, list) and node and isinstance(node[0], dict) else {}
            first[PROBE] = 1
            override = f"{parent}={json.dumps([first])}"
        else:
            override = f"{section + '.' if section else ''}{PROBE}=1"
        text = run([str(self.build / "llmtrain"), "--dry-run", "--set", override], self.build)
        m = re.search(r"\b" + PROBE + r": unknown key; valid keys(?: in \S+)?: ([^\n]*)", text)
        return set(k.strip() for k in m.group(1).split(",")) if m else None

    def keys(self, section):
        if section not in self.sections:
            parent, _, last = section.rpartition(".")
            base = last[:-2] if last.endswith("[]") else last
            parent_keys = self.keys(parent)
            self.sections[section] = self.probe(section) if parent_keys and base in parent_keys else None
        return self.sections[section]

    def key_exists(self, dotted):
        parts = re.sub(r"\[\d*\]", "[]", dotted).split(".")
        section, key = ".".join(parts[:-1]), parts[-1].removesuffix("[]")
        known = self.keys(section)
        return known is not None and key in known

    def is_section_name(self, word):
        return word in (self.sections[""] or set()) and self.keys(word) is not None


def strip_quotes(s):
    return re.sub(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"", " ", s)


def check_command(truth, text, where, errors):
    """Flags after a tool's name in one command line (or a code span)."""
    text = strip_quotes(text)
    text = re.split(r"(?:^|\s)#", text, maxsplit=1)[0]
    tokens = text.split()
    for i, tok in enumerate(tokens):
        tool = tok.rsplit("/", 1)[-1]
        if tool not in TOOLS:
            continue
        rest = []
        for t in tokens[i + 1:]:
            if t in ("|", "||", "&&", ";", ">", "<", "2>", "2>&1") or t.rsplit("/", 1)[-1] in TOOLS:
                break
            rest.append(t)
        sub = rest[0] if rest and rest[0] in truth.subcommands[tool] else ""
        allowed = truth.flags[(tool, "")] | truth.flags.get((tool, sub), set())
        for t in rest:
            for flag in FLAG.findall(t.split("=", 1)[0]):
                if flag in allowed:
                    continue
                if flag in PENDING_FLAGS.get(tool, set()):
                    continue
                errors.append(f"{where}: {tool}{' ' + sub if sub else ''} has no flag {flag}")
        return True
    return False


def check_code(truth, text, where, errors, span, section=None):
    """A code span or a code-block line: tool flags, a leading --flag, dotted config keys."""
    if not check_command(truth, text, where, errors) and span and text.startswith("--"):
        flag = FLAG.match(text)
        if flag and flag.group(0) not in truth.all_flags | FOREIGN_FLAGS:
            if not any(flag.group(0) in v for v in PENDING_FLAGS.values()):
                errors.append(f"{where}: no program of ours has the flag {flag.group(0)}")
    for m in KEY.finditer(strip_quotes(text) if not span else text):
        name = m.group(1)
        head = name.split(".", 1)[0].split("[", 1)[0]
        if not truth.is_section_name(head) or FILE_NAMES.search(name + " "):
            continue
        if text[m.end():m.end() + 1] == "." and re.match(r"\.\w", text[m.end():]):
            continue  # a longer file name such as model.safetensors.index.json
        if name.startswith(NOT_CONFIG) or TENSOR_NAME.search(name):
            continue
        if not truth.key_exists(name) and not (section and truth.key_exists(f"{section}.{name}")):
            errors.append(f"{where}: config key {name} does not exist")


def json_keys(node, prefix):
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else k
            yield path
            yield from json_keys(v, path)
    elif isinstance(node, list):
        for v in node:
            if isinstance(v, dict):
                yield from json_keys(v, prefix + "[]")


def check_json_block(truth, text, where, errors):
    try:
        obj = json.loads(text)
    except ValueError:
        return
    top = truth.sections[""] or set()
    if not isinstance(obj, dict) or not obj or not set(obj) <= top or not any(truth.keys(k) for k in obj):
        return  # not a config example (a manifest, a cursor, an HTTP body)
    for path in json_keys(obj, ""):
        if "." not in path and "[" not in path:
            continue
        if not truth.key_exists(path):
            errors.append(f"{where}: config key {path} (in a JSON example) does not exist")


def table_key_exists(truth, section, key):
    """A key in a table under a section's heading: relative to the section (`train.vocab_size` under
    `tokenizer`), or a key of one of its nested objects or lists (data.md's table of an input's keys)."""
    if truth.key_exists(f"{section}.{key}"):
        return True
    if "." in key:
        return False
    for sub in truth.keys(section) or ():
        for nested in (f"{section}.{sub}", f"{section}.{sub}[]"):
            if truth.keys(nested) and truth.key_exists(f"{nested}.{key}"):
                return True
    return False


def check_file(truth, path, rel, errors):
    fence, block, block_start, lang = None, [], 0, ""
    section = None  # the config section whose table follows a heading like ## `train`
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{rel}:{number}"
        m = re.match(r"^\s*(```+|~~~+)\s*(\S*)", line)
        if m:
            if fence is None:
                fence, block, block_start, lang = m.group(1)[:3], [], number, m.group(2).lower()
            elif m.group(1)[:3] == fence:
                if lang == "json" or (block and block[0].lstrip().startswith("{")):
                    check_json_block(truth, "\n".join(block), f"{rel}:{block_start}", errors)
                fence = None
            continue
        if fence is not None:
            block.append(line)
            continue
        heading = re.match(r"^#+\s", line)
        if heading:
            spans = re.findall(r"`([^`]+)`", line)
            section = spans[0] if len(spans) == 1 and truth.is_section_name(spans[0]) else None
        elif section and line.startswith("|") and not re.match(r"^\|[\s:|-]+$", line):
            first = line.split("|")[1]
            for key in re.findall(r"`([^`]+)`", first):
                if re.fullmatch(r"[a-z_][a-z0-9_.]*", key) and not table_key_exists(truth, section, key):
                    errors.append(f"{where}: config key {key} is not in section {section} (table under its heading)")
        for span in re.findall(r"(`+)((?:(?!\1).)+?)\1", line):
            check_code(truth, span[1].strip(), where, errors, span=True, section=section)
        # Prose (and code spans broken over two lines): any --flag must be one of some program's.
        pending = set().union(*PENDING_FLAGS.values())
        for flag in FLAG.findall(re.sub(r"(`+)(?:(?!\1).)+?\1", "", line)):
            if flag not in truth.all_flags | FOREIGN_FLAGS | pending:
                errors.append(f"{where}: no program of ours has the flag {flag}")
    # Code-block lines are checked as commands, with backslash continuations joined.
    fence, joined = None, ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = re.match(r"^\s*(```+|~~~+)", line)
        if m:
            fence = None if fence and m.group(1)[:3] == fence else (fence or m.group(1)[:3])
            continue
        if fence is None:
            continue
        joined += line.rstrip("\\") + " "
        if line.rstrip().endswith("\\"):
            continue
        check_code(truth, joined.strip(), f"{rel}:{number}", errors, span=False)
        joined = ""


def doc_files(source):
    return sorted(source.glob("README*.md")) + sorted(source.glob("docs/**/*.md"))


def check_tree(truth, source):
    errors = []
    for f in doc_files(source):
        check_file(truth, f, f.relative_to(source), errors)
    return errors


def self_test(truth, source, tmp):
    """Made-up flags and keys must be reported; real ones must not."""
    cases = {
        "good": ("```\nllmtrain --config c.json --set train.seq_len=64 --dry-run\nllmgen --model m --temp 0\n"
                 "llmtrain export --model m --type q8_0 --out x.gguf\n```\n"
                 "`--resume`, `optim.lr`, `tokenizer.train.vocab_size`, `data.inputs[0].format`, `model.safetensors`\n"
                 "`model.embed_tokens.weight`, `model.layers.0.self_attn.q_proj.bias`, `model.norm.weight`\n"
                 "## `train`\n| key | |\n|---|---|\n| `seq_len` | |\n"
                 "```json\n{\"train\": {\"steps\": 2}, \"data\": {\"inputs\": [{\"path\": \"a\", \"format\": \"text\"}]}}\n```\n",
                 0),
        "flag after llmtrain": ("```\nllmtrain --config c.json --made-up-flag\n```\n", 1),
        "flag after llmgen": ("中文说明 `llmgen --model m --made-up-flag 3`\n", 1),
        "subcommand flag": ("`llmtrain prepare --type q8_0`\n", 1),
        "leading flag in a span": ("| `--made-up-flag N` | 1 |\n", 1),
        "flag in prose": ("加上 --made-up-flag 即可，或 `llmgen --model m\n--made-up-two`\n", 2),
        "dotted key": ("`train.made_up_key`\n", 1),
        "--set key": ("```\nmpirun -np 2 llmtrain --set optim.made_up=1\n```\n", 1),
        "nested key": ("`tokenizer.train.made_up`, `data.inputs[1].made_up`\n", 2),
        "relative key": ("## `tokenizer`\n| key | |\n|---|---|\n| `train.vocab_size` | `train.made_up` |\n", 1),
        "JSON example": ("```json\n{\"train\": {\"made_up\": 1}, \"optim\": {\"lr\": 1}}\n```\n", 1),
        "table under a section": ("## `optim`\n| key | |\n|---|---|\n| `made_up` | |\n", 1),
    }
    failed = 0
    for name, (text, want) in cases.items():
        f = tmp / "case.md"
        f.write_text(text, encoding="utf-8")
        errors = []
        check_file(truth, f, f"<{name}>", errors)
        ok = len(errors) == want
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {len(errors)} error(s), expected {want}" +
              "".join(f"\n       {e}" for e in errors))
    return failed


def main(argv):
    selftest = argv[:1] == ["--self-test"]
    args = argv[1:] if selftest else argv
    if len(args) != 2:
        print(__doc__)
        return 2
    source, build = pathlib.Path(args[0]).resolve(), pathlib.Path(args[1]).resolve()
    truth = Truth(source, build)
    if selftest:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            return 1 if self_test(truth, source, pathlib.Path(tmp)) else 0
    for tool, flags in PENDING_FLAGS.items():
        for flag in flags & set().union(*(v for k, v in truth.flags.items() if k[0] == tool)):
            print(f"note: {tool} {flag} exists now: remove it from PENDING_FLAGS in {pathlib.Path(__file__).name}")
    errors = check_tree(truth, source)
    for e in errors:
        print(e)
    n = len(doc_files(source))
    print(f"{n} docs checked against {len(truth.all_flags)} flags and {len(truth.sections)} config sections: "
          f"{len(errors)} unknown name(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
