// ParamTable: HF names, shapes and flat offsets of every Qwen2 parameter; initial values.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "data/hash.h"
#include "llm/error.h"
#include "llm/model.h"

namespace llm {

namespace {

constexpr int64_t kGroupAlign = 64;

int64_t align_up(int64_t v) { return (v + kGroupAlign - 1) / kGroupAlign * kGroupAlign; }

// A standard normal from (key, index) alone: Box-Muller on two counter-based uniforms.
float normal_at(uint64_t key, int64_t index) {
  const uint64_t a = data::mix64(key ^ (static_cast<uint64_t>(index) * 2 + 0));
  const uint64_t b = data::mix64(key ^ (static_cast<uint64_t>(index) * 2 + 1) ^ 0x5851f42d4c957f2dull);
  const double u1 = (static_cast<double>(a >> 11) + 1.0) * 0x1p-53;  // (0, 1]
  const double u2 = static_cast<double>(b >> 11) * 0x1p-53;          // [0, 1)
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
}

}  // namespace

std::string ParamTable::layer_name(int l, std::string_view suffix) { return cat("model.layers.", l, ".", suffix); }

ParamTable::ParamTable(const ModelConfig& c) {
  const int64_t C = c.hidden_size, I = c.intermediate_size, D = c.head_dim();
  const int64_t q = c.num_attention_heads * D, kv = c.num_key_value_heads * D;
  int64_t off = 0;
  auto add = [&](std::string name, std::vector<int64_t> shape, ParamKind kind, int layer) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    params_.push_back(ParamInfo{std::move(name), std::move(shape), off, n, kind, layer});
    off += n;
    count_ += n;
  };
  auto group = [&] { off = align_up(off); };

  add("model.embed_tokens.weight", {c.vocab_size, C}, ParamKind::Embedding, -1);
  for (int l = 0; l < static_cast<int>(c.num_hidden_layers); ++l) {
    group();
    add(layer_name(l, "input_layernorm.weight"), {C}, ParamKind::Norm, l);
    group();
    add(layer_name(l, "self_attn.q_proj.weight"), {q, C}, ParamKind::Weight, l);
    add(layer_name(l, "self_attn.k_proj.weight"), {kv, C}, ParamKind::Weight, l);
    add(layer_name(l, "self_attn.v_proj.weight"), {kv, C}, ParamKind::Weight, l);
    group();
    add(layer_name(l, "self_attn.q_proj.bias"), {q}, ParamKind::Bias, l);
    add(layer_name(l, "self_attn.k_proj.bias"), {kv}, ParamKind::Bias, l);
    add(layer_name(l, "self_attn.v_proj.bias"), {kv}, ParamKind::Bias, l);
    group();
    add(layer_name(l, "self_attn.o_proj.weight"), {C, q}, ParamKind::Weight, l);
    group();
    add(layer_name(l, "post_attention_layernorm.weight"), {C}, ParamKind::Norm, l);
    group();
    add(layer_name(l, "mlp.gate_proj.weight"), {I, C}, ParamKind::Weight, l);
    add(layer_name(l, "mlp.up_proj.weight"), {I, C}, ParamKind::Weight, l);
    group();
    add(layer_name(l, "mlp.down_proj.weight"), {C, I}, ParamKind::Weight, l);
  }
  group();
  add("model.norm.weight", {C}, ParamKind::Norm, -1);
  if (!c.tie_word_embeddings) {
    group();
    add("lm_head.weight", {c.vocab_size, C}, ParamKind::Head, -1);
  }
  group();
  flat_size_ = off;
}

const ParamInfo* ParamTable::find(std::string_view name) const {
  for (const auto& p : params_) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const ParamInfo& ParamTable::at(std::string_view name) const {
  const ParamInfo* p = find(name);
  LLM_CHECK(p != nullptr, "parameters: no tensor named \"", name, "\" in this model");
  return *p;
}

void init_parameter_values(const ModelConfig& cfg, const ParamTable& table, uint64_t seed, int64_t begin, int64_t count,
                           float* out) {
  LLM_CHECK(begin >= 0 && count >= 0 && begin + count <= table.flat_size(), "init_parameter_values: range [", begin,
            ", ", begin + count, ") is outside the ", table.flat_size(), " flat parameters");
  std::fill(out, out + count, 0.0f);  // padding between groups stays zero
  const int64_t end = begin + count;
  const auto stddev = static_cast<float>(cfg.initializer_range);
  for (const ParamInfo& p : table.params()) {
    const int64_t lo = std::max(begin, p.offset), hi = std::min(end, p.offset + p.numel);
    if (lo >= hi) continue;
    float* dst = out + (lo - begin);
    switch (p.kind) {
      case ParamKind::Bias: break;  // zeros
      case ParamKind::Norm: std::fill(dst, dst + (hi - lo), 1.0f); break;
      default: {
        const uint64_t key = data::mix64(seed) ^ data::fnv1a(p.name);
#pragma omp parallel for schedule(static) if (hi - lo > 65536)
        for (int64_t i = lo; i < hi; ++i) dst[i - lo] = stddev * normal_at(key, i - p.offset);
      }
    }
  }
}

}  // namespace llm

namespace llm {

GradBuckets grad_buckets(const ParamTable& table, int64_t num_layers) {
  GradBuckets b;
  b.layer_begin.assign(static_cast<size_t>(num_layers) + 1, -1);
  for (const ParamInfo& p : table.params()) {
    if (p.layer >= 0 && b.layer_begin[size_t(p.layer)] < 0) b.layer_begin[size_t(p.layer)] = p.offset;
    // The first parameter after the layers (model.norm) ends the last layer's range.
    if (p.layer < 0 && p.offset > 0 && b.layer_begin.back() < 0) b.layer_begin.back() = p.offset;
  }
  if (b.layer_begin.back() < 0) b.layer_begin.back() = table.flat_size();
  for (int64_t l = 0; l < num_layers; ++l) {
    LLM_CHECK(b.layer_begin[size_t(l)] >= 0, "parameters: layer ", l, " has no parameters");
    b.largest_layer = std::max(b.largest_layer, b.layer_begin[size_t(l) + 1] - b.layer_begin[size_t(l)]);
  }
  // Vocabulary rows come in buckets no larger than the largest layer, so the embeddings (a quarter
  // of the 0.5B model) never need a buffer of their own.
  const ParamInfo& embed = table.params().front();
  const int64_t V = embed.shape[0], C = embed.shape[1];
  b.vocab_rows = std::clamp<int64_t>(b.largest_layer / std::max<int64_t>(C, 1), 1, std::max<int64_t>(V, 1));
  b.buffer = std::max({b.largest_layer, b.vocab_rows * C, C});
  return b;
}

}  // namespace llm
