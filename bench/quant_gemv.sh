#!/usr/bin/env bash
# Weight-only int8/int4 GEMV bandwidth against fp32 sgemv and the machine's read bandwidth, and
# prefill GFLOP/s, at the Qwen2.5-0.5B shapes (bench/quant_gemv.cpp), on 1 thread and on all cores.
# Usage: bench/quant_gemv.sh [BUILD_DIR] [args of quant_gemv: --rounds R --set-bytes MiB --prefill N --shape NAME]
# Needs the quant_gemv target (docs/quantization.md gives its CMake lines). LLM_CPU_KERNELS picks
# the kernel (portable | avx2 | avx512 | auto).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
cmake --build "$build" --target quant_gemv -j2
all=$(nproc)
for t in 1 $([ "$all" -gt 1 ] && echo "$all"); do
  "$build/quant_gemv" --threads "$t" "$@"
  echo
done
