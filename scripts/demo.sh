#!/usr/bin/env bash
# The main job on the built-in default: set up (Debian packages, idempotent), build, train the
# tiny Qwen2 of configs/tiny.json on Debian's fortunes corpus on the CPU, then generate from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target llmtrain llmgen
./build/llmtrain                                  # no --config: the built-in tiny demo -> runs/tiny
echo "--- a sample from the trained model ---"
./build/llmgen --model runs/tiny/latest --prompt "${1:-床前明月光，}" --max-tokens 60 --temp 0.8 --top-p 0.95 --seed 1
echo
