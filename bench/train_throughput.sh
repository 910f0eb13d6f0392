#!/usr/bin/env bash
# Training throughput (forward + backward tokens/s) of this engine against the PyTorch 1.13
# reference model, same config, same threads, same batch, measured in this run; then ours at bf16
# (bf16 x bf16 GEMMs on oneDNN's AVX512-BF16 kernels where the CPU has them) against ours at fp32.
#   bash bench/train_throughput.sh [THREADS]        (run from the repository root after building)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
bin=${LLM_BUILD:-build}
[[ -x $bin/llmbench ]] || { echo "build first: cmake --build $bin --target llmbench" >&2; exit 1; }
printf "%-12s %6s %5s %12s %12s %8s %10s %10s\n" config batch seq "ours tok/s" "torch tok/s" ratio "ours GF/s" "torch GF/s"
run() {  # config batch seq steps
  local ours torch
  ours=$(OMP_NUM_THREADS=$threads "$bin/llmbench" train --config "$1" --batch "$2" --seq "$3" --steps "$4" --warmup 1 --threads "$threads")
  torch=$(OMP_NUM_THREADS=$threads /usr/bin/python3 bench/torch_train_throughput.py --config "$1" --batch "$2" --seq "$3" \
          --steps "$4" --warmup 1 --threads "$threads")
  /usr/bin/python3 - "$1" "$2" "$3" "$ours" "$torch" <<'PY'
import json, sys
name, b, t, ours, torch = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
flops_per_tok = ours["gflops"] / ours["tokens_per_s"]
print("%-12s %6s %5s %12.0f %12.0f %7.2fx %10.1f %10.1f" % (name.split("/")[-1].replace(".json", ""), b, t,
      ours["tokens_per_s"], torch["tokens_per_s"], ours["tokens_per_s"] / torch["tokens_per_s"],
      ours["gflops"], flops_per_tok * torch["tokens_per_s"]))
PY
}
bf16() {  # config batch seq steps: ours at bf16 against ours at fp32, in 3 back-to-back pairs
  # (fp32, bf16, fp32, bf16, ...): each pair's ratio is taken over the same minute of the machine,
  # and the median pair is printed, so that a neighbour's load drifting mid-run moves both sides.
  local runs=()
  for _ in 1 2 3; do
    for p in fp32 bf16; do
      runs+=("$(OMP_NUM_THREADS=$threads "$bin/llmbench" train --config "$1" --batch "$2" --seq "$3" --steps "$4" \
                --warmup 1 --threads "$threads" --set train.precision=$p)")
    done
  done
  /usr/bin/python3 - "$1" "$2" "$3" "${runs[@]}" <<'PY'
import json, statistics, sys
name, b, t = sys.argv[1:4]
runs = [json.loads(r)["tokens_per_s"] for r in sys.argv[4:]]
pairs = sorted(zip(runs[0::2], runs[1::2]), key=lambda p: p[1] / p[0])
f, h = pairs[len(pairs) // 2]
print("%-12s %6s %5s %12.0f %12.0f %7.2fx  (ours bf16 vs ours fp32: median of 3 pairs, %.2f-%.2fx)" % (
      name.split("/")[-1].replace(".json", ""), b, t, h, f, h / f, pairs[0][1] / pairs[0][0],
      pairs[-1][1] / pairs[-1][0]))
PY
}
run configs/tiny.json 8 128 5
run configs/bench50m.json 4 256 3
bf16 configs/tiny.json 8 128 10
bf16 configs/bench50m.json 4 256 3
# What the figures depend on: CPU, ISA flags, BLAS kernels, oneDNN ISA, environment.
OMP_NUM_THREADS=$threads "$bin/llmbench" train --config configs/tiny.json --batch 1 --seq 16 --steps 1 --warmup 0 \
    --threads "$threads" | /usr/bin/python3 -c 'import json, sys; print("cpu:", json.dumps(json.load(sys.stdin)["cpu"]))'

