// Launch configuration: 256 threads, grid-stride over the B*T*H*(D/2) rotation pairs, one pair
// (i, i + D/2) per item; consecutive threads take consecutive i, so a head's loads are coalesced.
// Arithmetic as in src/backend/cpu/rope.cpp.
#include "device_util.cuh"
#include "rope.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) rope_kernel(void* x, DType xt, int64_t T, int64_t H, int64_t half,
                                                        int64_t s0, int64_t s1, int64_t s2, const float* __restrict__ cos,
                                                        const float* __restrict__ sin, int64_t pos0, float sign,
                                                        int64_t items) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < items; it += stride) {
    const int64_t i = it % half;
    int64_t r = it / half;
    const int64_t h = r % H;
    r /= H;
    const int64_t t = r % T, b = r / T;
    const int64_t base = b * s0 + t * s1 + h * s2;
    const float c = cos[(pos0 + t) * half + i], si = sign * sin[(pos0 + t) * half + i];
    const float x1 = dev::load(x, xt, base + i), x2 = dev::load(x, xt, base + i + half);
    dev::store(x, xt, base + i, x1 * c - x2 * si);
    dev::store(x, xt, base + i + half, x2 * c + x1 * si);
  }
}

}  // namespace

void rope_inplace(void* x, DType xt, int64_t B, int64_t T, int64_t H, int64_t D, int64_t s0, int64_t s1, int64_t s2,
                  const float* cos, const float* sin, int64_t pos0, bool inverse, cudaStream_t stream) {
  const int64_t half = D / 2, items = B * T * H * half;
  if (items == 0) return;
  LLM_LAUNCH(rope_kernel, dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream, x, xt, T, H, half, s0, s1,
             s2, cos, sin, pos0, inverse ? -1.0f : 1.0f, items);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
