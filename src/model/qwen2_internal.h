// Internals of Qwen2Model shared by its source files: views of one layer's weights, the
// activation plan, and the buffers behind it.
#pragma once

#include <vector>

#include "llm/model.h"

namespace llm {

// The parameter p of a flat buffer, in its HF shape.
inline Tensor param_view(const Tensor& flat, const ParamInfo& p) {
  const Tensor r = flat.range(p.offset, p.numel);
  switch (p.shape.size()) {
    case 1: return r;
    case 2: return r.view({p.shape[0], p.shape[1]});
    default: fail("parameters: ", p.name, " has an unexpected rank ", p.shape.size());
  }
}

struct Qwen2Model::Layer {
  // weights, compute dtype
  Tensor ln1_w;      // [C]
  Tensor qkv_w;      // [(Hq + 2 Hkv) D, C]: q_proj, k_proj, v_proj stacked
  Tensor qkv_b;      // [(Hq + 2 Hkv) D]
  Tensor o_w;        // [C, Hq D]
  Tensor ln2_w;      // [C]
  Tensor gate_up_w;  // [2 I, C]: gate_proj, up_proj stacked
  Tensor down_w;     // [C, I]
  // gradients, f32, same shapes
  Tensor d_ln1_w, d_qkv_w, d_qkv_b, d_o_w, d_ln2_w, d_gate_up_w, d_down_w;
};

// What one layer keeps between its forward and backward, as views of N = B*T rows.
struct Qwen2Model::LayerActs {
  Tensor ln1;      // [N, C]  input_layernorm output
  Tensor rstd1;    // [N] f32
  Tensor qkv;      // [N, (Hq + 2 Hkv) D], rotary applied to q and k
  Tensor att;      // [N, Hq D] attention output (before o_proj)
  Tensor lse;      // [B, Hq, T] f32 softmax log-sum-exp per query
  Tensor h2;       // [N, C]  residual after attention
  Tensor ln2;      // [N, C]  post_attention_layernorm output
  Tensor rstd2;    // [N] f32
  Tensor gate_up;  // [N, 2 I]
  Tensor act;      // [N, I]  silu(gate) * up
};

// One activation kind: `copies` slices of `per_copy` elements; a kind the recompute policy keeps
// has one copy per layer, a recomputed kind one shared copy.
struct ActSlot {
  OwnedTensor storage;
  int64_t per_copy = 0;
  bool per_layer = false;
  Tensor at(int l, int64_t n) const {
    return storage->range((per_layer ? l : 0) * per_copy, n);
  }
};

struct Qwen2Model::Buffers {
  OwnedTensor ids, targets;  // [maxN] i32
  OwnedTensor xs;            // [(L + 1) maxN C] residual stream at each layer boundary
  ActSlot ln1, rstd1, qkv, att, lse, h2, ln2, rstd2, gate_up, act;
  OwnedTensor proj;          // [maxN C] o_proj / down_proj output before the residual add
  OwnedTensor x_scratch;     // [maxN C] layer output when a layer is recomputed
  OwnedTensor hf, rstd_f;    // final norm output [maxN C], rstd [maxN] f32
  OwnedTensor losses;        // [maxN] f32
  // backward
  OwnedTensor dhf, dres, dln, datt, dqkv, dgate_up, dact;
  OwnedTensor rope_cos, rope_sin;  // [max_seq, D/2] f32
};

}  // namespace llm
