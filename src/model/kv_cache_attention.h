// The attention of a block at inference: the new tokens of a batch of sequences (prefill chunks,
// single decode tokens, or a mix, as the server's continuous batching forms them) append their
// keys and values to each sequence's own slot of a KV cache and attend over everything cached
// there. The linear layers around it see one [N, *] matrix for all sequences (one GEMM for every
// row); only attention is per sequence.
#pragma once

#include <cstdint>
#include <span>

#include "model/qwen2_block.h"

namespace llm {

// The keys and values of every layer for `slots` sequences of up to `context` positions each:
// k, v [L, slots, context, Hkv, D] (flat), in the cache dtype. Slotted rather than paged: a slot
// is one contiguous [context, Hkv, D] run, so the attention kernels read it as they read a
// training sequence, and a slot is freed or reused by resetting its length on the host.
struct KvCacheViews {
  Tensor k, v;  // [L * slots * context * Hkv * D]
  int64_t slots = 0, context = 0, Hkv = 0, D = 0;
  Tensor k_at(int layer, int64_t slot) const { return at(k, layer, slot); }  // [1, context, Hkv, D]
  Tensor v_at(int layer, int64_t slot) const { return at(v, layer, slot); }

 private:
  Tensor at(const Tensor& t, int layer, int64_t slot) const {
    const int64_t run = context * Hkv * D;
    return t.range((int64_t(layer) * slots + slot) * run, run).view({1, context, Hkv, D});
  }
};

// One sequence's share of a batch: the next `rows` rows of qkv / att hold its new tokens, which
// go to cache positions [pos, pos + rows) of its slot.
struct SeqRows {
  int64_t slot = 0;
  int64_t pos = 0;  // tokens already in the slot
  int64_t rows = 0;
  // i32 [1] on the device holding pos. A one-token sequence reads its position from here, so a
  // decode step recorded once (CUDA graphs) serves every position.
  Tensor pos_dev;
};

class KvCacheAttention final : public BlockAttention {
 public:
  // cos, sin [P >= context, D/2] f32; seqs cover the batch's rows in order.
  KvCacheAttention(const BlockShape& s, const KvCacheViews& cache, int layer, std::span<const SeqRows> seqs,
                   const Tensor& cos, const Tensor& sin)
      : s_(s), cache_(cache), layer_(layer), seqs_(seqs), cos_(cos), sin_(sin) {}
  // qkv [N, Q], att [N, Hq D], N = the sum of seqs' rows
  void forward(Backend& be, const Tensor& qkv, const Tensor& att) const override;

 private:
  BlockShape s_;
  KvCacheViews cache_;
  int layer_;
  std::span<const SeqRows> seqs_;
  Tensor cos_, sin_;
};

}  // namespace llm
