// A sample of the kernel pattern every op follows (and the harness's proof that one source
// builds under nvcc for all architectures and under the host compiler for the emulator):
// block sums with shared memory and warp shuffles, whose second stage runs in warp 0 only.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"

namespace llm::LLM_CUDA_NS {

// partial[b] = sum of x[i] over i = b*256 + t + k*blocks*256 (t < 256): a grid-stride sum
// over `blocks` blocks of 256 threads. x [n], partial [blocks], device pointers.
void sample_block_sums(const float* x, int64_t n, float* partial, int blocks, cudaStream_t stream);

// out[r] = sum of x[r, :] for x [rows, cols] row-major, one block of `threads` threads per row
// (a multiple of 32, at most 1024); the per-warp sums live in dynamic shared memory.
void sample_row_sums(const float* x, int rows, int cols, float* out, int threads, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
