// sum / sum_squares on the device: deterministic two-pass reductions to a double.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// Device scratch bytes reduce_to_double needs for n elements.
size_t reduce_scratch(int64_t n);
// *result (device) = sum of x[i] (or x[i]^2) for i < n; scratch: reduce_scratch(n) bytes.
void reduce_to_double(const void* x, DType xt, int64_t n, bool squares, void* scratch, double* result,
                      cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
