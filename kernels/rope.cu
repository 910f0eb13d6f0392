// Launch configuration: 256 threads, grid-stride over the B*T*H*(D/2) rotation pairs, one pair
// (i, i + D/2) per item; consecutive threads take consecutive i, so a head's loads are coalesced.
// Arithmetic as in src/backend/cpu/rope.cpp. rope_append_kv (a decode step, position read on the
// device) has the same layout plus one item per element of the v heads.
#include "device_util.cuh"
#include "rope.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    rope_kernel(void* x, DType xt, int64_t T, int64_t H, int64_t half, int64_t s0, int64_t s1, int64_t s2,
                const float* __restrict__ cos, const float* __restrict__ sin, int64_t pos0,
                const int32_t* __restrict__ positions, int64_t P, float sign, int64_t items) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < items; it += stride) {
    const int64_t i = it % half;
    int64_t r = it / half;
    const int64_t h = r % H;
    r /= H;
    const int64_t t = r % T, b = r / T;
    const int64_t base = b * s0 + t * s1 + h * s2;
    // Per-token positions (packed documents) are clamped into the table: a bad one must not read outside it.
    int64_t at = pos0 + t;
    if (positions != nullptr) {
      at = positions[b * T + t];
      at = at < 0 ? 0 : at >= P ? P - 1 : at;
    }
    const float c = cos[at * half + i], si = sign * sin[at * half + i];
    const float x1 = dev::load(x, xt, base + i), x2 = dev::load(x, xt, base + i + half);
    dev::store(x, xt, base + i, x1 * c - x2 * si);
    dev::store(x, xt, base + i + half, x2 * c + x1 * si);
  }
}

// Items: (Hq + Hkv) * half rotation pairs, then Hkv * D elements of v. One token's heads are few
// (< 2^31 items), so the index arithmetic is 32-bit: a 64-bit division is a runtime call that
// costs registers (and spills).
__global__ void __launch_bounds__(kThreads)
    rope_append_kernel(void* qkv, DType dt, int Hq, int Hkv, int half, int64_t sh, const float* __restrict__ cos,
                       const float* __restrict__ sin, const int32_t* __restrict__ pos, int64_t P, void* kc, void* vc,
                       int64_t cst, int64_t csh) {
  // Clamped into the table and the cache: a bad position must not write outside them.
  const int64_t at = *pos;
  const int64_t p = at < 0 ? 0 : at >= P ? P - 1 : at;
  const int D = 2 * half, rot = (Hq + Hkv) * half, items = rot + Hkv * D;
  for (int it = static_cast<int>(blockIdx.x) * kThreads + static_cast<int>(threadIdx.x); it < items;
       it += static_cast<int>(gridDim.x) * kThreads) {
    if (it < rot) {
      const int i = it % half, h = it / half;
      const int64_t base = h * sh;
      const float c = cos[p * half + i], si = sin[p * half + i];
      const float x1 = dev::load(qkv, dt, base + i), x2 = dev::load(qkv, dt, base + i + half);
      const float y1 = x1 * c - x2 * si, y2 = x2 * c + x1 * si;
      dev::store(qkv, dt, base + i, y1);
      dev::store(qkv, dt, base + i + half, y2);
      if (h >= Hq) {  // a k head: the cache gets the same rounded values
        const int64_t row = p * cst + (h - Hq) * csh;
        dev::store(kc, dt, row + i, y1);
        dev::store(kc, dt, row + i + half, y2);
      }
    } else {
      const int j = it - rot, h = j / D, c = j % D;
      dev::store(vc, dt, p * cst + h * csh + c, dev::load(qkv, dt, (Hq + Hkv + h) * sh + c));
    }
  }
}

}  // namespace

void rope_append_kv(void* qkv, DType dt, int64_t Hq, int64_t Hkv, int64_t D, int64_t qkv_sh, const float* cos,
                    const float* sin, const int32_t* pos, int64_t P, void* k_cache, void* v_cache, int64_t cache_st,
                    int64_t cache_sh, cudaStream_t stream) {
  const int64_t half = D / 2, items = (Hq + Hkv) * half + Hkv * D;
  if (items == 0 || P == 0) return;
  LLM_CHECK(items < (int64_t(1) << 30), "decode_attention: ", Hq, " + ", Hkv, " heads of ", D, " are too many");
  LLM_LAUNCH(rope_append_kernel, dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream, qkv, dt,
             static_cast<int>(Hq), static_cast<int>(Hkv), static_cast<int>(half), qkv_sh, cos, sin, pos, P, k_cache,
             v_cache, cache_st, cache_sh);
  LLM_CUDA_CHECK(cudaGetLastError());
}

void rope_inplace(void* x, DType xt, int64_t B, int64_t T, int64_t H, int64_t D, int64_t s0, int64_t s1, int64_t s2,
                  const float* cos, const float* sin, int64_t pos0, const int32_t* positions, int64_t P, bool inverse,
                  cudaStream_t stream) {
  const int64_t half = D / 2, items = B * T * H * half;
  if (items == 0) return;
  LLM_LAUNCH(rope_kernel, dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream, x, xt, T, H, half, s0, s1,
             s2, cos, sin, pos0, positions, P, inverse ? -1.0f : 1.0f, items);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
