#!/usr/bin/env bash
# Sets up (Debian packages, idempotent), builds once, and runs every test in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
# ctest runs $jobs tests at once, each with OpenMP threads: waiting threads must sleep, not spin,
# or oversubscribed cores make the training tests many times slower.
export OMP_WAIT_POLICY=PASSIVE
# LLM_CUDA_ARCHS (e.g. "75;80", set by .ci/run) narrows the GPU architectures nvcc builds; the
# default is every one the toolkit supports (cmake/cuda.cmake).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${LLM_CUDA_ARCHS:+"-DCMAKE_CUDA_ARCHITECTURES=$LLM_CUDA_ARCHS"}
cmake --build build -j"$jobs"
ctest --test-dir build -j"$jobs" --output-on-failure --timeout 1500

# Once more under AddressSanitizer and UBSan: the emulated CUDA kernels and the emulator's own
# tests (docs/cuda-emulation.md: out-of-bounds device accesses and fiber stack misuse stop here),
# the HTTP server with its clients (threads, streams, disconnects, the drain), and the file
# readers (io: the GGUF fuzz test, damaged safetensors).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLM_SANITIZE=ON -DLLM_CUDA=OFF
cmake --build build-asan -j"$jobs" --target test_cuda_emu test_cuda_ops test_serve test_io
ctest --test-dir build-asan -j"$jobs" -L '^(cuda_emu|cuda_ops|serve|io)$' --output-on-failure --timeout 1500

# The loaders of outside bytes under libFuzzer, ASan and UBSan (fuzz/, docs/long-runs.md): a small
# clang build of only the sources they need, every checked-in crash replayed, each target 5 s.
CXX=clang++-14 cmake -S fuzz -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build-fuzz -j"$jobs"
bash fuzz/run.sh build-fuzz 5
