#!/usr/bin/env bash
# CPU inference of the Qwen2.5-0.5B shape (random weights): decode tokens/s at fp32, bf16, int8 and
# int4 beside the floor `weight bytes / read bandwidth` (bandwidth measured in the same process),
# and prefill tokens/s of a 512-token prompt against PyTorch 1.13 on the same threads.
#   bash bench/decode_throughput.sh [THREADS]     (run from the repository root after building)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
bin=${LLM_BUILD:-build}
cfg=configs/qwen05b.json
[[ -x $bin/llmbench ]] || { echo "build first: cmake --build $bin --target llmbench" >&2; exit 1; }
printf "%-6s %-6s %10s %9s %10s %9s %10s\n" dtype quant "weights MB" "decode/s" "floor/s" "of floor" "prefill/s"
declare -A prefill
# int8+a / int4+a: the same weights with --int8-activations (prompts on integer dot products).
for spec in "fp32 none" "bf16 none" "fp32 int8" "fp32 int4" "fp32 int8+a" "fp32 int4+a"; do
  set -- $spec
  acts=()
  [[ $2 == *+a ]] && acts=(--int8-activations)
  out=$(OMP_NUM_THREADS=$threads "$bin/llmbench" decode --config $cfg --dtype "$1" --quant "${2%+a}" "${acts[@]}" \
      --threads "$threads" --prompt-tokens 512 --tokens 32)
  echo "$out" | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-6s %-6s %10.0f %9.1f %10.1f %8.0f%% %10.1f" % (r["dtype"], r["quant"] + ("+a" if r["int8_activations"] else ""), r["weight_bytes"] / 1e6,
      r["decode_tokens_per_s"], r["floor_tokens_per_s"], 100 * r["fraction_of_floor"], r["prefill_tokens_per_s"]))'
  prefill[$1$2]=$(echo "$out" | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["prefill_tokens_per_s"])')
done
/usr/bin/python3 -c 'import sys; print("bf16 / fp32 prefill: %.2fx" % (float(sys.argv[1]) / float(sys.argv[2])))' \
    "${prefill[bf16none]}" "${prefill[fp32none]}"
# What the figures depend on: CPU, ISA flags, BLAS kernels, oneDNN ISA, environment.
echo "$out" | /usr/bin/python3 -c 'import json, sys; print("cpu:", json.dumps(json.load(sys.stdin)["cpu"]))'
torch=$(OMP_NUM_THREADS=$threads /usr/bin/python3 bench/torch_prefill.py --config $cfg --tokens 512 --threads "$threads")
echo "PyTorch 1.13 fp32 prefill of 512 tokens: $(echo "$torch" | /usr/bin/python3 -c 'import json,sys; print("%.1f tokens/s" % json.load(sys.stdin)["prefill_tokens_per_s"])')"
