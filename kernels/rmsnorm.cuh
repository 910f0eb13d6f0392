// RMSNorm forward (optionally with the residual add fused in) and backward on the device.
// Matrices are [N, C] with dense rows at a row stride (ld, elements).
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

struct NormMat {
  void* p = nullptr;
  DType dt = DType::F32;
  int64_t ld = 0;
};

// y = w * x * rstd per row; rstd [N] f32. With `b` given (add_rmsnorm_forward): s = a + b is
// stored first (s may alias a) and the sum as stored is normalised. x is `a` in both forms.
void rmsnorm_forward_rows(NormMat a, const NormMat* b, const NormMat* s, const void* w, DType wt, float eps, NormMat y,
                          float* rstd, int64_t N, int64_t C, cudaStream_t stream);

// dx = (accumulate ? dx : 0) + d/dx; dw[c] += sum_n dy[n, c] * x[n, c] * rstd[n], summed
// deterministically through partial (dev::column_groups(N) * C floats of device scratch).
void rmsnorm_backward_rows(NormMat dy, NormMat x, const void* w, DType wt, const float* rstd, NormMat dx, float* dw,
                           bool accumulate, int64_t N, int64_t C, float* partial, cudaStream_t stream);

// Scratch floats rmsnorm_backward_rows needs for N rows of C columns.
int64_t rmsnorm_backward_scratch(int64_t N, int64_t C);

}  // namespace llm::LLM_CUDA_NS
