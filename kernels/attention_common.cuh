// Device helpers shared by the attention kernels (kernels/attention_*.cu): element conversion,
// the tensor-core product for the 16-bit types, tile copies into shared memory, and the host-side
// launch helper for kernels that need more than 48 KiB of dynamic shared memory.
#pragma once

#include <cstdint>
#include <type_traits>

#include "attention.cuh"

namespace llm::LLM_CUDA_NS::attn {

inline constexpr float kLog2e = 1.4426950408889634f;

// ---- elements ---------------------------------------------------------------------------------
template <class T>
__device__ __forceinline__ float to_f(T x) {
  if constexpr (sizeof(T) == 4) {
    return x;
  } else if constexpr (std::is_same_v<T, __half>) {
    return __half2float(x);
  } else {
    return __bfloat162float(x);
  }
}
template <class T>
__device__ __forceinline__ T from_f(float x) {
  if constexpr (sizeof(T) == 4) {
    return x;
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(x);
  } else {
    return __float2bfloat16_rn(x);
  }
}

// Element (b, t, h, 0) of a [B, T, H, D] view.
template <class T>
__device__ __forceinline__ T* head_row(const AttnHeads& v, int b, int t, int h) {
  return static_cast<T*>(v.ptr) + int64_t(b) * v.sb + int64_t(t) * v.st + int64_t(h) * v.sh;
}

// ---- tensor cores (16-bit types) ----------------------------------------------------------------
template <class T>
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    return pack2_f16(lo, hi);
  } else {
    return pack2_bf16(lo, hi);
  }
}
template <class T>
__device__ __forceinline__ void mma(float d[4], const unsigned a[4], const unsigned b[2]) {
  if constexpr (std::is_same_v<T, __half>) {
    mma_m16n8k16_f16(d, a, b, d);
  } else {
    mma_m16n8k16_bf16(d, a, b, d);
  }
}

// Shared-memory tiles of the tensor-core kernels hold 16-bit rows of kD elements padded by 8
// (kD/2 + 4 32-bit words): fragment loads (8 rows x 4 words per instruction) then hit 32
// distinct banks, and each row starts 16-byte aligned for the vector copy.
template <int kD>
inline constexpr int kTcPitch = kD / 2 + 4;

// rows [0, kRows) of a tile from `src` (row stride `st` elements), rows >= `valid` zeroed (so
// padding never feeds NaN garbage into a product), 16 bytes per thread and step.
template <int kD, int kRows, int kThreads>
__device__ __forceinline__ void load_tile_tc(unsigned* dst, const unsigned short* src, int64_t st, int valid, int tid) {
  constexpr int kChunks = kD / 8;
  static_assert((kRows * kChunks) % kThreads == 0, "whole steps");
#pragma unroll
  for (int step = 0; step < kRows * kChunks / kThreads; ++step) {
    const int i = tid + step * kThreads, r = i / kChunks, c = i % kChunks;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r < valid) val = *reinterpret_cast<const uint4*>(src + int64_t(r) * st + c * 8);
    *reinterpret_cast<uint4*>(dst + r * kTcPitch<kD> + c * 4) = val;
  }
}

// B fragment of a product whose k index runs down the rows of a row-major tile: the 16-bit
// values at rows (k, k+1) of column n, packed (k's value in the low half).
__device__ __forceinline__ unsigned pair_down(const unsigned* tile, int pitch, int k, int n) {
  const unsigned shift = (n & 1) * 16u;
  const unsigned lo = (tile[k * pitch + (n >> 1)] >> shift) & 0xffffu;
  const unsigned hi = (tile[(k + 1) * pitch + (n >> 1)] >> shift) & 0xffffu;
  return lo | hi << 16;
}

// ---- warp reductions ----------------------------------------------------------------------------
// Over the 4 lanes of a quad (lanes 4i..4i+3: one row of a fragment or of an FMA tile).
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// ---- host -------------------------------------------------------------------------------------
// Dynamic shared memory above the default 48 KiB needs the kernel's opt-in (every sm_75+ GPU
// allows at least 64 KiB).
template <class Kernel>
inline void allow_smem(Kernel* kernel, size_t bytes) {
  if (bytes > size_t(48) << 10) {
    LLM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  }
}

}  // namespace llm::LLM_CUDA_NS::attn
