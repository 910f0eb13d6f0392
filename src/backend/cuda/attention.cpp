// attention_forward / attention_backward on the CUDA backend: the kernels' own limits (the shapes are
// checked by the Backend's ops), then the kernel family for the shapes (kernels/attention.cuh,
// docs/cuda.md):
//   Tq == 1                                     decode kernel (+ split combine)
//   f16 on sm_75+ / bf16 on sm_80+, D 64 or 128, 16-byte aligned views   tensor-core kernels
//   anything else (fp32, other even D <= 128)    fp32 FMA tile kernels
//   document masking (positions), any dtype     fp32 FMA tile kernels
// Extra device memory is only the backend workspace, O(B Hq T D) at most, never O(T^2):
// backward delta [B, Hq, T] f32 and, when a kv group's heads are split across blocks, dK/dV
// partials [parts, B, T, Hkv, D] f32 (parts <= Hq / Hkv); decode partials [B, Hq, splits, D + 2].
// decode_attention (one inference step, position in device memory so CUDA graphs can replay it):
// kernels/rope.cu's rope_append_kv, then the decode kernel over the whole cache.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "attention.cuh"
#include "backend/cuda/cuda_backend.h"
#include "rope.cuh"

namespace llm::LLM_CUDA_NS {

namespace {

// The CUDA kernels' limits on checked q, out [B, Tq, Hq, D] and k, v [B, Tk, Hkv, D] (the CPU op
// has none of these), and the kernels' view of the sizes.
AttnDims attn_dims(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const char* op) {
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), Hq = q.size(2), Hkv = k.size(2), D = q.size(3);
  LLM_CHECK(D % 2 == 0 && D <= 128, op, ": head_dim ", D, " is not supported on the CUDA backend (even, at most 128)");
  LLM_CHECK(B < 65536 && Hq < 65536 && Tk < (int64_t(1) << 30), op, ": ", q.shape_str(), " with ", Tk,
            " keys is too large for the CUDA kernels' grid");
  for (const Tensor* t : {&k, &v, &out}) {
    LLM_CHECK(t->dtype() == q.dtype(), op,
              ": q, k, v, out (and gradients) must share one dtype on the CUDA "
              "backend, got ",
              q.shape_str(), " and ", t->shape_str());
  }
  AttnDims d;
  d.B = static_cast<int>(B), d.Tq = static_cast<int>(Tq), d.Tk = static_cast<int>(Tk);
  d.Hq = static_cast<int>(Hq), d.Hkv = static_cast<int>(Hkv), d.D = static_cast<int>(D);
  d.group = d.Hq / d.Hkv;
  d.scale = 1.0f / std::sqrt(static_cast<float>(D));
  d.dtype = q.dtype() == DType::F32 ? AttnDtype::F32 : q.dtype() == DType::F16 ? AttnDtype::F16 : AttnDtype::BF16;
  return d;
}

AttnHeads heads(const Tensor& t) { return {t.data(), t.stride(0), t.stride(1), t.stride(2)}; }

// The tensor-core kernels copy 16-byte row chunks and store 32-bit pairs.
bool aligned16(const Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data()) % 16 == 0 && t.stride(0) % 8 == 0 && t.stride(1) % 8 == 0 &&
         t.stride(2) % 8 == 0;
}

bool use_tensor_cores(const CudaBackend& be, const AttnDims& d, std::initializer_list<const Tensor*> ts) {
  const bool arch =
      (d.dtype == AttnDtype::F16 && be.sm_version() >= 75) || (d.dtype == AttnDtype::BF16 && be.sm_version() >= 80);
  if (!arch || (d.D != 64 && d.D != 128)) return false;
  return std::all_of(ts.begin(), ts.end(), [](const Tensor* t) { return aligned16(*t); });
}

// Blocks worth launching: two waves of the GPU's SMs.
int64_t target_blocks(const CudaBackend& be) { return 2 * int64_t(std::max(1, be.props().multiProcessorCount)); }

// The decode kernel over d.Tk keys: split the keys so that about two waves of blocks run; a
// split is a multiple of 128 keys.
void decode(CudaBackend& be, const AttnFwdArgs& a) {
  const AttnDims& d = a.d;
  const int64_t per_split_blocks = int64_t(d.B) * d.Hkv * ((d.group + 7) / 8);
  const int64_t want = std::max<int64_t>(1, target_blocks(be) / per_split_blocks);
  const int64_t granules = (d.Tk + kAttnDecodeKeys - 1) / kAttnDecodeKeys;
  const int64_t per = (granules + std::min(want, granules) - 1) / std::min(want, granules);
  const int keys_per_split = static_cast<int>(per * kAttnDecodeKeys);
  const int splits = static_cast<int>((d.Tk + keys_per_split - 1) / keys_per_split);
  const int64_t ws = attn_decode_workspace(d, splits);
  float* wsp = ws > 0 ? static_cast<float*>(be.workspace(static_cast<size_t>(ws) * sizeof(float))) : nullptr;
  attn_decode(a, splits, keys_per_split, wsp, be.stream());
}

}  // namespace

void CudaBackend::do_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                       const Tensor& lse, const Tensor& positions) {
  const AttnDims d = attn_dims(q, k, v, out, "attention_forward");
  if (d.B == 0 || d.Tq == 0 || d.Hq == 0) return;
  AttnFwdArgs a;
  a.d = d;
  a.q = heads(q), a.k = heads(k), a.v = heads(v), a.out = heads(out);
  a.lse = lse.empty() ? nullptr : lse.ptr<float>();
  a.positions = positions.empty() ? nullptr : positions.ptr<int32_t>();
  if (d.Tq == 1 && a.positions == nullptr) {
    decode(*this, a);
  } else if (a.positions == nullptr && use_tensor_cores(*this, d, {&q, &k, &v, &out})) {
    attn_fwd_tc(a, stream());
  } else {
    attn_fwd_simt(a, stream());
  }
}

// One decode step at the position held in device memory (Backend::decode_attention): the rope
// and cache write in one kernel, then the decode kernel over the whole cache with the key count
// read on the device. The grid is sized for the whole cache, independent of the position, so a
// captured step replays unchanged; splits past the position exit at once.
void CudaBackend::do_decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                                      const Tensor& v_cache, const Tensor& pos_dev, int64_t /*pos*/,
                                      const Tensor& out) {
  const int64_t Hkv = k_cache.size(2), P = k_cache.size(1), D = k_cache.size(3), Hq = qkv.size(2) - 2 * Hkv;
  const Tensor q = qkv.slice(2, 0, Hq);
  const AttnDims d = attn_dims(q, k_cache, v_cache, out, "decode_attention");
  rope_append_kv(qkv.data(), qkv.dtype(), Hq, Hkv, D, qkv.stride(2), cos.ptr<float>(), sin.ptr<float>(),
                 pos_dev.ptr<int32_t>(), P, k_cache.data(), v_cache.data(), k_cache.stride(1), k_cache.stride(2),
                 stream_);
  AttnFwdArgs a;
  a.d = d;
  a.q = heads(q), a.k = heads(k_cache), a.v = heads(v_cache), a.out = heads(out);
  a.pos = pos_dev.ptr<int32_t>();
  decode(*this, a);
}

void CudaBackend::do_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                        const Tensor& out, const Tensor& lse, const Tensor& dq, const Tensor& dk,
                                        const Tensor& dv, const Tensor& positions) {
  const char* op = "attention_backward";
  const AttnDims d = attn_dims(q, k, v, out, op);
  const int64_t B = q.size(0), T = q.size(1), Hq = q.size(2), Hkv = k.size(2), D = q.size(3);
  for (const Tensor* t : {&dout, &dq, &dk, &dv}) {
    LLM_CHECK(t->dtype() == q.dtype(), op,
              ": q, k, v, out (and gradients) must share one dtype on the CUDA "
              "backend, got ",
              q.shape_str(), " and ", t->shape_str());
  }
  if (d.B == 0 || T == 0) return;

  AttnBwdArgs a;
  a.d = d;
  a.q = heads(q), a.k = heads(k), a.v = heads(v), a.out = heads(out), a.dout = heads(dout);
  a.dq = heads(dq), a.dk = heads(dk), a.dv = heads(dv);
  a.lse = lse.ptr<float>();
  a.positions = positions.empty() ? nullptr : positions.ptr<int32_t>();
  // Document masking runs on the FMA kernels (the tensor-core ones have no per-row key start yet).
  const bool tc = a.positions == nullptr && use_tensor_cores(*this, d, {&q, &k, &v, &out, &dout, &dq, &dk, &dv});
  // dK/dV blocks own a key tile of a kv head and loop over its query heads; when that gives too
  // few blocks to fill the GPU (few kv heads, short sequences), the group's heads are split into
  // parts whose fp32 partials are summed afterwards in part order.
  const int64_t key_tiles =
      (T + (tc ? kAttnTcKeyRows : kAttnSimtKeyRows) - 1) / (tc ? kAttnTcKeyRows : kAttnSimtKeyRows);
  const int64_t blocks = B * Hkv * key_tiles;
  int parts = 1;
  if (d.group > 1 && blocks < target_blocks(*this)) {
    const int64_t want = std::min<int64_t>(d.group, (target_blocks(*this) + blocks - 1) / blocks);
    const int per_part = static_cast<int>((d.group + want - 1) / want);
    parts = (d.group + per_part - 1) / per_part;
  }
  a.parts = parts;
  const int64_t delta_floats = (B * Hq * T + 63) / 64 * 64;  // keeps the partials 256-byte aligned
  const int64_t part_floats = parts > 1 ? int64_t(parts) * B * T * Hkv * D : 0;
  auto* ws = static_cast<float*>(workspace(static_cast<size_t>(delta_floats + 2 * part_floats) * sizeof(float)));
  a.delta = ws;
  if (parts > 1) {
    a.dk_part = ws + delta_floats;
    a.dv_part = a.dk_part + part_floats;
  }
  attn_bwd_delta(a, stream());
  if (tc) {
    attn_bwd_tc(a, stream());
  } else {
    attn_bwd_simt(a, stream());
  }
  if (parts > 1) attn_bwd_reduce_parts(a, stream());
}

}  // namespace llm::LLM_CUDA_NS
