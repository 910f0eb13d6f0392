#!/usr/bin/env bash
# The Qwen2.5-0.5B training step on a GPU at seq 2048, measured, beside the roofline prediction
# of bench/roofline.py (docs/roofline.md). Needs a CUDA build and a device.
#   bash bench/gpu_step.sh [MICRO_BATCH]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${LLM_BUILD:-build}
mb=${1:-2}
for prec in bf16 fp16; do
  for rc in none selective full; do
    out=$("$bin/llmbench" train --device cuda --config configs/qwen05b.json --batch "$mb" --seq 2048 --steps 5 \
          --warmup 2 --set train.precision=$prec --set train.recompute=$rc 2>&1 | tail -1)
    echo "$prec recompute=$rc: $out"
  done
done
echo
python3 bench/roofline.py --micro-batch "$mb" --recompute none | grep -E "^##"
