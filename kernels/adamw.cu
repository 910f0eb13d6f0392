// Launch configuration: min(total chunks, 4096) blocks of 256 threads; a block takes chunks of
// kAdamWChunk elements in grid-stride order, finds the chunk's segment by binary search over the
// segment table, and its threads walk the chunk with float4 accesses (when the chunk starts on a
// 16-byte boundary; scalar otherwise and for the tail).
// The update is the CPU's (src/backend/cpu/adamw.cpp, torch.optim.AdamW's order) with correctly
// rounded intrinsics that nvcc cannot contract into FMAs, so both backends compute the same bits.
#include "adamw.cuh"
#include "device_util.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ void update(const AdamWArgs& a, float decay, float& p, float g, float& m, float& v) {
  const float gi = __fmul_rn(g, a.grad_scale);
  p = __fmul_rn(p, decay);
  m = __fadd_rn(__fmul_rn(m, a.beta1), __fmul_rn(gi, a.one_minus_beta1));
  v = __fadd_rn(__fmul_rn(v, a.beta2), __fmul_rn(__fmul_rn(a.one_minus_beta2, gi), gi));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), a.bc2_sqrt), a.eps);
  p = __fsub_rn(p, __fmul_rn(a.step_size, __fdiv_rn(m, denom)));
}

__device__ __forceinline__ void update_at(const AdamWArgs& a, float decay, int64_t i) {
  float p = a.param[i], m = a.m[i], v = a.v[i];
  update(a, decay, p, a.grad[i], m, v);
  a.param[i] = p;
  a.m[i] = m;
  a.v[i] = v;
  if (a.compute) dev::store(a.compute, a.compute_dtype, i, p);
}

__global__ void __launch_bounds__(kThreads)
    adamw_kernel(AdamWArgs a, const AdamWSeg* __restrict__ segs, int nseg, int64_t total_chunks, bool vec) {
  for (int64_t chunk = blockIdx.x; chunk < total_chunks; chunk += gridDim.x) {
    int lo = 0, hi = nseg - 1;  // the last segment with first_chunk <= chunk
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (segs[mid].first_chunk <= chunk) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    const AdamWSeg s = segs[lo];
    const int64_t begin = s.offset + (chunk - s.first_chunk) * kAdamWChunk;
    const int64_t end = begin + kAdamWChunk < s.offset + s.count ? begin + kAdamWChunk : s.offset + s.count;
    int64_t i = begin + threadIdx.x;
    if (vec && (begin & 3) == 0) {
      const int64_t quads = (end - begin) / 4;
      for (int64_t q = threadIdx.x; q < quads; q += kThreads) {
        const int64_t e = begin + 4 * q;
        float4 p = *reinterpret_cast<const float4*>(a.param + e), m = *reinterpret_cast<const float4*>(a.m + e);
        float4 v = *reinterpret_cast<const float4*>(a.v + e);
        const float4 g = *reinterpret_cast<const float4*>(a.grad + e);
        update(a, s.decay, p.x, g.x, m.x, v.x);
        update(a, s.decay, p.y, g.y, m.y, v.y);
        update(a, s.decay, p.z, g.z, m.z, v.z);
        update(a, s.decay, p.w, g.w, m.w, v.w);
        *reinterpret_cast<float4*>(a.param + e) = p;
        *reinterpret_cast<float4*>(a.m + e) = m;
        *reinterpret_cast<float4*>(a.v + e) = v;
        if (a.compute) {
          dev::store(a.compute, a.compute_dtype, e, p.x);
          dev::store(a.compute, a.compute_dtype, e + 1, p.y);
          dev::store(a.compute, a.compute_dtype, e + 2, p.z);
          dev::store(a.compute, a.compute_dtype, e + 3, p.w);
        }
      }
      i = begin + 4 * quads + threadIdx.x;
    }
    for (; i < end; i += kThreads) update_at(a, s.decay, i);
  }
}

}  // namespace

void adamw_segments(const AdamWArgs& args, const AdamWSeg* segs, int nseg, int64_t total_chunks, cudaStream_t stream) {
  if (total_chunks == 0) return;
  const bool vec =
      dev::aligned16(args.param) && dev::aligned16(args.grad) && dev::aligned16(args.m) && dev::aligned16(args.v);
  const auto blocks = static_cast<unsigned>(total_chunks < 4096 ? total_chunks : 4096);
  LLM_LAUNCH(adamw_kernel, dim3(blocks), dim3(kThreads), 0, stream, args, segs, nseg, total_chunks, vec);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
