// Device helpers shared by the elementwise-style kernels (copy, embedding, rmsnorm, rope, swiglu,
// add/scale, adamw, sum): fp32 loads and stores of f32 / f16 / bf16 storage (round to nearest
// even on store, as llm/dtype.h does on the CPU), 8 elements at a time with 128-bit accesses
// where the caller has checked the alignment, warp and block sums, and a deterministic column
// reduction. Included by kernels/*.cu only (device code).
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

// Full unrolling of the fixed 8-trip loops over a chunk (keeps the chunk arrays in registers);
// the host compiler of the emulator spells the pragma its own way.
#if defined(__CUDACC__)
#define LLM_UNROLL_8 _Pragma("unroll")
#else
#define LLM_UNROLL_8 _Pragma("GCC unroll 8")
#endif

namespace llm::LLM_CUDA_NS::dev {

// Elements per vector access: two 16-byte words of f32, one of f16/bf16.
constexpr int kVec = 8;
// Grid-stride kernels use at most this many blocks; the loops cover the rest.
constexpr int64_t kMaxBlocks = int64_t(1) << 16;

inline unsigned grid_for(int64_t items, int threads) {
  const int64_t b = (items + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
// Every row start of a matrix with row stride `ld` elements of `es` bytes is 16-byte aligned.
inline bool rows_aligned16(const void* p, int64_t ld, size_t es) {
  return aligned16(p) && (ld * static_cast<int64_t>(es)) % 16 == 0;
}

__device__ __forceinline__ float bits_to_float(unsigned bits, DType dt) {
  return dt == DType::F16 ? __half2float(__ushort_as_half(static_cast<unsigned short>(bits)))
                          : __uint_as_float(bits << 16);
}
__device__ __forceinline__ unsigned float_to_bits(float v, DType dt) {
  return dt == DType::F16 ? static_cast<unsigned>(__half_as_ushort(__float2half_rn(v)))
                          : static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(v)));
}

// v as it reads back after a store into dt.
__device__ __forceinline__ float round_to(float v, DType dt) {
  return dt == DType::F32 ? v : bits_to_float(float_to_bits(v, dt), dt);
}

__device__ __forceinline__ float load(const void* p, DType dt, int64_t i) {
  if (dt == DType::F32) return static_cast<const float*>(p)[i];
  return bits_to_float(static_cast<const unsigned short*>(p)[i], dt);
}
__device__ __forceinline__ void store(void* p, DType dt, int64_t i, float v) {
  if (dt == DType::F32) {
    static_cast<float*>(p)[i] = v;
  } else {
    static_cast<unsigned short*>(p)[i] = static_cast<unsigned short>(float_to_bits(v, dt));
  }
}

// kVec elements from element i of p; the address of element i is 16-byte aligned.
__device__ __forceinline__ void load8(const void* p, DType dt, int64_t i, float (&v)[kVec]) {
  if (dt == DType::F32) {
    const float4* q = reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
    const float4 a = q[0], b = q[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
    const uint4 r = *reinterpret_cast<const uint4*>(static_cast<const unsigned short*>(p) + i);
    const unsigned w[4] = {r.x, r.y, r.z, r.w};
    LLM_UNROLL_8
    for (int k = 0; k < 4; ++k) {
      v[2 * k] = bits_to_float(w[k] & 0xffffu, dt);
      v[2 * k + 1] = bits_to_float(w[k] >> 16, dt);
    }
  }
}
__device__ __forceinline__ void store8(void* p, DType dt, int64_t i, const float (&v)[kVec]) {
  if (dt == DType::F32) {
    float4* q = reinterpret_cast<float4*>(static_cast<float*>(p) + i);
    q[0] = make_float4(v[0], v[1], v[2], v[3]);
    q[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    unsigned w[4];
    LLM_UNROLL_8
    for (int k = 0; k < 4; ++k) w[k] = float_to_bits(v[2 * k], dt) | float_to_bits(v[2 * k + 1], dt) << 16;
    *reinterpret_cast<uint4*>(static_cast<unsigned short*>(p) + i) = make_uint4(w[0], w[1], w[2], w[3]);
  }
}

// Elements [i, i + cnt) (cnt <= kVec) into v[0, cnt), zeros after; one vector access when `vec`
// (the caller checked that element i is 16-byte aligned) and the chunk is full.
__device__ __forceinline__ void load_chunk(const void* p, DType dt, int64_t i, int cnt, bool vec, float (&v)[kVec]) {
  if (vec && cnt == kVec) {
    load8(p, dt, i, v);
  } else {
    LLM_UNROLL_8
    for (int k = 0; k < kVec; ++k) v[k] = k < cnt ? load(p, dt, i + k) : 0.0f;
  }
}
__device__ __forceinline__ void store_chunk(void* p, DType dt, int64_t i, int cnt, bool vec, const float (&v)[kVec]) {
  if (vec && cnt == kVec) {
    store8(p, dt, i, v);
  } else {
    LLM_UNROLL_8
    for (int k = 0; k < kVec; ++k) {
      if (k < cnt) store(p, dt, i + k, v[k]);
    }
  }
}

// ---- reductions ---------------------------------------------------------------------------------------
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
  // Butterfly: every lane ends with the same sum, added in the same order on every lane.
  LLM_UNROLL_8
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// The sum of v over the block (blockDim.x a multiple of 32, at most 1024), returned to every
// thread; a fixed order, so the same inputs give the same bits. scratch: 33 T in shared memory.
// Every thread of the block must call it.
template <class T>
__device__ __forceinline__ T block_sum(T v, T* scratch) {
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int warps = static_cast<int>(blockDim.x) >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    T w = lane < warps ? scratch[lane] : T(0);
    w = warp_sum(w);
    if (lane == 0) scratch[32] = w;
  }
  __syncthreads();
  return scratch[32];
}

// ---- deterministic column sums: out[c] += sum_n term(n, c) ------------------------------------------
// Pass 1 (column_partial_kernel): a block of 32 x 8 threads owns 32 columns and a group of
// kColumnRows rows; thread (x, y) sums rows y, y + 8, ... of its group in order, then thread
// y = 0 adds the 8 partial sums in y order: partial[g, c]. Pass 2 (column_finish_kernel) adds
// the groups of a column in g order. The partition depends only on N, so the result is the same
// on every GPU and every run, with no atomics.
constexpr int kColumnRows = 128;

template <class Term>
__global__ void __launch_bounds__(256)
    column_partial_kernel(Term term, int64_t N, int64_t C, float* __restrict__ partial) {
  __shared__ float sums[8][33];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  const int64_t g = blockIdx.y;
  const int64_t r1 = (g + 1) * kColumnRows < N ? (g + 1) * kColumnRows : N;
  float acc = 0.0f;
  if (c < C) {
    for (int64_t n = g * kColumnRows + ty; n < r1; n += 8) acc += term(n, c);
  }
  sums[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < C) {
    float s = sums[0][tx];
    LLM_UNROLL_8
    for (int k = 1; k < 8; ++k) s += sums[k][tx];
    partial[g * C + c] = s;
  }
}

template <bool kAccumulate>
__global__ void __launch_bounds__(256)
    column_finish_kernel(const float* __restrict__ partial, int64_t groups, int64_t C, float* __restrict__ out) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float s = 0.0f;
  for (int64_t g = 0; g < groups; ++g) s += partial[g * C + c];
  out[c] = kAccumulate ? out[c] + s : s;
}

// Groups of kColumnRows rows for N rows (the rows of partial).
inline int64_t column_groups(int64_t N) { return (N + kColumnRows - 1) / kColumnRows; }

// out[c] += sum_n term(n, c) for n < N, c < C; partial: column_groups(N) * C floats of scratch.
template <class Term>
void column_sum_accumulate(const Term& term, int64_t N, int64_t C, float* partial, float* out, cudaStream_t stream) {
  if (C == 0 || N == 0) return;
  const int64_t groups = column_groups(N);
  LLM_CHECK(groups <= 65535, "column sum: ", N, " rows exceed the grid (at most ", 65535 * kColumnRows, ")");
  LLM_LAUNCH((column_partial_kernel<Term>), dim3(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>(groups)),
             dim3(32, 8), 0, stream, term, N, C, partial);
  LLM_CUDA_CHECK(cudaGetLastError());
  LLM_LAUNCH((column_finish_kernel<true>), dim3(static_cast<unsigned>((C + 255) / 256)), dim3(256), 0, stream, partial,
             groups, C, out);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS::dev
