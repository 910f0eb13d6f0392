// Launch configuration: 256 threads, grid-stride over (row, chunk of dev::kVec = 8 columns of I)
// work items; 128-bit accesses when every row start and the u half (column I) are 16-byte aligned.
// The math follows src/backend/cpu/swiglu.cpp term by term (expf for its fast_exp, both ~2 ulp).
#include "device_util.cuh"
#include "swiglu.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    swiglu_forward_kernel(const void* __restrict__ gu, DType gt, int64_t ld_gu, void* __restrict__ out, DType ot,
                          int64_t ld_out, int64_t I, int64_t chunks, int64_t items, bool vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < items; it += stride) {
    const int64_t n = it / chunks, i = (it - n * chunks) * dev::kVec;
    const int cnt = static_cast<int>(I - i < dev::kVec ? I - i : dev::kVec);
    float g[dev::kVec], u[dev::kVec], o[dev::kVec];
    dev::load_chunk(gu, gt, n * ld_gu + i, cnt, vec, g);
    dev::load_chunk(gu, gt, n * ld_gu + I + i, cnt, vec, u);
    LLM_UNROLL_8
    for (int k = 0; k < dev::kVec; ++k) o[k] = g[k] / (1.0f + expf(-g[k])) * u[k];
    dev::store_chunk(out, ot, n * ld_out + i, cnt, vec, o);
  }
}

__global__ void __launch_bounds__(kThreads)
    swiglu_backward_kernel(const void* __restrict__ dout, DType dt, int64_t ld_dout, const void* __restrict__ gu,
                           DType gt, int64_t ld_gu, void* __restrict__ dgu, DType dgt, int64_t ld_dgu, int64_t I,
                           int64_t chunks, int64_t items, bool vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < items; it += stride) {
    const int64_t n = it / chunks, i = (it - n * chunks) * dev::kVec;
    const int cnt = static_cast<int>(I - i < dev::kVec ? I - i : dev::kVec);
    float d[dev::kVec], g[dev::kVec], u[dev::kVec];
    dev::load_chunk(dout, dt, n * ld_dout + i, cnt, vec, d);
    dev::load_chunk(gu, gt, n * ld_gu + i, cnt, vec, g);
    dev::load_chunk(gu, gt, n * ld_gu + I + i, cnt, vec, u);
    LLM_UNROLL_8
    for (int k = 0; k < dev::kVec; ++k) {
      // d/dg silu(g) u = sig (1 + g (1 - sig)) u;  d/du = silu(g). g and u are overwritten in place.
      const float sig = 1.0f / (1.0f + expf(-g[k]));
      const float dg = d[k] * u[k] * sig * (1.0f + g[k] * (1.0f - sig));
      u[k] = d[k] * g[k] * sig;
      g[k] = dg;
    }
    dev::store_chunk(dgu, dgt, n * ld_dgu + i, cnt, vec, g);
    dev::store_chunk(dgu, dgt, n * ld_dgu + I + i, cnt, vec, u);
  }
}

// The u half starts at column I: aligned when the row starts are and I elements are a multiple of 16 bytes.
bool half_aligned(const void* p, int64_t ld, int64_t I, DType t) {
  return dev::rows_aligned16(p, ld, dtype_size(t)) && (I * static_cast<int64_t>(dtype_size(t))) % 16 == 0;
}

}  // namespace

void swiglu_forward_rows(const void* gate_up, DType gt, int64_t ld_gu, void* out, DType ot, int64_t ld_out, int64_t N,
                         int64_t I, cudaStream_t stream) {
  if (N == 0 || I == 0) return;
  const int64_t chunks = (I + dev::kVec - 1) / dev::kVec, items = N * chunks;
  const bool vec = half_aligned(gate_up, ld_gu, I, gt) && dev::rows_aligned16(out, ld_out, dtype_size(ot));
  LLM_LAUNCH(swiglu_forward_kernel, dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream, gate_up, gt, ld_gu,
             out, ot, ld_out, I, chunks, items, vec);
  LLM_CUDA_CHECK(cudaGetLastError());
}

void swiglu_backward_rows(const void* dout, DType dt, int64_t ld_dout, const void* gate_up, DType gt, int64_t ld_gu,
                          void* dgate_up, DType dgt, int64_t ld_dgu, int64_t N, int64_t I, cudaStream_t stream) {
  if (N == 0 || I == 0) return;
  const int64_t chunks = (I + dev::kVec - 1) / dev::kVec, items = N * chunks;
  const bool vec = dev::rows_aligned16(dout, ld_dout, dtype_size(dt)) && half_aligned(gate_up, ld_gu, I, gt) &&
                   half_aligned(dgate_up, ld_dgu, I, dgt);
  LLM_LAUNCH(swiglu_backward_kernel, dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream, dout, dt, ld_dout,
             gate_up, gt, ld_gu, dgate_up, dgt, ld_dgu, I, chunks, items, vec);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
