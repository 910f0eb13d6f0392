// decode_attention on the CPU: one decode step composed of the CPU's own rope, copy and attention
// (the CPU runs every op at once, so the position is taken from the host's pos; pos_dev is not read).
#include "backend/cpu/cpu_backend.h"

namespace llm {

void CpuBackend::do_decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                                     const Tensor& v_cache, const Tensor& /*pos_dev*/, int64_t pos, const Tensor& out) {
  const int64_t Hkv = k_cache.size(2), Hq = qkv.size(2) - 2 * Hkv;
  do_rope(qkv.slice(2, 0, Hq + Hkv), cos, sin, pos, false, Tensor());
  do_copy(qkv.slice(2, Hq, Hq + Hkv), k_cache.slice(1, pos, pos + 1));
  do_copy(qkv.slice(2, Hq + Hkv, Hq + 2 * Hkv), v_cache.slice(1, pos, pos + 1));
  do_attention_forward(qkv.slice(2, 0, Hq), k_cache.slice(1, 0, pos + 1), v_cache.slice(1, 0, pos + 1), out, Tensor(),
                       Tensor());
}

}  // namespace llm
