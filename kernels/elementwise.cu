// Launch configuration: 256 threads, grid-stride over chunks of dev::kVec = 8 elements (128-bit
// accesses when every operand is 16-byte aligned, scalar otherwise and for the tail), at most
// dev::kMaxBlocks blocks. Each thread reads a chunk before writing it, so out may alias a or b.
#include "device_util.cuh"
#include "elementwise.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    add_kernel(const void* a, DType at, const void* b, DType bt, void* out, DType ot, int64_t n, bool vec) {
  const int64_t chunks = (n + dev::kVec - 1) / dev::kVec;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < chunks; it += stride) {
    const int64_t i = it * dev::kVec;
    const int cnt = static_cast<int>(n - i < dev::kVec ? n - i : dev::kVec);
    float x[dev::kVec], y[dev::kVec];
    dev::load_chunk(a, at, i, cnt, vec, x);
    dev::load_chunk(b, bt, i, cnt, vec, y);
    LLM_UNROLL_8
    for (int k = 0; k < dev::kVec; ++k) x[k] += y[k];
    dev::store_chunk(out, ot, i, cnt, vec, x);
  }
}

__global__ void __launch_bounds__(kThreads) scale_kernel(void* x, DType xt, int64_t n, float s, bool vec) {
  const int64_t chunks = (n + dev::kVec - 1) / dev::kVec;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < chunks; it += stride) {
    const int64_t i = it * dev::kVec;
    const int cnt = static_cast<int>(n - i < dev::kVec ? n - i : dev::kVec);
    float v[dev::kVec];
    dev::load_chunk(x, xt, i, cnt, vec, v);
    LLM_UNROLL_8
    for (int k = 0; k < dev::kVec; ++k) v[k] *= s;
    dev::store_chunk(x, xt, i, cnt, vec, v);
  }
}

__global__ void __launch_bounds__(kThreads)
    dropout_kernel(void* x, DType xt, int64_t n, uint32_t threshold, float inv_keep, uint64_t seed, bool vec) {
  const int64_t chunks = (n + dev::kVec - 1) / dev::kVec;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < chunks; it += stride) {
    const int64_t i = it * dev::kVec;
    const int cnt = static_cast<int>(n - i < dev::kVec ? n - i : dev::kVec);
    float v[dev::kVec];
    dev::load_chunk(x, xt, i, cnt, vec, v);
    for (int k = 0; k < dev::kVec; ++k) {
      uint64_t h = seed ^ (static_cast<uint64_t>(i + k) * 0x9e3779b97f4a7c15ull);  // splitmix64
      h += 0x9e3779b97f4a7c15ull;
      h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
      h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
      h ^= h >> 31;
      v[k] = static_cast<uint32_t>(h >> 40) >= threshold ? v[k] * inv_keep : 0.0f;
    }
    dev::store_chunk(x, xt, i, cnt, vec, v);
  }
}

}  // namespace

void dropout_flat(void* x, DType xt, int64_t n, float p, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  const auto threshold = static_cast<uint32_t>(static_cast<double>(p) * 16777216.0);
  const float inv_keep = 1.0f / (1.0f - p);
  LLM_LAUNCH(dropout_kernel, dim3(dev::grid_for((n + dev::kVec - 1) / dev::kVec, kThreads)), dim3(kThreads), 0, stream,
             x, xt, n, threshold, inv_keep, seed, dev::aligned16(x));
  LLM_CUDA_CHECK(cudaGetLastError());
}

void add_flat(const void* a, DType at, const void* b, DType bt, void* out, DType ot, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  const bool vec = dev::aligned16(a) && dev::aligned16(b) && dev::aligned16(out);
  LLM_LAUNCH(add_kernel, dim3(dev::grid_for((n + dev::kVec - 1) / dev::kVec, kThreads)), dim3(kThreads), 0, stream, a,
             at, b, bt, out, ot, n, vec);
  LLM_CUDA_CHECK(cudaGetLastError());
}

void scale_flat(void* x, DType xt, int64_t n, float s, cudaStream_t stream) {
  if (n == 0) return;
  LLM_LAUNCH(scale_kernel, dim3(dev::grid_for((n + dev::kVec - 1) / dev::kVec, kThreads)), dim3(kThreads), 0, stream, x,
             xt, n, s, dev::aligned16(x));
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
