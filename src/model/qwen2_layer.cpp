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

std::array<BufSpec, static_cast<size_t>(Buf::Count)> buffer_plan(const ModelConfig& cfg, const ModelOptions& opts) {
  const int64_t L = cfg.num_hidden_layers, C = cfg.hidden_size, I = cfg.intermediate_size;
  const int64_t Q = cfg.qkv_dim(), HqD = cfg.num_attention_heads * cfg.head_dim(), D = cfg.head_dim();
  const int64_t maxN = opts.max_batch * opts.max_seq;
  const DType act = opts.compute_dtype, f32 = DType::F32, i32 = DType::I32;
  const bool train = opts.training;
  // Which kinds each policy keeps per layer (inference keeps nothing between layers).
  const int64_t all = train && opts.recompute == Recompute::None ? L : 1;
  const int64_t matmul = train && opts.recompute != Recompute::Full ? L : 1;
  const int64_t bwd = train ? 1 : 0;
  std::array<BufSpec, static_cast<size_t>(Buf::Count)> p{};
  auto set = [&](Buf b, const char* name, bool activation, DType dt, int64_t per_copy, int64_t copies) {
    p[static_cast<size_t>(b)] = BufSpec{name, activation, dt, per_copy, copies};
  };
  set(Buf::Ids, "token ids", false, i32, maxN, 1);
  set(Buf::Targets, "targets", false, i32, maxN, 1);
  set(Buf::Xs, "residual stream", true, act, maxN * C, L + 1);
  set(Buf::Ln1, "input_layernorm out", true, act, maxN * C, all);
  set(Buf::Rstd1, "input_layernorm rstd", true, f32, maxN, all);
  set(Buf::Qkv, "q/k/v", true, act, maxN * Q, matmul);
  set(Buf::Att, "attention out", true, act, maxN * HqD, matmul);
  set(Buf::Lse, "attention logsumexp", true, f32, opts.max_batch * cfg.num_attention_heads * opts.max_seq, matmul);
  set(Buf::H2, "residual after attention", true, act, maxN * C, matmul);
  set(Buf::Ln2, "post_attention_layernorm out", true, act, maxN * C, all);
  set(Buf::Rstd2, "post_attention_layernorm rstd", true, f32, maxN, all);
  set(Buf::GateUp, "gate/up", true, act, maxN * 2 * I, matmul);
  set(Buf::Act, "swiglu out", true, act, maxN * I, all);
  set(Buf::Proj, "projection out", false, act, maxN * C, 1);
  set(Buf::XScratch, "recomputed layer out", false, act, maxN * C, train && opts.recompute == Recompute::Full ? 1 : 0);
  set(Buf::Hf, "final norm out", true, act, maxN * C, 1);
  set(Buf::RstdF, "final norm rstd", true, f32, maxN, 1);
  set(Buf::Losses, "per-token loss", false, f32, maxN, 1);
  set(Buf::Dhf, "d final norm out", false, act, maxN * C, bwd);
  set(Buf::Dres, "d residual", false, act, maxN * C, bwd);
  set(Buf::Dln, "d norm out", false, act, maxN * C, bwd);
  set(Buf::Datt, "d attention out", false, act, maxN * HqD, bwd);
  set(Buf::Dqkv, "d q/k/v", false, act, maxN * Q, bwd);
  set(Buf::DgateUp, "d gate/up", false, act, maxN * 2 * I, bwd);
  set(Buf::Dact, "d swiglu out", false, act, maxN * I, bwd);
  set(Buf::RopeCos, "rotary cos", false, f32, opts.max_seq * (D / 2), 1);
  set(Buf::RopeSin, "rotary sin", false, f32, opts.max_seq * (D / 2), 1);
  return p;
}

Qwen2Model::Buffers Qwen2Model::plan_buffers() {
  Buffers b;
  const auto plan = buffer_plan(cfg_, opts_);
  for (size_t i = 0; i < plan.size(); ++i) {
    const BufSpec& s = plan[i];
    ActSlot& slot = b.slots[i];
    slot.per_copy = s.per_copy;
    slot.per_layer = s.copies > 1;
    if (s.copies > 0) slot.storage = (s.activation ? act_arena_ : scratch_arena_).tensor(s.dtype, {s.per_copy * s.copies});
  }
  const int64_t half = cfg_.head_dim() / 2, P = opts_.max_seq;
  std::vector<float> cs, sn;
  build_rope_tables(cfg_, P, cs, sn);
  backend_->upload(b.t(Buf::RopeCos), cs.data());
  backend_->upload(b.t(Buf::RopeSin), sn.data());
  rope_cos_ = b.t(Buf::RopeCos).view({P, half});
  rope_sin_ = b.t(Buf::RopeSin).view({P, half});
  return b;
}

Tensor Qwen2Model::residual(int l, int64_t N) const {
  const int64_t C = cfg_.hidden_size, maxN = opts_.max_batch * opts_.max_seq;
  return buf_->t(Buf::Xs).range(int64_t(l) * maxN * C, N * C).view({N, C});
}

Qwen2Model::LayerActs Qwen2Model::acts_for(int l, int64_t N, int64_t B, int64_t T) const {
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.qkv_dim();
  const int64_t HqD = cfg_.num_attention_heads * cfg_.head_dim(), Hq = cfg_.num_attention_heads;
  const Buffers& b = *buf_;
  LayerActs a;
  a.ln1 = b[Buf::Ln1].at(l, N * C).view({N, C});
  a.rstd1 = b[Buf::Rstd1].at(l, N);
  a.qkv = b[Buf::Qkv].at(l, N * Q).view({N, Q});
  a.att = b[Buf::Att].at(l, N * HqD).view({N, HqD});
  a.lse = b[Buf::Lse].at(l, B * Hq * T).view({B, Hq, T});
  a.h2 = b[Buf::H2].at(l, N * C).view({N, C});
  a.ln2 = b[Buf::Ln2].at(l, N * C).view({N, C});
  a.rstd2 = b[Buf::Rstd2].at(l, N);
  a.gate_up = b[Buf::GateUp].at(l, N * 2 * I).view({N, 2 * I});
  a.act = b[Buf::Act].at(l, N * I).view({N, I});
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
  const Tensor proj = buf_->t(Buf::Proj).range(0, N * C).view({N, C});  // [N, C]

  be.rmsnorm_forward(x_in, w.ln1_w, eps, a.ln1, a.rstd1);                 // ln1 [N, C]
  be.matmul(a.ln1, false, w.qkv_w, true, a.qkv, 1.0f, 0.0f, &w.qkv_b);    // qkv [N, Q]
  const HeadViews hv = split_heads(a.qkv, B, T, Hq, Hkv, D);
  be.rope(hv.qk, rope_cos_, rope_sin_, 0, false);              // q, k [B, T, H, D] rotated
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
      layer_forward(l, residual(l, N), buf_->t(Buf::XScratch).range(0, N * C).view({N, C}), a, B, T);
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
  const Tensor dres = b.t(Buf::Dres).range(0, N * C).view({N, C});             // [N, C]
  const Tensor dln = b.t(Buf::Dln).range(0, N * C).view({N, C});               // [N, C]
  const Tensor dact = b.t(Buf::Dact).range(0, N * I).view({N, I});             // [N, I]
  const Tensor dgate_up = b.t(Buf::DgateUp).range(0, N * 2 * I).view({N, 2 * I});
  const Tensor datt = b.t(Buf::Datt).range(0, N * HqD).view({N, HqD});         // [N, Hq D]
  const Tensor dqkv = b.t(Buf::Dqkv).range(0, N * Q).view({N, Q});             // [N, Q]

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
  be.rope(dv.qk, rope_cos_, rope_sin_, 0, true);                    // undo the rotation
  be.bias_backward(dqkv, w.d_qkv_b);                                           // d_qkv_b [Q]
  be.matmul(dqkv, false, w.qkv_w, false, dln, 1.0f, 0.0f, nullptr);            // dln1 [N, C]
  be.matmul(dqkv, true, a.ln1, false, w.d_qkv_w, 1.0f, 1.0f, nullptr);         // d_qkv [Q, C]
  be.rmsnorm_backward(dln, residual(l, N), w.ln1_w, a.rstd1, dres, w.d_ln1_w, true);  // dres = d x_in
}

}  // namespace llm
