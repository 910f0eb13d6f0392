#include "sample_reduce.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  return v;  // lane 0 holds the warp's sum
}

template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    block_sums_kernel(const float* __restrict__ x, int64_t n, float* __restrict__ partial) {
  static_assert(kThreads % 32 == 0 && kThreads <= 1024, "whole warps");
  __shared__ float warp_sums[kThreads / 32];
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  float v = 0.0f;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n; i += stride) v += x[i];
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {  // second stage: the other warps are done and may have exited
    v = lane < kThreads / 32 ? warp_sums[lane] : 0.0f;
    v = warp_sum(v);
    if (lane == 0) partial[blockIdx.x] = v;
  }
}

__global__ void row_sums_kernel(const float* __restrict__ x, int cols, float* __restrict__ out) {
  LLM_DYNAMIC_SHARED(float, warp_sums);  // [blockDim.x / 32]
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int warps = static_cast<int>(blockDim.x) >> 5;
  const float* row = x + static_cast<int64_t>(blockIdx.x) * cols;
  float v = 0.0f;
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += static_cast<int>(blockDim.x)) v += row[c];
  v = warp_sum(v);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < warps ? warp_sums[lane] : 0.0f;
    v = warp_sum(v);
    if (lane == 0) out[blockIdx.x] = v;
  }
}

}  // namespace

void sample_block_sums(const float* x, int64_t n, float* partial, int blocks, cudaStream_t stream) {
  LLM_LAUNCH((block_sums_kernel<256>), dim3(static_cast<unsigned>(blocks)), dim3(256), 0, stream, x, n, partial);
  LLM_CUDA_CHECK(cudaGetLastError());
}

void sample_row_sums(const float* x, int rows, int cols, float* out, int threads, cudaStream_t stream) {
  LLM_CHECK(threads % 32 == 0 && threads >= 32 && threads <= 1024, "sample_row_sums: threads is ", threads,
            ", expected a multiple of 32 in [32, 1024]");
  const size_t smem = static_cast<size_t>(threads / 32) * sizeof(float);
  LLM_LAUNCH(row_sums_kernel, dim3(static_cast<unsigned>(rows)), dim3(static_cast<unsigned>(threads)), smem, stream, x,
             cols, out);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
