// Small models and batches for model tests.
#pragma once

#include <random>
#include <vector>

#include "llm/model.h"

namespace llm::test {

// GQA ratio 7 and head_dim 64, like Qwen2.5-0.5B, at a size a test can afford.
inline ModelConfig gqa7_config() {
  ModelConfig c;
  c.vocab_size = 300;
  c.hidden_size = 448;
  c.intermediate_size = 512;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 7;
  c.num_key_value_heads = 1;
  c.max_position_embeddings = 128;
  c.rope_theta = 1000000.0;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  return c;
}

// Odd sizes everywhere: head_dim 10, intermediate 37, vocab 131, untied head.
inline ModelConfig odd_config() {
  ModelConfig c;
  c.vocab_size = 131;
  c.hidden_size = 30;
  c.intermediate_size = 37;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 3;
  c.max_position_embeddings = 64;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  c.tie_word_embeddings = false;
  return c;
}

struct HostBatch {
  int64_t B, T;
  std::vector<int32_t> ids, targets;
  TokenBatch view() const { return TokenBatch{B, T, ids, targets, {}}; }
};

inline HostBatch random_batch(std::mt19937_64& g, int64_t B, int64_t T, int64_t V, bool some_ignored = false) {
  std::uniform_int_distribution<int32_t> id(0, int32_t(V - 1));
  HostBatch b{B, T, std::vector<int32_t>(size_t(B * T)), std::vector<int32_t>(size_t(B * T))};
  for (auto& x : b.ids) x = id(g);
  for (auto& x : b.targets) x = id(g);
  if (some_ignored) b.targets[1] = -100;
  return b;
}

// Random weights that exercise every parameter (the Qwen init has zero biases and unit norms,
// which would hide mistakes in their gradients).
inline std::vector<float> random_weights(std::mt19937_64& g, const ParamTable& table) {
  std::vector<float> w(size_t(table.flat_size()), 0.0f);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (const ParamInfo& p : table.params()) {
    const float fan_in = p.shape.size() == 2 ? float(p.shape[1]) : 1.0f;
    for (int64_t i = 0; i < p.numel; ++i) {
      float v = n(g);
      switch (p.kind) {
        case ParamKind::Norm: v = 1.0f + 0.2f * v; break;
        case ParamKind::Bias: v = 0.1f * v; break;
        case ParamKind::Embedding: v *= 0.05f; break;  // logits of order 1: a loss near ln(V), as in training
        default: v /= std::sqrt(fan_in); break;
      }
      w[size_t(p.offset + i)] = v;
    }
  }
  return w;
}

}  // namespace llm::test
