#!/usr/bin/env python3
"""Per-kernel resource table from ptxas -v, and a check that no kernel spills.

  ptxas_report.py capture LOGDIR COMPILER ARGS...
      The CUDA compiler launcher (cmake/cuda.cmake): runs the compile, passes its output
      through, and keeps the ptxas lines of each object in LOGDIR/<object>.ptxas.log.
  ptxas_report.py report LOGDIR
      Prints registers, shared memory, stack and spills of every kernel for every
      architecture, and exits 1 when any function spills (the cuda_resources test).
"""
import os
import re
import shutil
import subprocess
import sys

ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'")
PROPS = re.compile(r"Function properties for (\S+)")
FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?")
ARCH = re.compile(r"for '(sm_\d+a?)'")


def capture(logdir, command):
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sys.stdout.buffer.write(proc.stdout)
    err = proc.stderr.decode(errors="replace")
    ptxas = [line for line in err.splitlines() if line.startswith("ptxas info") or FRAME.search(line)]
    rest = [line for line in err.splitlines() if line not in ptxas]
    if rest:
        sys.stderr.write("\n".join(rest) + "\n")
    obj = command[command.index("-o") + 1] if "-o" in command else "unnamed"
    if ptxas:
        os.makedirs(logdir, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.relpath(obj)) + ".ptxas.log"
        with open(os.path.join(logdir, name), "w") as f:
            f.write("\n".join(ptxas) + "\n")
    return proc.returncode


def parse(text):
    """Rows {function, arch, entry, registers, smem, stack, spill_stores, spill_loads}."""
    rows = {}
    entry = None
    props_of = None
    arch = "?"
    for line in text.splitlines():
        m = ENTRY.search(line)
        if m:
            entry, arch = m.group(1), m.group(2)
            rows.setdefault((entry, arch), {"function": entry, "arch": arch, "entry": True})
            continue
        m = ARCH.search(line)
        if m and "Compiling" in line:  # a non-entry function compiled for an architecture
            arch = m.group(1)
        m = PROPS.search(line)
        if m:
            props_of = m.group(1)
            continue
        m = FRAME.search(line)
        if m and props_of:
            row = rows.setdefault((props_of, arch), {"function": props_of, "arch": arch, "entry": False})
            row.update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
            props_of = None
            continue
        m = USED.search(line)
        if m and entry:
            row = rows[(entry, arch)]
            row.update(registers=int(m.group(1)), smem=int(m.group(3) or 0))
    return list(rows.values())


def demangle(names):
    tool = shutil.which("c++filt")
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def report(logdir):
    if not os.path.isdir(logdir):
        print(f"ptxas_report: no ptxas logs in {logdir}: build the CUDA targets first", file=sys.stderr)
        return 1
    rows = []
    for name in sorted(os.listdir(logdir)):
        if name.endswith(".ptxas.log"):
            with open(os.path.join(logdir, name)) as f:
                for row in parse(f.read()):
                    row["object"] = name[: -len(".ptxas.log")]
                    rows.append(row)
    if not rows:
        print(f"ptxas_report: {logdir} holds no ptxas output", file=sys.stderr)
        return 1
    names = demangle(sorted({r["function"] for r in rows}))
    rows.sort(key=lambda r: (names[r["function"]], r["arch"]))
    header = f"{'arch':7} {'regs':>5} {'smem':>7} {'stack':>6} {'spill st':>9} {'spill ld':>9}  function"
    print(header)
    print("-" * len(header))
    spills = []
    for r in rows:
        if not r["entry"] and not r.get("spill_stores") and not r.get("spill_loads") and not r.get("stack"):
            continue  # inlined helpers without a frame: nothing to say
        kind = "" if r["entry"] else " (device function)"
        print(f"{r['arch']:7} {r.get('registers', '-'):>5} {r.get('smem', '-'):>7} {r.get('stack', 0):>6} "
              f"{r.get('spill_stores', 0):>9} {r.get('spill_loads', 0):>9}  {names[r['function']]}{kind}")
        if r.get("spill_stores", 0) or r.get("spill_loads", 0):
            spills.append(r)
    if spills:
        print(f"\nptxas_report: {len(spills)} function/architecture pairs spill registers to local memory:",
              file=sys.stderr)
        for r in spills:
            print(f"  {names[r['function']]} on {r['arch']}: {r['spill_stores']} bytes stored, "
                  f"{r['spill_loads']} bytes loaded", file=sys.stderr)
        return 1
    print(f"\nptxas_report: {sum(1 for r in rows if r['entry'])} kernel builds, no spills")
    return 0


def main(argv):
    if len(argv) >= 4 and argv[1] == "capture":
        return capture(argv[2], argv[3:])
    if len(argv) == 3 and argv[1] == "report":
        return report(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
