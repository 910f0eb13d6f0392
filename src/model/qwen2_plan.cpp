// Qwen2Model's plan: which activations each recompute policy keeps (the single source of the
// allocation and of --dry-run), the views of each layer's weights, gradients and activations,
// and the layer loop's calls into the one block (qwen2_block.cpp).
#include <algorithm>
#include <cmath>

#include "llm/error.h"
#include "llm/lora.h"
#include "model/qwen2_internal.h"
#include "model/rope_tables.h"

namespace llm {

Qwen2Model::Layer Qwen2Model::bind_layer(int l) const {
  const int64_t C = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.qkv_dim();
  const int64_t HqD = cfg_.num_attention_heads * cfg_.head_dim();
  // q/k/v and gate/up sit back to back in the flat buffer (ParamTable): one view each.
  auto block = [&](const Tensor& flat, const char* first, std::initializer_list<int64_t> shape) {
    const ParamInfo& p = table_.at(ParamTable::layer_name(l, first));
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const Tensor r = flat.range(p.offset, n);
    return shape.size() == 1 ? r : r.view(shape);
  };
  Layer L;
  const Tensor& w = weights_.t();
  L.w.ln1 = block(w, "input_layernorm.weight", {C});                 // [C]
  L.w.qkv.dense = block(w, "self_attn.q_proj.weight", {Q, C});       // [Q, C]
  L.w.qkv_b = block(w, "self_attn.q_proj.bias", {Q});                // [Q]
  L.w.o.dense = block(w, "self_attn.o_proj.weight", {C, HqD});       // [C, Hq D]
  L.w.ln2 = block(w, "post_attention_layernorm.weight", {C});        // [C]
  L.w.gate_up.dense = block(w, "mlp.gate_proj.weight", {2 * I, C});  // [2I, C]
  L.w.down.dense = block(w, "mlp.down_proj.weight", {C, I});         // [C, I]
  if (lora_) {
    bind_lora(l, L);
  } else if (opts_.training) {
    // The gradients of the same blocks, wherever they live (one flat buffer, or a reused bucket).
    auto gblock = [&](const char* first, std::initializer_list<int64_t> shape) {
      const ParamInfo& p = table_.at(ParamTable::layer_name(l, first));
      int64_t n = 1;
      for (int64_t s : shape) n *= s;
      const Tensor r = grad_range(p.offset, n);
      return shape.size() == 1 ? r : r.view(shape);
    };
    L.g.ln1 = gblock("input_layernorm.weight", {C});
    L.g.qkv = gblock("self_attn.q_proj.weight", {Q, C});
    L.g.qkv_b = gblock("self_attn.q_proj.bias", {Q});
    L.g.o = gblock("self_attn.o_proj.weight", {C, HqD});
    L.g.ln2 = gblock("post_attention_layernorm.weight", {C});
    L.g.gate_up = gblock("mlp.gate_proj.weight", {2 * I, C});
    L.g.down = gblock("mlp.down_proj.weight", {C, I});
  }
  return L;
}

// The adapters of layer l on its fused matrices; the frozen matrices get no gradients and the
// norms' gradients go to a discarded sink.
void Qwen2Model::bind_lora(int l, Layer& L) const {
  const int64_t r = lora_->config().rank;
  LinearWeight* blocks[4] = {&L.w.qkv, &L.w.o, &L.w.gate_up, &L.w.down};
  for (int b = 0; b < 4; ++b) {
    for (const LoraAdapterInfo* info : lora_->of_block(l, b)) {
      LinearAdapter ad;
      ad.A = lora_weights_->range(info->a_offset, r * info->in).view({r, info->in});
      ad.B = lora_weights_->range(info->b_offset, info->out * r).view({info->out, r});
      if (opts_.training) {
        ad.dA = lora_grads_->range(info->a_offset, r * info->in).view({r, info->in});
        ad.dB = lora_grads_->range(info->b_offset, info->out * r).view({info->out, r});
      }
      ad.col0 = info->col0;
      ad.out = info->out;
      ad.scale = lora_->config().scale();
      ad.h = buf_->t(Buf::LoraH);
      ad.dh = opts_.training ? buf_->t(Buf::LoraDh) : Tensor();
      if (opts_.training && opts_.lora.dropout > 0) {
        ad.dropout = static_cast<float>(opts_.lora.dropout);
        ad.drop = lora_drop_.get();
        ad.key = (uint64_t(l) << 32 | uint64_t(info->module)) * 0xd1b54a32d192ed03ull;
        ad.xd = buf_->t(Buf::LoraX);
      }
      blocks[b]->lora.push_back(ad);
    }
  }
  if (opts_.training) L.g.ln1 = L.g.ln2 = norm_grad_sink_.t();
}

std::array<BufSpec, static_cast<size_t>(Buf::Count)> buffer_plan(const ModelConfig& cfg, const ModelOptions& opts) {
  const int64_t L = cfg.num_hidden_layers, C = cfg.hidden_size, I = cfg.intermediate_size;
  const int64_t Q = cfg.qkv_dim(), HqD = cfg.num_attention_heads * cfg.head_dim(), D = cfg.head_dim();
  const int64_t maxN = opts.max_batch * opts.max_seq;
  const DType act = opts.compute_dtype, f32 = DType::F32, i32 = DType::I32;
  // The residual stream and what is added into it (f32 under f16: residual_dtype); the matmul
  // inputs and the gradients stay in the compute dtype.
  const DType res = residual_dtype(act, opts.narrow_residual);
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
  set(Buf::Positions, "token positions", false, i32, maxN, 1);
  set(Buf::Xs, "residual stream", true, res, maxN * C, L + 1);
  set(Buf::Ln1, "input_layernorm out", true, act, maxN * C, all);
  set(Buf::Rstd1, "input_layernorm rstd", true, f32, maxN, all);
  set(Buf::Qkv, "q/k/v", true, act, maxN * Q, matmul);
  set(Buf::Att, "attention out", true, act, maxN * HqD, matmul);
  set(Buf::Lse, "attention logsumexp", true, f32, opts.max_batch * cfg.num_attention_heads * opts.max_seq, matmul);
  set(Buf::H2, "residual after attention", true, res, maxN * C, matmul);
  set(Buf::Ln2, "post_attention_layernorm out", true, act, maxN * C, all);
  set(Buf::Rstd2, "post_attention_layernorm rstd", true, f32, maxN, all);
  set(Buf::GateUp, "gate/up", true, act, maxN * 2 * I, matmul);
  set(Buf::Act, "swiglu out", true, act, maxN * I, all);
  set(Buf::Proj, "projection out", false, res, maxN * C, 1);
  set(Buf::XScratch, "recomputed layer out", false, res, maxN * C, train && opts.recompute == Recompute::Full ? 1 : 0);
  set(Buf::Hf, "final norm out", true, act, maxN * C, 1);
  set(Buf::RstdF, "final norm rstd", true, f32, maxN, 1);
  set(Buf::Losses, "per-token loss", false, f32, maxN, 1);
  set(Buf::CeStats, "softmax statistics", true, f32, 2 * maxN, train && opts.bucketed_grads ? 1 : 0);
  set(Buf::Dhf, "d final norm out", false, act, maxN * C, bwd);
  set(Buf::Dres, "d residual", false, act, maxN * C, bwd);
  set(Buf::Dln, "d norm out", false, act, maxN * C, bwd);
  set(Buf::Datt, "d attention out", false, act, maxN * HqD, bwd);
  set(Buf::Dqkv, "d q/k/v", false, act, maxN * Q, bwd);
  set(Buf::DgateUp, "d gate/up", false, act, maxN * 2 * I, bwd);
  set(Buf::Dact, "d swiglu out", false, act, maxN * I, bwd);
  const int64_t r = opts.lora.enabled() ? opts.lora.rank : 0;
  set(Buf::LoraH, "LoRA x A^T", false, act, maxN * r, r > 0 ? 1 : 0);
  set(Buf::LoraDh, "LoRA d(x A^T)", false, act, maxN * r, r > 0 && train ? 1 : 0);
  const bool drop = r > 0 && train && opts.lora.dropout > 0;
  set(Buf::LoraX, "LoRA dropout(x)", false, act, maxN * std::max({C, HqD, I}), drop ? 1 : 0);
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
    if (s.copies > 0)
      slot.storage = (s.activation ? act_arena_ : scratch_arena_).tensor(s.dtype, {s.per_copy * s.copies});
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
  a.b.ln1 = b[Buf::Ln1].at(l, N * C).view({N, C});
  a.b.rstd1 = b[Buf::Rstd1].at(l, N);
  a.b.qkv = b[Buf::Qkv].at(l, N * Q).view({N, Q});
  a.b.att = b[Buf::Att].at(l, N * HqD).view({N, HqD});
  a.b.h2 = b[Buf::H2].at(l, N * C).view({N, C});
  a.b.ln2 = b[Buf::Ln2].at(l, N * C).view({N, C});
  a.b.rstd2 = b[Buf::Rstd2].at(l, N);
  a.b.gate_up = b[Buf::GateUp].at(l, N * 2 * I).view({N, 2 * I});
  a.b.act = b[Buf::Act].at(l, N * I).view({N, I});
  a.b.proj = b.t(Buf::Proj).range(0, N * C).view({N, C});
  a.lse = b[Buf::Lse].at(l, B * Hq * T).view({B, Hq, T});
  return a;
}

CausalAttention Qwen2Model::attention_for(const LayerActs& a, int64_t B, int64_t T) const {
  const Tensor positions = has_positions_ ? buf_->t(Buf::Positions).range(0, B * T).view({B, T}) : Tensor();
  return CausalAttention(BlockShape(cfg_), B, T, rope_cos_, rope_sin_, a.lse, positions);
}

void Qwen2Model::layer_forward(int l, const Tensor& x_in, const Tensor& x_out, const LayerActs& a, int64_t B, int64_t T,
                               const ForwardProbe* probe) {
  const BlockProbe seen =
      probe ? BlockProbe([&](const char* tensor, const Tensor& t) { (*probe)(l, tensor, t); }) : BlockProbe();
  block_forward(*backend_, BlockShape(cfg_), layers_[static_cast<size_t>(l)].w, attention_for(a, B, T), x_in, x_out,
                a.b, probe ? &seen : nullptr);
}

// Recreates what the policy did not keep, with the same ops on the same inputs as the forward,
// so the backward sees bitwise the same activations under every policy.
void Qwen2Model::recompute_layer(int l, const LayerActs& a, int64_t B, int64_t T) {
  const int64_t N = B * T, C = cfg_.hidden_size;
  switch (opts_.recompute) {
    case Recompute::None: return;
    case Recompute::Selective:
      block_recompute_selective(*backend_, BlockShape(cfg_), layers_[static_cast<size_t>(l)].w, residual(l, N), a.b);
      return;
    case Recompute::Full:
      layer_forward(l, residual(l, N), buf_->t(Buf::XScratch).range(0, N * C).view({N, C}), a, B, T);
      return;
  }
}

// On entry Dres [N, C] holds d loss / d x_out; on exit d loss / d x_in. Weight gradients add.
void Qwen2Model::layer_backward(int l, const LayerActs& a, int64_t B, int64_t T) {
  const int64_t N = B * T, C = cfg_.hidden_size, I = cfg_.intermediate_size, Q = cfg_.qkv_dim();
  const int64_t HqD = cfg_.num_attention_heads * cfg_.head_dim();
  const Buffers& b = *buf_;
  BlockBackwardScratch d;
  d.dln = b.t(Buf::Dln).range(0, N * C).view({N, C});                   // [N, C]
  d.dact = b.t(Buf::Dact).range(0, N * I).view({N, I});                 // [N, I]
  d.dgate_up = b.t(Buf::DgateUp).range(0, N * 2 * I).view({N, 2 * I});  // [N, 2I]
  d.datt = b.t(Buf::Datt).range(0, N * HqD).view({N, HqD});             // [N, Hq D]
  d.dqkv = b.t(Buf::Dqkv).range(0, N * Q).view({N, Q});                 // [N, Q]
  const Layer& L = layers_[static_cast<size_t>(l)];
  block_backward(*backend_, L.w, L.g, attention_for(a, B, T), residual(l, N), a.b,
                 b.t(Buf::Dres).range(0, N * C).view({N, C}), d);
}

}  // namespace llm
