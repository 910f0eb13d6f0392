// quantize and quant_embedding kernels. quantize must give the CPU op's bytes exactly, so it
// follows the same arithmetic: amax over the group, scale = amax / qmax and q = w / scale as
// correctly rounded fp32 divisions, rintf (ties to even), clamp. quant_embedding's values are
// float(q) * scale rounded once, as on the CPU.
#include <cfloat>

#include "quant_device.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

using namespace quant_detail;

constexpr int kQuantizeThreads = 256;

// One warp per (row, group). quantize runs once per model load, so the simple mapping wins over
// speed; it still reads and writes coalesced runs of the row.
template <class T, bool kInt4>
__global__ void __launch_bounds__(kQuantizeThreads)
    quantize_kernel(const T* __restrict__ w, int64_t w_ld, QuantDev q, int* __restrict__ bad_row) {
  constexpr float kQmax = kInt4 ? 7.0f : 127.0f;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kQuantizeThreads / 32);
  const int64_t groups = q.cols / q.group, items = q.rows * groups;
  uint8_t* const data = const_cast<uint8_t*>(q.data);
  float* const scales = const_cast<float*>(q.scales);
  for (int64_t item = static_cast<int64_t>(blockIdx.x) * (kQuantizeThreads / 32) + (threadIdx.x >> 5); item < items;
       item += warps) {
    const int64_t r = item / groups, g = item % groups;
    const T* src = w + r * w_ld + g * q.group;
    float amax = 0.0f;
    bool finite = true;
    for (int64_t c = lane; c < q.group; c += 32) {
      const float a = fabsf(to_f(src[c]));
      finite = finite && a <= FLT_MAX;  // false for inf and nan
      amax = fmaxf(amax, a);
    }
    for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    if (!__all_sync(0xffffffffu, finite)) {
      if (lane == 0) atomicMin(bad_row, static_cast<int>(r));
      continue;  // the whole warp: the vote is uniform
    }
    // A zero group, or one whose amax / qmax underflows to 0, has scale 0 and q = 0.
    const float scale = __fdiv_rn(amax, kQmax);
    if (lane == 0) scales[r * q.scales_ld + g] = scale;
    if constexpr (kInt4) {
      uint8_t* dst = data + r * q.data_ld + g * q.group / 2;
      for (int64_t j = lane; j < q.group / 2; j += 32) {
        int lo = 0, hi = 0;
        if (scale != 0.0f) {
          lo = static_cast<int>(fminf(fmaxf(rintf(__fdiv_rn(to_f(src[2 * j]), scale)), -kQmax), kQmax));
          hi = static_cast<int>(fminf(fmaxf(rintf(__fdiv_rn(to_f(src[2 * j + 1]), scale)), -kQmax), kQmax));
        }
        dst[j] = static_cast<uint8_t>((lo + 8) | ((hi + 8) << 4));
      }
    } else {
      int8_t* dst = reinterpret_cast<int8_t*>(data + r * q.data_ld + g * q.group);
      for (int64_t c = lane; c < q.group; c += 32) {
        int v = 0;
        if (scale != 0.0f) v = static_cast<int>(fminf(fmaxf(rintf(__fdiv_rn(to_f(src[c]), scale)), -kQmax), kQmax));
        dst[c] = static_cast<int8_t>(v);
      }
    }
  }
}

// One block per token, threads across the columns.
__global__ void embedding_kernel(const int32_t* __restrict__ ids, QuantDev t, void* out, DType out_type, int64_t out_ld,
                                 int* __restrict__ bad) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  if (id < 0 || id >= t.rows) {  // the same for every thread of the block (no barrier below)
    if (threadIdx.x == 0) atomicMin(bad, static_cast<int>(i));
    return;
  }
  const uint8_t* row = t.data + id * t.data_ld;
  const float* s = t.scales + id * t.scales_ld;
  for (int64_t c = threadIdx.x; c < t.cols; c += blockDim.x) {
    store_any(out, out_type, i * out_ld + c, static_cast<float>(quant_at(row, c, t.int4)) * s[c / t.group]);
  }
}

template <class T>
void launch_quantize(const FloatRows& w, const QuantDev& q, int* bad_row, cudaStream_t stream) {
  const int64_t items = q.rows * (q.cols / q.group);
  const int64_t blocks = (items + kQuantizeThreads / 32 - 1) / (kQuantizeThreads / 32);
  const dim3 grid(static_cast<unsigned>(blocks < 8192 ? blocks : 8192)), block(kQuantizeThreads);
  const T* src = static_cast<const T*>(w.ptr);
  if (q.int4) {
    LLM_LAUNCH((quantize_kernel<T, true>), grid, block, 0, stream, src, w.ld, q, bad_row);
  } else {
    LLM_LAUNCH((quantize_kernel<T, false>), grid, block, 0, stream, src, w.ld, q, bad_row);
  }
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void quant_quantize(const FloatRows& w, const QuantDev& q, int* bad_row, cudaStream_t stream) {
  if (q.rows == 0 || q.cols == 0) return;
  switch (w.type) {
    case DType::F16: return launch_quantize<__half>(w, q, bad_row, stream);
    case DType::BF16: return launch_quantize<__nv_bfloat16>(w, q, bad_row, stream);
    default: return launch_quantize<float>(w, q, bad_row, stream);
  }
}

void quant_embedding_rows(const int32_t* ids, int64_t n, const QuantDev& table, void* out, DType out_type,
                          int64_t out_ld, int* bad, cudaStream_t stream) {
  if (n == 0) return;  // with cols == 0 the launch still checks the ids
  const int threads = table.cols >= 256 ? 256 : 64;
  LLM_LAUNCH(embedding_kernel, dim3(static_cast<unsigned>(n)), dim3(static_cast<unsigned>(threads)), 0, stream, ids,
             table, out, out_type, out_ld, bad);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
