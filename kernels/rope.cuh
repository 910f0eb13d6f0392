// rope on the device: NeoX rotate-half, in place on a strided [B, T, H, D] view.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// x [B, T, H, D] with element strides s0, s1, s2 (dense heads); cos, sin [P, D/2] f32 contiguous;
// token t uses row pos0 + t. inverse rotates by minus the angle.
void rope_inplace(void* x, DType xt, int64_t B, int64_t T, int64_t H, int64_t D, int64_t s0, int64_t s1, int64_t s2,
                  const float* cos, const float* sin, int64_t pos0, bool inverse, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
