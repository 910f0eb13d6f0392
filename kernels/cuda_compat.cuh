// The one header every CUDA source of the project includes (kernels/*.cu and the host side of
// the CUDA backend). It picks one of three worlds:
//   nvcc (__CUDACC__)                     the real CUDA headers; LLM_LAUNCH is <<<...>>>
//   host compiler + LLM_CUDA_EMULATION    the CPU emulator (emu/, test machinery): kernels run as
//                                         fibers, the runtime and cuBLASLt are served on the host
//   host compiler otherwise               the real CUDA headers (host code of the real backend)
// Code written against this header is the same in all three; see docs/cuda-emulation.md.
//
//   namespace llm::LLM_CUDA_NS {            // llm::cuda, or llm::cuda_emu under the emulator, so
//   __global__ void scale_kernel(float* x, int n, float s) {   // both builds can share a binary
//     const int i = blockIdx.x * blockDim.x + threadIdx.x;
//     if (i < n) x[i] *= s;
//   }
//   void scale(float* x, int n, float s, cudaStream_t stream) {
//     LLM_LAUNCH(scale_kernel, dim3((n + 255) / 256), dim3(256), 0, stream, x, n, s);
//     LLM_CUDA_CHECK(cudaGetLastError());
//   }
//   }
#pragma once

#if defined(__CUDACC__) && defined(LLM_CUDA_EMULATION)
#error "LLM_CUDA_EMULATION is for the host compiler; nvcc builds the real kernels"
#endif

#if defined(__CUDACC__) || !defined(LLM_CUDA_EMULATION)
// ---- real CUDA ------------------------------------------------------------------------------------
#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define LLM_CUDA_NS cuda
#define LLM_CUDA_EMULATED 0
#if defined(__CUDA_ARCH__)
#define LLM_CUDA_ARCH __CUDA_ARCH__
#else
#define LLM_CUDA_ARCH 0
#endif
// kernel may be a parenthesised template-id: LLM_LAUNCH((k<float, 4>), ...).
#define LLM_LAUNCH(kernel, grid, block, smem_bytes, stream, ...) \
  kernel<<<(grid), (block), (smem_bytes), (stream)>>>(__VA_ARGS__)
// Dynamic shared memory as a T*; every use in a kernel aliases the same bytes (16-byte aligned).
#define LLM_DYNAMIC_SHARED(T, name)                                  \
  extern __shared__ __align__(16) unsigned char llm_dynamic_smem_[]; \
  T* name = reinterpret_cast<T*>(llm_dynamic_smem_)

#else
// ---- the emulator ----------------------------------------------------------------------------------
#include "../emu/emulator.h"

#define LLM_CUDA_NS cuda_emu
#define LLM_CUDA_EMULATED 1
#define LLM_CUDA_ARCH LLM_EMU_ARCH
#define LLM_LAUNCH(kernel, grid, block, smem_bytes, stream, ...)                                \
  ::llm::emu::launch_kernel(#kernel, __FILE__, __LINE__, kernel, (grid), (block), (smem_bytes), \
                            (stream)__VA_OPT__(, ) __VA_ARGS__)
#define LLM_DYNAMIC_SHARED(T, name) T* name = ::llm::emu::dynamic_shared<T>()
#endif

// ---- error checks for host code (both worlds) ----------------------------------------------------
#include "llm/error.h"

namespace llm::cuda_detail {
inline const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_(other)";
  }
}
}  // namespace llm::cuda_detail

// Throws llm::Error naming the call, its place and CUDA's message.
#define LLM_CUDA_CHECK(call)                                                                                  \
  do {                                                                                                        \
    const cudaError_t llm_cuda_err_ = (call);                                                                 \
    if (llm_cuda_err_ != cudaSuccess) {                                                                       \
      ::llm::fail(#call, " failed at ", __FILE__, ":", __LINE__, ": ", cudaGetErrorName(llm_cuda_err_), " (", \
                  cudaGetErrorString(llm_cuda_err_), ")");                                                    \
    }                                                                                                         \
  } while (0)

#define LLM_CUBLAS_CHECK(call)                                             \
  do {                                                                     \
    const cublasStatus_t llm_cublas_st_ = (call);                          \
    if (llm_cublas_st_ != CUBLAS_STATUS_SUCCESS) {                         \
      ::llm::fail(#call, " failed at ", __FILE__, ":", __LINE__, ": ",     \
                  ::llm::cuda_detail::cublas_status_name(llm_cublas_st_)); \
    }                                                                      \
  } while (0)

// ---- tensor cores --------------------------------------------------------------------------------
// D = A·B + C for one warp (all 32 lanes call it, converged): A 16x16 row-major, B 16x8
// column-major, C and D 16x8 fp32, in PTX's mma.m16n8k16 fragment layout, g = lane / 4, t = lane % 4,
// each 32-bit register holding two 16-bit values, the lower column/row in the low half:
//   a[0] = A[g][2t, 2t+1]   a[1] = A[g+8][2t, 2t+1]   a[2] = A[g][2t+8, 2t+9]   a[3] = A[g+8][2t+8, 2t+9]
//   b[0] = B[2t, 2t+1][g]   b[1] = B[2t+8, 2t+9][g]
//   c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]   (d likewise)
// sm_80 and newer run the mma.sync m16n8k16 instruction, sm_75 two m16n8k8 ones (f16 only: Turing
// has no bf16 tensor cores, and the attention dispatch sends bf16 before sm_80 to the FMA kernel).
// Before sm_75 (V100) nothing dispatches here: those bodies trap rather than compile a slow
// substitute. The emulator computes the same products with warp shuffles and takes the same
// per-architecture paths at run time from its device profile (LLM_EMU_PROFILE), so the sm_75
// composition of two m16n8k8 is tested in CI and a bf16 mma on a T4 profile traps as on a T4.
// tests/cuda_emu/mma_layout_test.cpp checks all of this against PTX's fragment formulas.
#if defined(__CUDACC__) || defined(LLM_CUDA_EMULATION)
namespace llm::LLM_CUDA_NS {

__device__ __forceinline__ unsigned pack2_bf16(float lo, float hi) {
  return static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         static_cast<unsigned>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16;
}
__device__ __forceinline__ unsigned pack2_f16(float lo, float hi) {
  return static_cast<unsigned>(__half_as_ushort(__float2half_rn(lo))) |
         static_cast<unsigned>(__half_as_ushort(__float2half_rn(hi))) << 16;
}

#if defined(LLM_CUDA_EMULATION)
namespace mma_detail {
template <bool kBf16>
__device__ __forceinline__ float unpack(unsigned reg, int high) {
  const auto bits = static_cast<unsigned short>(high ? reg >> 16 : reg & 0xffffu);
  if constexpr (kBf16) {
    return __bfloat162float(__ushort_as_bfloat16(bits));
  } else {
    return __half2float(__ushort_as_half(bits));
  }
}

// The m16n8k16 fragment layout above, evaluated with shuffles: lane (g, t) needs rows g and g+8
// of A and columns 2t and 2t+1 of B for every k.
template <bool kBf16>
__device__ __forceinline__ void mma_m16n8k16_shuffled(float d[4], const unsigned a[4], const unsigned b[2],
                                                      const float c[4]) {
  const unsigned lane = (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) & 31u;
  const int g = static_cast<int>(lane >> 2), t = static_cast<int>(lane & 3u);
  float acc[4] = {c[0], c[1], c[2], c[3]};
  for (int k = 0; k < 16; ++k) {
    const int pair = (k & 7) / 2, high = k & 1;
    const int a_reg = k < 8 ? 0 : 2, b_reg = k < 8 ? 0 : 1;
    const float a_g = unpack<kBf16>(__shfl_sync(0xffffffffu, a[a_reg], g * 4 + pair), high);
    const float a_g8 = unpack<kBf16>(__shfl_sync(0xffffffffu, a[a_reg + 1], g * 4 + pair), high);
    const float b_0 = unpack<kBf16>(__shfl_sync(0xffffffffu, b[b_reg], (2 * t) * 4 + pair), high);
    const float b_1 = unpack<kBf16>(__shfl_sync(0xffffffffu, b[b_reg], (2 * t + 1) * 4 + pair), high);
    acc[0] += a_g * b_0;
    acc[1] += a_g * b_1;
    acc[2] += a_g8 * b_0;
    acc[3] += a_g8 * b_1;
  }
  for (int i = 0; i < 4; ++i) d[i] = acc[i];
}

// m16n8k8 (f16): A 16x8 as {A[g][2t, 2t+1], A[g+8][2t, 2t+1]}, B 8x8 as B[2t, 2t+1][g], C and D
// as in m16n8k16.
__device__ __forceinline__ void mma_m16n8k8_shuffled(float d[4], const unsigned a[2], unsigned b, const float c[4]) {
  const unsigned lane = (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) & 31u;
  const int g = static_cast<int>(lane >> 2), t = static_cast<int>(lane & 3u);
  float acc[4] = {c[0], c[1], c[2], c[3]};
  for (int k = 0; k < 8; ++k) {
    const int pair = k / 2, high = k & 1;
    const float a_g = unpack<false>(__shfl_sync(0xffffffffu, a[0], g * 4 + pair), high);
    const float a_g8 = unpack<false>(__shfl_sync(0xffffffffu, a[1], g * 4 + pair), high);
    const float b_0 = unpack<false>(__shfl_sync(0xffffffffu, b, (2 * t) * 4 + pair), high);
    const float b_1 = unpack<false>(__shfl_sync(0xffffffffu, b, (2 * t + 1) * 4 + pair), high);
    acc[0] += a_g * b_0;
    acc[1] += a_g * b_1;
    acc[2] += a_g8 * b_0;
    acc[3] += a_g8 * b_1;
  }
  for (int i = 0; i < 4; ++i) d[i] = acc[i];
}
}  // namespace mma_detail
#endif  // the emulator

// One warp's mma.sync.m16n8k8.row.col.f32.f16.f16.f32 (sm_75+): a[0..1], b as in the comment above.
__device__ __forceinline__ void mma_m16n8k8_f16(float d[4], const unsigned a[2], unsigned b, const float c[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};\n"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(b), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif defined(__CUDA_ARCH__)
  // No f16 m16n8k8 on Volta.
  (void)a, (void)b;
  __trap();
  for (int i = 0; i < 4; ++i) d[i] = c[i];
#elif defined(LLM_CUDA_EMULATION)
  ::llm::emu::require_sm(75, "mma.sync.m16n8k8 (f16)");
  mma_detail::mma_m16n8k8_shuffled(d, a, b, c);
#else
  // nvcc's host pass parses device code but never runs it.
  (void)a, (void)b;
  for (int i = 0; i < 4; ++i) d[i] = c[i];
#endif
}

__device__ __forceinline__ void mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2],
                                                  const float c[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif defined(__CUDA_ARCH__)
  // No bf16 tensor cores before Ampere, and nothing dispatches here: do not compile a shuffle
  // version that would only cost build time.
  (void)a, (void)b;
  __trap();
  for (int i = 0; i < 4; ++i) d[i] = c[i];
#elif defined(LLM_CUDA_EMULATION)
  ::llm::emu::require_sm(80, "mma.sync.m16n8k16 (bf16)");  // an illegal instruction on a T4 or V100
  mma_detail::mma_m16n8k16_shuffled<true>(d, a, b, c);
#else
  // nvcc's host pass parses device code but never runs it.
  (void)a, (void)b;
  for (int i = 0; i < 4; ++i) d[i] = c[i];
#endif
}

__device__ __forceinline__ void mma_m16n8k16_f16(float d[4], const unsigned a[4], const unsigned b[2],
                                                 const float c[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%10,%11,%12,%13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  // Turing has f16 tensor cores but only the k = 8 shape: two of them. m16n8k8's A fragment is
  // {A[g][2t, 2t+1], A[g+8][2t, 2t+1]} and its B fragment B[2t, 2t+1][g], so the k = 0..7 half is
  // (a[0], a[1], b[0]) and the k = 8..15 half (a[2], a[3], b[1]); C and D are laid out as above.
  float e[4];
  mma_m16n8k8_f16(e, a, b[0], c);
  mma_m16n8k8_f16(d, a + 2, b[1], e);
#elif defined(__CUDA_ARCH__)
  // Volta: the attention dispatch sends f16 before sm_75 to the FMA kernel; compile no substitute.
  (void)a, (void)b;
  __trap();
  for (int i = 0; i < 4; ++i) d[i] = c[i];
#elif defined(LLM_CUDA_EMULATION)
  // The emulator takes the path of the profile's architecture (the sm_75 one as two m16n8k8).
  const int sm = ::llm::emu::emulated_sm();
  if (sm >= 80) {
    mma_detail::mma_m16n8k16_shuffled<false>(d, a, b, c);
  } else {
    float e[4];
    mma_m16n8k8_f16(e, a, b[0], c);  // fails before sm_75
    mma_m16n8k8_f16(d, a + 2, b[1], e);
  }
#else
  // nvcc's host pass parses device code but never runs it.
  (void)a, (void)b;
  for (int i = 0; i < 4; ++i) d[i] = c[i];
#endif
}

}  // namespace llm::LLM_CUDA_NS
#endif  // device code
