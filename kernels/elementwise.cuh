// add / scale on the device: flat elementwise ops over contiguous float tensors of any float dtype.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// out[i] = a[i] + b[i] for i < n (fp32 math, one rounding); out may alias a or b.
void add_flat(const void* a, DType at, const void* b, DType bt, void* out, DType ot, int64_t n, cudaStream_t stream);
// x[i] *= s for i < n.
void scale_flat(void* x, DType xt, int64_t n, float s, cudaStream_t stream);
// x[i] = keep(seed, i) ? x[i] / (1 - p) : 0 for i < n (Backend::dropout).
void dropout_flat(void* x, DType xt, int64_t n, float p, uint64_t seed, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
