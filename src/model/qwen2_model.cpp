// Qwen2Model: forward, backward and the loop over layers. Each decoder layer is the one block
// (qwen2_block.cpp) over views that the activation plan places (qwen2_plan.cpp).
#include <algorithm>
#include <cmath>

#include "llm/error.h"
#include "llm/lora.h"
#include "llm/memory_plan.h"
#include "llm/model.h"
#include "model/finite_check.h"
#include "model/qwen2_internal.h"

namespace llm {

Recompute parse_recompute(std::string_view s, std::string_view where) {
  if (s == "none") return Recompute::None;
  if (s == "selective") return Recompute::Selective;
  if (s == "full") return Recompute::Full;
  fail(where, ": \"", s, "\" is not one of: none, selective, full");
}

std::string_view recompute_name(Recompute r) {
  switch (r) {
    case Recompute::None: return "none";
    case Recompute::Selective: return "selective";
    case Recompute::Full: return "full";
  }
  return "?";
}

Qwen2Model::Qwen2Model(const ModelConfig& cfg, Backend& backend, const ModelOptions& opts)
    : cfg_(cfg),
      table_(cfg),
      opts_(opts),
      backend_(&backend),
      weights_arena_(backend, "weights"),
      grads_arena_(backend, "grads"),
      act_arena_(backend, "activations"),
      scratch_arena_(backend, "scratch") {
  cfg_.validate("model");
  LLM_CHECK(is_float(opts_.compute_dtype), "model: compute dtype must be f32, f16 or bf16");
  if (opts_.max_seq <= 0) opts_.max_seq = cfg_.max_position_embeddings;
  LLM_CHECK(opts_.max_batch > 0, "model: max_batch must be positive, got ", opts_.max_batch);
  const int64_t P = table_.flat_size();
  buckets_ = grad_buckets(table_, cfg_.num_hidden_layers);
  weights_ = weights_arena_.zeros(opts_.compute_dtype, {P});
  if (opts_.lora.enabled()) {
    // LoRA: the adapters are the trainable parameters; the base has no gradient buffer at all.
    LLM_CHECK(!opts_.bucketed_grads, "model: bucketed gradients (ZeRO-2) are not for LoRA adapters");
    lora_ = std::make_unique<LoraTable>(cfg_, opts_.lora);
    lora_drop_ = std::make_unique<LoraDropoutState>();
    lora_weights_ = weights_arena_.zeros(opts_.compute_dtype, {lora_->flat_size()});
    if (opts_.training) {
      lora_grads_ = grads_arena_.zeros(DType::F32, {lora_->flat_size()});
      norm_grad_sink_ = grads_arena_.zeros(DType::F32, {cfg_.hidden_size});
    }
  } else if (opts_.training && opts_.bucketed_grads) {
    grads_ = grads_arena_.zeros(DType::F32, {buckets_.buffer});
  } else if (opts_.training) {
    grads_ = grads_arena_.zeros(DType::F32, {P});
  }
  buf_ = std::make_unique<Buffers>(plan_buffers());
  layers_.resize(static_cast<size_t>(cfg_.num_hidden_layers));
  for (int l = 0; l < static_cast<int>(cfg_.num_hidden_layers); ++l) layers_[static_cast<size_t>(l)] = bind_layer(l);
}

Qwen2Model::~Qwen2Model() = default;

Tensor Qwen2Model::weight(std::string_view name) const { return param_view(weights_.t(), table_.at(name)); }

const Tensor& Qwen2Model::grads() const {
  LLM_CHECK(!opts_.bucketed_grads, "model: the gradients are bucketed (ZeRO-2): they go to the gradient sink");
  return grads_.t();
}

Tensor Qwen2Model::grad(std::string_view name) const {
  LLM_CHECK(opts_.training, "model: gradients requested from a model built for inference");
  LLM_CHECK(!lora_, "model: ", name, " is frozen under LoRA and has no gradient");
  const ParamInfo& p = table_.at(name);
  const Tensor r = grad_range(p.offset, p.numel);
  return p.shape.size() == 2 ? r.view({p.shape[0], p.shape[1]}) : r;
}

Tensor Qwen2Model::grad_range(int64_t offset, int64_t n) const {
  if (!opts_.bucketed_grads) return grads_->range(offset, n);
  const std::vector<int64_t>& lb = buckets_.layer_begin;
  // One buffer serves every bucket in turn: each layer, the final norm (the first parameter after
  // the layers), and the vocabulary rows, which vocab_row_buckets forms without asking here.
  LLM_CHECK(offset >= lb.front(), "model: the embeddings' gradient is bucketed by rows (ZeRO-2) and has no view");
  if (offset >= lb.back()) {
    LLM_CHECK(offset + n <= lb.back() + cfg_.hidden_size,
              "model: only the final norm's gradient has a view beyond the "
              "layers when the gradients are bucketed (ZeRO-2)");
    return grads_->range(offset - lb.back(), n);
  }
  const auto l = std::upper_bound(lb.begin(), lb.end(), offset) - lb.begin() - 1;  // the layer holding offset
  return grads_->range(offset - lb[size_t(l)], n);
}

void Qwen2Model::send_bucket(int64_t flat_begin, const Tensor& g) {
  grad_sink_(flat_begin, g);
  backend_->zero(g);
}

void Qwen2Model::flush_layer_grads(int l) {
  const int64_t begin = buckets_.layer_begin[size_t(l)], n = buckets_.layer_begin[size_t(l) + 1] - begin;
  send_bucket(begin, grads_->range(0, n));
}

void Qwen2Model::flush_norm_grads() {
  send_bucket(table_.at("model.norm.weight").offset, grads_->range(0, cfg_.hidden_size));
}

// The output layer's dw (cross_entropy_dw from the statistics forward kept) and the input
// embedding's (embedding_backward_rows), vocab_rows rows at a time; tied, both go into one bucket,
// in the order the whole-buffer path adds them (output layer, then lookup), so the sums are the same.
void Qwen2Model::vocab_row_buckets() {
  Backend& be = *backend_;
  const int64_t N = last_B_ * last_T_, C = cfg_.hidden_size, V = cfg_.vocab_size;
  const bool tied = cfg_.tie_word_embeddings;
  const ParamInfo& embed = table_.params()[0];
  const ParamInfo& head = tied ? embed : table_.at("lm_head.weight");
  const Tensor hf = buf_->t(Buf::Hf).range(0, N * C).view({N, C});
  const Tensor w_head = param_view(weights_.t(), head);  // [V, C]
  const Tensor ids = buf_->t(Buf::Ids).range(0, N), dres = buf_->t(Buf::Dres).range(0, N * C).view({N, C});
  for (int pass = 0; pass < (tied ? 1 : 2); ++pass) {
    const bool output = pass == 0;  // the output layer's rows (tied: with the lookup's), then the lookup's
    const ParamInfo& p = output ? head : embed;
    for (int64_t r0 = 0; r0 < V; r0 += buckets_.vocab_rows) {
      const int64_t R = std::min(buckets_.vocab_rows, V - r0);
      const Tensor g = grads_->range(0, R * C);
      if (output) {
        be.cross_entropy_dw(hf, w_head.slice(0, r0, r0 + R), r0, buf_->t(Buf::Targets).range(0, N),
                            buf_->t(Buf::CeStats).range(0, 2 * N).view({N, 2}), g.view({R, C}), last_grad_scale_,
                            default_ce_chunk_tokens(V, N, opts_.ce_chunk_tokens), buckets_.vocab_rows);
      }
      if (!output || tied) be.embedding_backward_rows(ids, dres, g.view({R, C}), r0, V);
      send_bucket(p.offset + r0 * C, g);
    }
  }
}

void Qwen2Model::set_weights(std::span<const float> flat) {
  LLM_CHECK(static_cast<int64_t>(flat.size()) == table_.flat_size(), "model: set_weights got ", flat.size(),
            " values, expected ", table_.flat_size());
  upload_rounded(flat, weights_.t());
}

void Qwen2Model::set_lora_weights(std::span<const float> flat) {
  LLM_CHECK(lora_ != nullptr, "model: set_lora_weights on a model without LoRA");
  LLM_CHECK(static_cast<int64_t>(flat.size()) == lora_->flat_size(), "model: set_lora_weights got ", flat.size(),
            " values, expected ", lora_->flat_size());
  upload_rounded(flat, lora_weights_.t());
}

void Qwen2Model::set_dropout_seed(uint64_t seed) {
  if (lora_drop_) lora_drop_->seed = seed;
}

int64_t Qwen2Model::trainable_size() const { return lora_ ? lora_->flat_size() : table_.flat_size(); }

void Qwen2Model::upload_rounded(std::span<const float> flat, const Tensor& dst) {
  if (dst.dtype() == DType::F32) {
    backend_->upload(dst, flat.data());
    return;
  }
  // Upload through an fp32 staging buffer and let the backend round: one rounding rule everywhere.
  constexpr int64_t kChunk = int64_t(1) << 22;
  const auto total = static_cast<int64_t>(flat.size());
  OwnedTensor stage = scratch_arena_.tensor(DType::F32, {std::max<int64_t>(1, std::min<int64_t>(kChunk, total))});
  for (int64_t i = 0; i < total; i += kChunk) {
    const int64_t n = std::min(kChunk, total - i);
    const Tensor s = stage->range(0, n);
    backend_->upload(s, flat.data() + i);
    backend_->copy(s, dst.range(i, n));
  }
}

void Qwen2Model::zero_grads() {
  LLM_CHECK(opts_.training, "model: zero_grads on a model built for inference");
  backend_->zero(trainable_grads());
}

std::vector<const Arena*> Qwen2Model::arenas() const {
  return {&weights_arena_, &grads_arena_, &act_arena_, &scratch_arena_};
}

void Qwen2Model::check_batch(const TokenBatch& batch, bool need_targets) const {
  LLM_CHECK(batch.B > 0 && batch.T > 0, "model: empty batch [", batch.B, ", ", batch.T, "]");
  LLM_CHECK(batch.B <= opts_.max_batch && batch.T <= opts_.max_seq, "model: batch [", batch.B, ", ", batch.T,
            "] exceeds the planned [", opts_.max_batch, ", ", opts_.max_seq, "]");
  const auto N = static_cast<size_t>(batch.B * batch.T);
  LLM_CHECK(batch.ids.size() == N, "model: ", batch.ids.size(), " ids for a [", batch.B, ", ", batch.T, "] batch");
  for (size_t i = 0; i < N; ++i) {
    LLM_CHECK(batch.ids[i] >= 0 && batch.ids[i] < cfg_.vocab_size, "model: token id ", batch.ids[i], " at position ", i,
              " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  }
  if (!batch.positions.empty()) {
    LLM_CHECK(batch.positions.size() == N, "model: ", batch.positions.size(), " positions for a [", batch.B, ", ",
              batch.T, "] batch");
    // Each row is a run of documents: a position is 0 (a document starts) or one more than the last.
    for (size_t i = 0; i < N; ++i) {
      const bool row_start = i % static_cast<size_t>(batch.T) == 0;
      const int32_t p = batch.positions[i];
      LLM_CHECK(p == 0 || (!row_start && p == batch.positions[i - 1] + 1), "model: position ", p, " at token ", i,
                " does not start a document (0) or continue the one before");
    }
  }
  if (!need_targets) return;
  LLM_CHECK(batch.targets.size() == N, "model: ", batch.targets.size(), " targets for a [", batch.B, ", ", batch.T,
            "] batch");
  for (size_t i = 0; i < N; ++i) {
    LLM_CHECK(batch.targets[i] < cfg_.vocab_size, "model: target ", batch.targets[i], " at position ", i,
              " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  }
}

// x_0 = embed(ids); x_{l+1} = layer_l(x_l); h = norm(x_L).
void Qwen2Model::embed_and_layers(const TokenBatch& batch, int64_t B, int64_t T, const ForwardProbe* probe) {
  Backend& be = *backend_;
  const int64_t N = B * T, C = cfg_.hidden_size;
  const Tensor ids = buf_->t(Buf::Ids).range(0, N);
  be.upload(ids, batch.ids.data());
  has_positions_ = !batch.positions.empty();
  if (has_positions_) be.upload(buf_->t(Buf::Positions).range(0, N), batch.positions.data());
  const Tensor embed = param_view(weights_.t(), table_.params()[0]);
  be.embedding_forward(ids, embed, residual(0, N));
  if (probe) (*probe)(-1, "embedding out", residual(0, N));
  const int L = static_cast<int>(cfg_.num_hidden_layers);
  for (int l = 0; l < L; ++l) layer_forward(l, residual(l, N), residual(l + 1, N), acts_for(l, N, B, T), B, T, probe);
  const Tensor hf = buf_->t(Buf::Hf).range(0, N * C).view({N, C});
  be.rmsnorm_forward(residual(L, N), weight("model.norm.weight"), float(cfg_.rms_norm_eps), hf,
                     buf_->t(Buf::RstdF).range(0, N));
  if (probe) (*probe)(L, "model.norm out", hf);
}

LossSum Qwen2Model::forward(const TokenBatch& batch, bool grad, float grad_scale) {
  return loss_forward(batch, grad, grad_scale, nullptr);
}

LossSum Qwen2Model::probe_forward(const TokenBatch& batch, const ForwardProbe& probe) {
  return loss_forward(batch, false, 1.0f, &probe);
}

std::string Qwen2Model::diagnose_nonfinite(const TokenBatch& batch) {
  FiniteWatch watch(*backend_, cfg_.num_hidden_layers);
  probe_forward(batch, [&](int l, const char* tensor, const Tensor& t) { watch.check(l, tensor, t); });
  return nonfinite_advice(watch, opts_.compute_dtype);
}

LossSum Qwen2Model::loss_forward(const TokenBatch& batch, bool grad, float grad_scale, const ForwardProbe* probe) {
  LLM_CHECK(!grad || opts_.training, "model: forward with gradients on a model built for inference");
  check_batch(batch, true);
  Backend& be = *backend_;
  const int64_t B = batch.B, T = batch.T, N = B * T, C = cfg_.hidden_size;
  if (lora_drop_) lora_drop_->active = grad;  // dropout in training forwards only
  embed_and_layers(batch, B, T, probe);

  const Tensor targets = buf_->t(Buf::Targets).range(0, N);
  be.upload(targets, batch.targets.data());
  const Tensor losses = buf_->t(Buf::Losses).range(0, N);
  const ParamInfo& head = cfg_.tie_word_embeddings ? table_.params()[0] : table_.at("lm_head.weight");
  const Tensor hf = buf_->t(Buf::Hf).range(0, N * C).view({N, C});
  const Tensor dhf = grad ? buf_->t(Buf::Dhf).range(0, N * C).view({N, C}) : Tensor();
  // The output layer's dw: here, into the whole gradient buffer; bucketed (ZeRO-2), after the
  // layers' backward from the softmax statistics kept here (vocab_row_buckets); LoRA: none.
  const bool bucketed = grad && opts_.bucketed_grads;
  const Tensor dhead =
      grad && !lora_ && !bucketed ? grad_range(head.offset, head.numel).view({cfg_.vocab_size, C}) : Tensor();
  const Tensor stats = bucketed ? buf_->t(Buf::CeStats).range(0, 2 * N).view({N, 2}) : Tensor();
  last_grad_scale_ = grad_scale;
  // The chunk resolved here, so that cross_entropy_dw later cuts the tokens the same way.
  be.cross_entropy(hf, param_view(weights_.t(), head), targets, losses, dhf, dhead, grad_scale,
                   default_ce_chunk_tokens(cfg_.vocab_size, N, opts_.ce_chunk_tokens), stats, buckets_.vocab_rows);
  if (probe) (*probe)(static_cast<int>(cfg_.num_hidden_layers), "per-token loss", losses);

  LossSum out;
  out.sum = be.sum(losses);
  for (int32_t t : batch.targets) out.count += t >= 0 ? 1 : 0;
  last_B_ = B;
  last_T_ = T;
  have_forward_grad_ = grad;
  return out;
}

void Qwen2Model::backward() {
  LLM_CHECK(have_forward_grad_, "model: backward() without a forward(grad = true) before it");
  have_forward_grad_ = false;
  LLM_CHECK(!opts_.bucketed_grads || grad_sink_, "model: bucketed gradients need a gradient sink (set_grad_sink)");
  Backend& be = *backend_;
  const int64_t B = last_B_, T = last_T_, N = B * T, C = cfg_.hidden_size;
  const int L = static_cast<int>(cfg_.num_hidden_layers);
  const Tensor dres = buf_->t(Buf::Dres).range(0, N * C).view({N, C});
  const Tensor dnorm = lora_ ? norm_grad_sink_.t() : grad("model.norm.weight");  // LoRA: discarded
  be.rmsnorm_backward(buf_->t(Buf::Dhf).range(0, N * C).view({N, C}), residual(L, N), weight("model.norm.weight"),
                      buf_->t(Buf::RstdF).range(0, N), dres, dnorm, false);
  // Bucketed: the final norm's gradient is final here; send it so that the buffer is free for the
  // layers (the embeddings' and output layer's rows follow at the end).
  if (opts_.bucketed_grads) flush_norm_grads();
  for (int l = L - 1; l >= 0; --l) {
    const LayerActs a = acts_for(l, N, B, T);
    recompute_layer(l, a, B, T);
    layer_backward(l, a, B, T);
    if (opts_.bucketed_grads) flush_layer_grads(l);  // layer l's gradients are final: one bucket
  }
  if (lora_) return;  // the embedding is frozen
  if (opts_.bucketed_grads) {
    vocab_row_buckets();
    return;
  }
  const ParamInfo& embed = table_.params()[0];
  be.embedding_backward(buf_->t(Buf::Ids).range(0, N), dres,
                        grad_range(embed.offset, embed.numel).view({cfg_.vocab_size, C}));
}

std::vector<float> Qwen2Model::logits(const TokenBatch& batch) {
  check_batch(batch, false);
  Backend& be = *backend_;
  const int64_t B = batch.B, T = batch.T, N = B * T, C = cfg_.hidden_size, V = cfg_.vocab_size;
  if (lora_drop_) lora_drop_->active = false;
  embed_and_layers(batch, B, T);
  const ParamInfo& head = cfg_.tie_word_embeddings ? table_.params()[0] : table_.at("lm_head.weight");
  OwnedTensor out = scratch_arena_.tensor(DType::F32, {N, V});
  be.matmul(buf_->t(Buf::Hf).range(0, N * C).view({N, C}), false, param_view(weights_.t(), head), true, out.t(), 1.0f,
            0.0f, nullptr);
  std::vector<float> host(static_cast<size_t>(N * V));
  be.download(out.t(), host.data());
  return host;
}

}  // namespace llm
