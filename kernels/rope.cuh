// rope on the device: NeoX rotate-half, in place on a strided [B, T, H, D] view.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// x [B, T, H, D] with element strides s0, s1, s2 (dense heads); cos, sin [P, D/2] f32 contiguous;
// token t uses row pos0 + t. inverse rotates by minus the angle.
void rope_inplace(void* x, DType xt, int64_t B, int64_t T, int64_t H, int64_t D, int64_t s0, int64_t s1, int64_t s2,
                  const float* cos, const float* sin, int64_t pos0, const int32_t* positions, int64_t P, bool inverse,
                  cudaStream_t stream);

// One decode token at position p = *pos, read on the device so that a CUDA graph captured once
// replays at every position: rotates the Hq q heads and Hkv k heads of qkv [Hq + 2 Hkv, D] (head
// stride qkv_sh) in place with row p of cos, sin [P, D/2], then writes the rotated k heads and the
// v heads to row p of the caches k_cache, v_cache [P, Hkv, D] (token stride cache_st, head stride
// cache_sh; the dtype of qkv). The values are bitwise those of rope_inplace and a copy.
void rope_append_kv(void* qkv, DType dt, int64_t Hq, int64_t Hkv, int64_t D, int64_t qkv_sh, const float* cos,
                    const float* sin, const int32_t* pos, int64_t P, void* k_cache, void* v_cache, int64_t cache_st,
                    int64_t cache_sh, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
