// The softmax / loss / dlogits kernel of the fused output layer (one block per row of a chunk's
// logits) and the small helpers around it. The GEMMs are cuBLASLt (src/backend/cuda/cross_entropy.cpp).
#include <climits>
#include <cmath>

#include "cross_entropy.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kRowThreads = 512;  // a vocabulary row is 150k floats: plenty of work per thread
constexpr int kRowWarps = kRowThreads / 32;

// A running (max, sum of exp(x - max)) pair: the online softmax statistics.
struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  // A side that saw no element has m = -inf, s = 0; exp(-inf - -inf) would be nan, so the side
  // holding the max is taken as is. Symmetric in a and b, so every lane of a butterfly agrees.
  const float sa = a.m == m ? a.s : a.s * expf(a.m - m);
  const float sb = b.m == m ? b.s : b.s * expf(b.m - m);
  return {m, sa + sb};
}

__device__ __forceinline__ MaxSum warp_combine(MaxSum a) {
  for (int o = 16; o > 0; o /= 2) {
    const MaxSum b{__shfl_xor_sync(0xffffffffu, a.m, o), __shfl_xor_sync(0xffffffffu, a.s, o)};
    a = combine(a, b);
  }
  return a;
}

// The CPU op's formula for a row with a target: exp(l - max) * (grad_scale / sum), minus
// grad_scale at the target (k = grad_scale / sum). Both dlogits kernels below use it.
__device__ __forceinline__ float dlogit(float l, float m, float k, bool at_target, float grad_scale) {
  const float p = expf(l - m) * k;
  return at_target ? p - grad_scale : p;
}

__device__ __forceinline__ void store_f(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f(__half* p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_f(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }

// One block per row. Pass 1 reads the row once, keeping the online (max, sum) per thread (one
// exp per element); the block combines them in a fixed tree, so the result is deterministic.
// Pass 2 (gradients only) reads the row again and writes dlogits. Memory-bound: 4 bytes read per
// logit without gradients, 8 read + sizeof(T) written with.
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    softmax_rows_kernel(const float* logits, int64_t vocab, const int32_t* __restrict__ targets, int64_t target_stride,
                        float* __restrict__ losses, int64_t loss_stride, T* dlogits, float grad_scale,
                        float* __restrict__ stats) {
  __shared__ MaxSum warp_stats[kRowWarps];
  __shared__ MaxSum row_stats;
  __shared__ float target_logit;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int64_t row = blockIdx.x;
  const float* l = logits + row * vocab;
  const int32_t t = targets[row * target_stride];

  MaxSum a{-INFINITY, 0.0f};
  for (int64_t j = threadIdx.x; j < vocab; j += kRowThreads) {
    const float x = l[j];
    if (x > a.m) {
      a.s = a.s * expf(a.m - x) + 1.0f;
      a.m = x;
    } else {
      a.s += expf(x - a.m);
    }
  }
  a = warp_combine(a);
  if (lane == 0) warp_stats[warp] = a;
  // Read before any thread of pass 2 may overwrite it in place.
  if (threadIdx.x == 0) target_logit = t >= 0 ? l[t] : 0.0f;
  __syncthreads();
  if (warp == 0) {
    a = warp_combine(lane < kRowWarps ? warp_stats[lane] : MaxSum{-INFINITY, 0.0f});
    if (lane == 0) {
      row_stats = a;
      losses[row * loss_stride] = t >= 0 ? (a.m + logf(a.s)) - target_logit : 0.0f;
      if (stats != nullptr) {
        stats[2 * row] = a.m;
        stats[2 * row + 1] = a.s;
      }
    }
  }
  if (dlogits == nullptr) return;  // the same for every thread of the grid
  __syncthreads();
  const MaxSum st = row_stats;
  T* d = dlogits + row * vocab;
  const float k = t >= 0 ? grad_scale / st.s : 0.0f;
  for (int64_t j = threadIdx.x; j < vocab; j += kRowThreads) {
    store_f(d + j, t >= 0 ? dlogit(l[j], st.m, k, j == t, grad_scale) : 0.0f);
  }
}

// A grid-stride loop over the elements of logits [rows, cols]: the formula of the second pass above.
template <class T>
__global__ void dlogits_cols_kernel(const float* logits, int64_t rows, int64_t cols, int64_t col0,
                                    const int32_t* __restrict__ targets, int64_t target_stride,
                                    const float* __restrict__ stats, T* dlogits, float grad_scale) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * cols; i += step) {
    const int64_t r = i / cols, j = i - r * cols;
    const int32_t t = targets[r * target_stride];
    const float p =
        t >= 0 ? dlogit(logits[i], stats[2 * r], grad_scale / stats[2 * r + 1], j + col0 == t, grad_scale) : 0.0f;
    store_f(dlogits + i, p);
  }
}

__global__ void check_targets_kernel(const int32_t* __restrict__ targets, int64_t stride, int64_t count, int64_t vocab,
                                     int* __restrict__ flag) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += step) {
    if (targets[i * stride] >= vocab) atomicMin(flag, static_cast<int>(i));
  }
}

template <class T>
__global__ void store_rows_kernel(const float* __restrict__ src, int64_t rows, int64_t cols, T* __restrict__ dst,
                                  int64_t ld) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < rows * cols; i += step) {
    store_f(dst + (i / cols) * ld + i % cols, src[i]);
  }
}

unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 4096 ? 4096 : blocks));
}

}  // namespace

void ce_check_targets(const int32_t* targets, int64_t stride, int64_t count, int64_t vocab, int* flag,
                      cudaStream_t stream) {
  if (count == 0) return;
  LLM_LAUNCH(check_targets_kernel, dim3(grid_for(count, 256)), dim3(256), 0, stream, targets, stride, count, vocab,
             flag);
  LLM_CUDA_CHECK(cudaGetLastError());
}

void ce_softmax_rows(float* logits, int64_t rows, int64_t vocab, const int32_t* targets, int64_t target_stride,
                     float* losses, int64_t loss_stride, void* dlogits, DType dt, float grad_scale, float* stats,
                     cudaStream_t stream) {
  if (rows == 0) return;
  const dim3 grid(static_cast<unsigned>(rows)), block(kRowThreads);
  switch (dt) {
    case DType::F16:
      LLM_LAUNCH(softmax_rows_kernel<__half>, grid, block, 0, stream, logits, vocab, targets, target_stride, losses,
                 loss_stride, static_cast<__half*>(dlogits), grad_scale, stats);
      break;
    case DType::BF16:
      LLM_LAUNCH(softmax_rows_kernel<__nv_bfloat16>, grid, block, 0, stream, logits, vocab, targets, target_stride,
                 losses, loss_stride, static_cast<__nv_bfloat16*>(dlogits), grad_scale, stats);
      break;
    default:
      LLM_LAUNCH(softmax_rows_kernel<float>, grid, block, 0, stream, logits, vocab, targets, target_stride, losses,
                 loss_stride, static_cast<float*>(dlogits), grad_scale, stats);
      break;
  }
  LLM_CUDA_CHECK(cudaGetLastError());
}

void ce_dlogits_cols(const float* logits, int64_t rows, int64_t cols, int64_t col0, const int32_t* targets,
                     int64_t target_stride, const float* stats, void* dlogits, DType dt, float grad_scale,
                     cudaStream_t stream) {
  if (rows * cols == 0) return;
  const dim3 grid(grid_for(rows * cols, 256)), block(256);
  switch (dt) {
    case DType::F16:
      LLM_LAUNCH(dlogits_cols_kernel<__half>, grid, block, 0, stream, logits, rows, cols, col0, targets, target_stride,
                 stats, static_cast<__half*>(dlogits), grad_scale);
      break;
    case DType::BF16:
      LLM_LAUNCH(dlogits_cols_kernel<__nv_bfloat16>, grid, block, 0, stream, logits, rows, cols, col0, targets,
                 target_stride, stats, static_cast<__nv_bfloat16*>(dlogits), grad_scale);
      break;
    default:
      LLM_LAUNCH(dlogits_cols_kernel<float>, grid, block, 0, stream, logits, rows, cols, col0, targets, target_stride,
                 stats, static_cast<float*>(dlogits), grad_scale);
      break;
  }
  LLM_CUDA_CHECK(cudaGetLastError());
}

void ce_store_rows(const float* src, int64_t rows, int64_t cols, void* dst, DType dt, int64_t ld, cudaStream_t stream) {
  if (rows * cols == 0) return;
  const dim3 grid(grid_for(rows * cols, 256)), block(256);
  switch (dt) {
    case DType::F16:
      LLM_LAUNCH(store_rows_kernel<__half>, grid, block, 0, stream, src, rows, cols, static_cast<__half*>(dst), ld);
      break;
    case DType::BF16:
      LLM_LAUNCH(store_rows_kernel<__nv_bfloat16>, grid, block, 0, stream, src, rows, cols,
                 static_cast<__nv_bfloat16*>(dst), ld);
      break;
    default:
      LLM_LAUNCH(store_rows_kernel<float>, grid, block, 0, stream, src, rows, cols, static_cast<float*>(dst), ld);
      break;
  }
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
