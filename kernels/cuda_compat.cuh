// The one header every CUDA source of the project includes (kernels/*.cu and the host side of
// the CUDA backend). It picks one of three worlds:
//   nvcc (__CUDACC__)                     the real CUDA headers; LLM_LAUNCH is <<<...>>>
//   host compiler + LLM_CUDA_EMULATION    the CPU emulator (src/backend/cuda/emu): kernels run as
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
#define LLM_DYNAMIC_SHARED(T, name)                                 \
  extern __shared__ __align__(16) unsigned char llm_dynamic_smem_[]; \
  T* name = reinterpret_cast<T*>(llm_dynamic_smem_)

#else
// ---- the emulator ----------------------------------------------------------------------------------
#include "../src/backend/cuda/emu/emulator.h"

#define LLM_CUDA_NS cuda_emu
#define LLM_CUDA_EMULATED 1
#define LLM_CUDA_ARCH LLM_EMU_ARCH
#define LLM_LAUNCH(kernel, grid, block, smem_bytes, stream, ...)                                        \
  ::llm::emu::launch_kernel(#kernel, __FILE__, __LINE__, kernel, (grid), (block), (smem_bytes), (stream) \
                                __VA_OPT__(, ) __VA_ARGS__)
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
#define LLM_CUDA_CHECK(call)                                                                           \
  do {                                                                                                 \
    const cudaError_t llm_cuda_err_ = (call);                                                          \
    if (llm_cuda_err_ != cudaSuccess) {                                                                \
      ::llm::fail(#call, " failed at ", __FILE__, ":", __LINE__, ": ", cudaGetErrorName(llm_cuda_err_), \
                  " (", cudaGetErrorString(llm_cuda_err_), ")");                                       \
    }                                                                                                  \
  } while (0)

#define LLM_CUBLAS_CHECK(call)                                                                      \
  do {                                                                                              \
    const cublasStatus_t llm_cublas_st_ = (call);                                                   \
    if (llm_cublas_st_ != CUBLAS_STATUS_SUCCESS) {                                                  \
      ::llm::fail(#call, " failed at ", __FILE__, ":", __LINE__, ": ",                               \
                  ::llm::cuda_detail::cublas_status_name(llm_cublas_st_));                          \
    }                                                                                               \
  } while (0)
