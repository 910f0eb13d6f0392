// KvCacheAttention: per sequence, rope its new q and k at its own positions, append k and v to
// its cache slot, and attend causally over the slot's rows [0, pos + rows).
#include "model/kv_cache_attention.h"

namespace llm {

void KvCacheAttention::forward(Backend& be, const Tensor& qkv, const Tensor& att) const {
  const int64_t Hq = s_.Hq, Hkv = s_.Hkv, D = s_.D, Q = s_.Q();
  int64_t r0 = 0;
  for (const SeqRows& sq : seqs_) {
    const int64_t n = sq.rows, end = sq.pos + n;
    LLM_CHECK(sq.slot >= 0 && sq.slot < cache_.slots, "kv cache: slot ", sq.slot, " of ", cache_.slots);
    LLM_CHECK(n > 0 && sq.pos >= 0 && end <= cache_.context, "kv cache: positions [", sq.pos, ", ", end,
              ") exceed the context of ", cache_.context);
    const Tensor heads = qkv.range(r0 * Q, n * Q).view({1, n, Hq + 2 * Hkv, D});        // [1, n, Hq + 2Hkv, D]
    const Tensor out = att.range(r0 * Hq * D, n * Hq * D).view({1, n, Hq, D});          // [1, n, Hq, D]
    const Tensor kc = cache_.k_at(layer_, sq.slot), vc = cache_.v_at(layer_, sq.slot);  // [1, ctx, Hkv, D]
    if (n == 1) {
      // Rope, cache write and attention at the position held in pos_dev (== pos).
      be.decode_attention(heads, cos_, sin_, kc, vc, sq.pos_dev, sq.pos, out);
    } else {
      be.rope(heads.slice(2, 0, Hq + Hkv), cos_, sin_, sq.pos, false);            // q, k rotated
      be.copy(heads.slice(2, Hq, Hq + Hkv), kc.slice(1, sq.pos, end));            // k -> cache
      be.copy(heads.slice(2, Hq + Hkv, Hq + 2 * Hkv), vc.slice(1, sq.pos, end));  // v -> cache
      be.attention_forward(heads.slice(2, 0, Hq), kc.slice(1, 0, end), vc.slice(1, 0, end), out, Tensor());
    }
    r0 += n;
  }
  LLM_CHECK(r0 * Q == qkv.numel(), "kv cache: the sequences cover ", r0, " rows of a batch of ", qkv.numel() / Q);
}

}  // namespace llm
