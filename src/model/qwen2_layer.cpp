// One Qwen2 decoder layer: layer_forward / layer_backward, the recompute step between them, and
// the activation plan that decides what is kept.
#include <cmath>

#include "llm/error.h"
#include "model/qwen2_internal.h"
#include "model/rope_tables.h"

namespace llm {

Qwen2Model::Layer Qwen2Model::bind_layer(int l) const {
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.qkv_dim();
  const int64_t HqD = cfg_.num_attention_heads * cfg_.head_dim();
  auto block = [&](const Tensor& flat, const char* first, std::initializer_list<int64_t> shape) {
    const ParamInfo& p = table_.at(ParamTable::layer_name(l, first));
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const Tensor r = flat.range(p.offset, n);
    return shape.size() == 1 ? r : r.view(shape);
  };
  auto bind = [&](const Tensor& flat, Tensor Layer::*ln1, Tensor Layer::*qkv_w, Tensor Layer::*qkv_b,
                  Tensor Layer::*o_w, Tensor Layer::*ln2, Tensor Layer::*gu, Tensor Layer::*down, Layer& out) {
    out.*ln1 = block(flat, "input_layernorm.weight", {C});
    out.*qkv_w = block(flat, "self_attn.q_proj.weight", {Q, C});
    out.*qkv_b = block(flat, "self_attn.q_proj.bias", {Q});
    out.*o_w = block(flat, "self_attn.o_proj.weight", {C, HqD});
    out.*ln2 = block(flat, "post_attention_layernorm.weight", {C});
    out.*gu = block(flat, "mlp.gate_proj.weight", {2 * I, C});
    out.*down = block(flat, "mlp.down_proj.weight", {C, I});
  };
  Layer L;
  bind(weights_.t(), &Layer::ln1_w, &Layer::qkv_w, &Layer::qkv_b, &Layer::o_w, &Layer::ln2_w, &Layer::gate_up_w,
       &Layer::down_w, L);
  if (opts_.training) {
    bind(grads_.t(), &Layer::d_ln1_w, &Layer::d_qkv_w, &Layer::d_qkv_b, &Layer::d_o_w, &Layer::d_ln2_w,
         &Layer::d_gate_up_w, &Layer::d_down_w, L);
  }
  return L;
}

Qwen2Model::Buffers Qwen2Model::plan_buffers() {
  const int64_t L = cfg_.num_hidden_layers, C = cfg_.hidden_size, I = cfg_.intermediate_size;
  const int64_t Q = cfg_.qkv_dim(), HqD = cfg_.num_attention_heads * cfg_.head_dim();
  const int64_t maxN = opts_.max_batch * opts_.max_seq, D = cfg_.head_dim();
  const DType act = opts_.compute_dtype;
  const bool train = opts_.training;
  const Recompute rc = opts_.recompute;
  Buffers b;
  b.ids = scratch_arena_.tensor(DType::I32, {maxN});
  b.targets = scratch_arena_.tensor(DType::I32, {maxN});
  b.xs = act_arena_.tensor(act, {(L + 1) * maxN * C});
  // Which kinds each policy keeps per layer (only when training: inference keeps nothing).
  const bool keep_all = train && rc == Recompute::None;
  const bool keep_matmul = train && rc != Recompute::Full;
  auto slot = [&](DType dt, int64_t per_copy, bool per_layer) {
    ActSlot s;
    s.per_copy = per_copy;
    s.per_layer = per_layer;
    s.storage = act_arena_.tensor(dt, {per_copy * (per_layer ? L : 1)});
    return s;
  };
  b.ln1 = slot(act, maxN * C, keep_all);
  b.rstd1 = slot(DType::F32, maxN, keep_all);
  b.qkv = slot(act, maxN * Q, keep_matmul);
  b.att = slot(act, maxN * HqD, keep_matmul);
  b.lse = slot(DType::F32, opts_.max_batch * cfg_.num_attention_heads * opts_.max_seq, keep_matmul);
  b.h2 = slot(act, maxN * C, keep_matmul);
  b.ln2 = slot(act, maxN * C, keep_all);
  b.rstd2 = slot(DType::F32, maxN, keep_all);
  b.gate_up = slot(act, maxN * 2 * I, keep_matmul);
  b.act = slot(act, maxN * I, keep_all);
  b.proj = scratch_arena_.tensor(act, {maxN * C});
  b.hf = act_arena_.tensor(act, {maxN * C});
  b.rstd_f = act_arena_.tensor(DType::F32, {maxN});
  b.losses = scratch_arena_.tensor(DType::F32, {maxN});
  if (train) {
    if (rc == Recompute::Full) b.x_scratch = scratch_arena_.tensor(act, {maxN * C});
    b.dhf = scratch_arena_.tensor(act, {maxN * C});
    b.dres = scratch_arena_.tensor(act, {maxN * C});
    b.dln = scratch_arena_.tensor(act, {maxN * C});
    b.datt = scratch_arena_.tensor(act, {maxN * HqD});
    b.dqkv = scratch_arena_.tensor(act, {maxN * Q});
    b.dgate_up = scratch_arena_.tensor(act, {maxN * 2 * I});
    b.dact = scratch_arena_.tensor(act, {maxN * I});
  }
  const int64_t half = D / 2, P = opts_.max_seq;
  std::vector<float> cs, sn;
  build_rope_tables(cfg_, P, cs, sn);
  b.rope_cos = scratch_arena_.tensor(DType::F32, {P, half});
  b.rope_sin = scratch_arena_.tensor(DType::F32, {P, half});
  backend_->upload(b.rope_cos.t(), cs.data());
  backend_->upload(b.rope_sin.t(), sn.data());
  return b;
}

Tensor Qwen2Model::residual(int l, int64_t N) const {
  const int64_t C = cfg_.hidden_size, maxN = opts_.max_batch * opts_.max_seq;
  return buf_->xs->range(int64_t(l) * maxN * C, N * C).view({N, C});
}

Qwen2Model::LayerActs Qwen2Model::acts_for(int l, int64_t N, int64_t B, int64_t T) const {
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.qkv_dim();
  const int64_t HqD = cfg_.num_attention_heads * cfg_.head_dim(), Hq = cfg_.num_attention_heads;
  const Buffers& b = *buf_;
  LayerActs a;
  a.ln1 = b.ln1.at(l, N * C).view({N, C});
  a.rstd1 = b.rstd1.at(l, N);
  a.qkv = b.qkv.at(l, N * Q).view({N, Q});
  a.att = b.att.at(l, N * HqD).view({N, HqD});
  a.lse = b.lse.at(l, B * Hq * T).view({B, Hq, T});
  a.h2 = b.h2.at(l, N * C).view({N, C});
  a.ln2 = b.ln2.at(l, N * C).view({N, C});
  a.rstd2 = b.rstd2.at(l, N);
  a.gate_up = b.gate_up.at(l, N * 2 * I).view({N, 2 * I});
  a.act = b.act.at(l, N * I).view({N, I});
  return a;
}

namespace {
// q, k, v of a fused [N, (Hq + 2 Hkv) D] buffer as [B, T, H, D] views.
struct HeadViews {
  Tensor q, k, v, qk;
};
HeadViews split_heads(const Tensor& qkv, int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D) {
  const Tensor all = qkv.view({B, T, Hq + 2 * Hkv, D});
  return {all.slice(2, 0, Hq), all.slice(2, Hq, Hq + Hkv), all.slice(2, Hq + Hkv, Hq + 2 * Hkv),
          all.slice(2, 0, Hq + Hkv)};
}
}  // namespace

void Qwen2Model::layer_forward(int l, const Tensor& x_in, const Tensor& x_out, const LayerActs& a, int64_t B,
                               int64_t T) {
  Backend& be = *backend_;
  const Layer& w = layers_[static_cast<size_t>(l)];
  const int64_t N = B * T, C = cfg_.hidden_size, D = cfg_.head_dim();
  const int64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads;
  const auto eps = static_cast<float>(cfg_.rms_norm_eps);
  const Tensor proj = buf_->proj->range(0, N * C).view({N, C});  // [N, C]

  be.rmsnorm_forward(x_in, w.ln1_w, eps, a.ln1, a.rstd1);                 // ln1 [N, C]
  be.matmul(a.ln1, false, w.qkv_w, true, a.qkv, 1.0f, 0.0f, &w.qkv_b);    // qkv [N, Q]
  const HeadViews hv = split_heads(a.qkv, B, T, Hq, Hkv, D);
  be.rope(hv.qk, buf_->rope_cos, buf_->rope_sin, 0, false);              // q, k [B, T, H, D] rotated
  const Tensor att4 = a.att.view({B, T, Hq, D});
  be.attention_forward(hv.q, hv.k, hv.v, att4, a.lse);                    // att [B, T, Hq, D]
  be.matmul(a.att, false, w.o_w, true, proj, 1.0f, 0.0f, nullptr);       // proj [N, C]
  be.add_rmsnorm_forward(x_in, proj, w.ln2_w, eps, a.h2, a.ln2, a.rstd2); // h2 = x + proj, ln2 [N, C]
  be.matmul(a.ln2, false, w.gate_up_w, true, a.gate_up, 1.0f, 0.0f, nullptr);  // gate_up [N, 2I]
  be.swiglu_forward(a.gate_up, a.act);                                    // act [N, I]
  be.matmul(a.act, false, w.down_w, true, proj, 1.0f, 0.0f, nullptr);    // proj [N, C]
  be.add(a.h2, proj, x_out);                                              // x_out [N, C]
}

// Recreates what the policy did not keep, with the same ops on the same inputs as the forward,
// so the backward sees bitwise the same activations under every policy.
void Qwen2Model::recompute_layer(int l, const LayerActs& a, int64_t B, int64_t T) {
  const int64_t N = B * T, C = cfg_.hidden_size;
  const Layer& w = layers_[static_cast<size_t>(l)];
  const auto eps = static_cast<float>(cfg_.rms_norm_eps);
  switch (opts_.recompute) {
    case Recompute::None: return;
    case Recompute::Selective:
      backend_->rmsnorm_forward(residual(l, N), w.ln1_w, eps, a.ln1, a.rstd1);
      backend_->rmsnorm_forward(a.h2, w.ln2_w, eps, a.ln2, a.rstd2);
      backend_->swiglu_forward(a.gate_up, a.act);
      return;
    case Recompute::Full:
      layer_forward(l, residual(l, N), buf_->x_scratch->range(0, N * C).view({N, C}), a, B, T);
      return;
  }
}

// On entry dres [N, C] holds d loss / d x_out; on exit d loss / d x_in. Weight gradients add.
void Qwen2Model::layer_backward(int l, const LayerActs& a, int64_t B, int64_t T) {
  Backend& be = *backend_;
  const Layer& w = layers_[static_cast<size_t>(l)];
  const int64_t N = B * T, C = cfg_.hidden_size, I = cfg_.intermediate_size, D = cfg_.head_dim();
  const int64_t Hq = cfg_.num_attention_heads, Hkv = cfg_.num_key_value_heads, Q = cfg_.qkv_dim(), HqD = Hq * D;
  const Buffers& b = *buf_;
  const Tensor dres = b.dres->range(0, N * C).view({N, C});             // [N, C]
  const Tensor dln = b.dln->range(0, N * C).view({N, C});               // [N, C]
  const Tensor dact = b.dact->range(0, N * I).view({N, I});             // [N, I]
  const Tensor dgate_up = b.dgate_up->range(0, N * 2 * I).view({N, 2 * I});
  const Tensor datt = b.datt->range(0, N * HqD).view({N, HqD});         // [N, Hq D]
  const Tensor dqkv = b.dqkv->range(0, N * Q).view({N, Q});             // [N, Q]

  // MLP: x_out = h2 + act @ down^T
  be.matmul(dres, false, w.down_w, false, dact, 1.0f, 0.0f, nullptr);          // dact [N, I]
  be.matmul(dres, true, a.act, false, w.d_down_w, 1.0f, 1.0f, nullptr);        // d_down [C, I]
  be.swiglu_backward(dact, a.gate_up, dgate_up);                               // dgate_up [N, 2I]
  be.matmul(dgate_up, false, w.gate_up_w, false, dln, 1.0f, 0.0f, nullptr);   // dln2 [N, C]
  be.matmul(dgate_up, true, a.ln2, false, w.d_gate_up_w, 1.0f, 1.0f, nullptr);  // d_gate_up [2I, C]
  be.rmsnorm_backward(dln, a.h2, w.ln2_w, a.rstd2, dres, w.d_ln2_w, true);     // dres = d h2

  // attention: h2 = x_in + att @ o^T
  be.matmul(dres, false, w.o_w, false, datt, 1.0f, 0.0f, nullptr);             // datt [N, Hq D]
  be.matmul(dres, true, a.att, false, w.d_o_w, 1.0f, 1.0f, nullptr);           // d_o [C, Hq D]
  const HeadViews hv = split_heads(a.qkv, B, T, Hq, Hkv, D);
  const HeadViews dv = split_heads(dqkv, B, T, Hq, Hkv, D);
  be.attention_backward(datt.view({B, T, Hq, D}), hv.q, hv.k, hv.v, a.att.view({B, T, Hq, D}), a.lse, dv.q, dv.k,
                        dv.v);                                                 // dqkv [B, T, Hq+2Hkv, D]
  be.rope(dv.qk, buf_->rope_cos, buf_->rope_sin, 0, true);                    // undo the rotation
  be.bias_backward(dqkv, w.d_qkv_b);                                           // d_qkv_b [Q]
  be.matmul(dqkv, false, w.qkv_w, false, dln, 1.0f, 0.0f, nullptr);            // dln1 [N, C]
  be.matmul(dqkv, true, a.ln1, false, w.d_qkv_w, 1.0f, 1.0f, nullptr);         // d_qkv [Q, C]
  be.rmsnorm_backward(dln, residual(l, N), w.ln1_w, a.rstd1, dres, w.d_ln1_w, true);  // dres = d x_in
}

}  // namespace llm
