#!/usr/bin/env bash
# Qwen tokenizer throughput, ours (`llmtrain tokenize`) against the JavaScript reference, in MB/s
# and as a ratio. Usage: bench/tokenizer_throughput.sh [BUILD_DIR] [extra args of the .py]
# Needs: BUILD_DIR/llmtrain (default build/), scripts/setup.sh done (npm reference, fortunes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
exec python3 "$root/bench/tokenizer_throughput.py" --llmtrain "$build/llmtrain" "$@"
