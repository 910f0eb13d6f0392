// Launch configuration: pass 1 has G = min(1024, ceil(n / 2048)) blocks of 256 threads; a thread
// takes chunks of dev::kVec = 8 elements (128-bit loads when x is 16-byte aligned) in grid-stride
// order, sums each chunk in fp32 and adds that to a double; the block sums its threads in double
// (fixed shuffle tree) into partial[b]. Pass 2 is one block adding the G partials in a fixed order.
// G depends on n only, so the result is the same bits on every GPU and every run.
// Range: a chunk whose fp32 sum overflows (or is NaN) is summed again in double, so finite inputs
// whose squares exceed fp32 (|x| > 1.8e19) stay finite as on the CPU, and inf/NaN inputs give a
// non-finite result. (fp32 squares below 1e-38 underflow; the CPU keeps them: irrelevant to a sum.)
#include "device_util.cuh"
#include "reduce.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGroups = 1024;

int64_t groups_for(int64_t n) {
  const int64_t g = (n + kThreads * dev::kVec - 1) / (kThreads * dev::kVec);
  return g < 1 ? 1 : (g > kMaxGroups ? kMaxGroups : g);
}

__global__ void __launch_bounds__(kThreads) partial_kernel(const void* __restrict__ x, DType xt, int64_t n,
                                                           bool squares, bool vec, double* __restrict__ partial) {
  __shared__ double scratch[33];
  const int64_t chunks = (n + dev::kVec - 1) / dev::kVec;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  double acc = 0.0;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < chunks; it += stride) {
    const int64_t i = it * dev::kVec;
    const int cnt = static_cast<int>(n - i < dev::kVec ? n - i : dev::kVec);
    float v[dev::kVec];
    dev::load_chunk(x, xt, i, cnt, vec, v);
    float s = 0.0f;
    LLM_UNROLL_8
    for (int k = 0; k < dev::kVec; ++k) s += squares ? v[k] * v[k] : v[k];
    if (isfinite(s)) {
      acc += s;
    } else {
      double d = 0.0;
      LLM_UNROLL_8
      for (int k = 0; k < dev::kVec; ++k) d += squares ? double(v[k]) * double(v[k]) : double(v[k]);
      acc += d;
    }
  }
  acc = dev::block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kThreads)
    final_kernel(const double* __restrict__ partial, int64_t groups, double* __restrict__ result) {
  __shared__ double scratch[33];
  double acc = 0.0;
  for (int64_t g = threadIdx.x; g < groups; g += kThreads) acc += partial[g];
  acc = dev::block_sum(acc, scratch);
  if (threadIdx.x == 0) *result = acc;
}

}  // namespace

size_t reduce_scratch(int64_t n) { return static_cast<size_t>(groups_for(n)) * sizeof(double); }

void reduce_to_double(const void* x, DType xt, int64_t n, bool squares, void* scratch, double* result,
                      cudaStream_t stream) {
  auto* partial = static_cast<double*>(scratch);
  const int64_t groups = groups_for(n);
  LLM_LAUNCH(partial_kernel, dim3(static_cast<unsigned>(groups)), dim3(kThreads), 0, stream, x, xt, n, squares,
             dev::aligned16(x), partial);
  LLM_CUDA_CHECK(cudaGetLastError());
  LLM_LAUNCH(final_kernel, dim3(1), dim3(kThreads), 0, stream, partial, groups, result);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
