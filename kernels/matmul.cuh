// The kernels around the cuBLASLt GEMM of matmul (src/backend/cuda/matmul.cpp) and bias_backward.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// c[m, n] = (beta == 0 ? 0 : beta * c[m, n]) + (bias ? bias[n] : 0) for c [M, N] (row stride ldc):
// the K = 0 product, and the bias when the cuBLASLt bias epilogue is not available.
void matmul_scale_bias(void* c, DType ct, int64_t ldc, int64_t M, int64_t N, float beta, const void* bias, DType bt,
                       cudaStream_t stream);

// Device scratch floats bias_backward_rows needs for N rows of C columns.
int64_t bias_backward_scratch(int64_t N, int64_t C);
// db[c] += sum_n dy[n, c], deterministic (a fixed two-pass column sum, no atomics).
void bias_backward_rows(const void* dy, DType dt, int64_t ld, int64_t N, int64_t C, float* db, float* partial,
                        cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
