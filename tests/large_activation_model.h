// A tiny Qwen2 whose weights put values beyond 1e5 into two residual channels, as real Qwen2
// weights do ("massive activations": a few channels of a few tokens reach 1e4..1e5+, past f16's
// 65504), for the fp16 tests of training and generation (tests/model, tests/cuda_train,
// tests/cuda_gen). No real weights are needed:
//  - "sink" tokens (ids that are multiples of kSinkEvery; each row starts with one, like a BOS)
//    have +1 in residual channel kSignal of their embedding, every other token -1;
//  - in each layer, MLP unit kUnit reads only that channel (gate and up rows 2 * e_kSignal), so
//    silu(gate) * up is ~1e2 for a sink token and ~1e-3 for the others;
//  - down_proj's column kUnit feeds the two massive channels with +1500 and -1000: a sink token's
//    residual gets ~+2e5 and ~-1.4e5 there after layer 0 (and keeps them), the others ~1;
//  - the RMSNorm weights of the massive channels are 0.05, so a sink row normalises to ~0.3 there
//    (sane) while the rest of its row becomes tiny, as in the real models.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "llm/inference.h"
#include "llm/model.h"

namespace llm::test {

constexpr int32_t kSinkEvery = 16;
constexpr int64_t kSignal = 5, kMassiveA = 17, kMassiveB = 42, kUnit = 7;

inline ModelConfig large_activation_config() {
  ModelConfig c;
  c.vocab_size = 96;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 64;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  c.validate("large_activation_config");
  return c;
}

inline std::vector<float> large_activation_weights(const ModelConfig& cfg, uint64_t seed) {
  const ParamTable table(cfg);
  const int64_t C = cfg.hidden_size, I = cfg.intermediate_size;
  std::mt19937_64 g(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(table.flat_size()), 0.0f);
  for (const ParamInfo& p : table.params()) {
    float* v = w.data() + p.offset;
    const float fan_in = p.shape.size() == 2 ? static_cast<float>(p.shape[1]) : 1.0f;
    for (int64_t i = 0; i < p.numel; ++i) v[i] = n(g) / std::sqrt(fan_in);
    const std::string& name = p.name;
    auto ends = [&](const char* s) { return name.size() >= std::strlen(s) && name.ends_with(s); };
    if (p.kind == ParamKind::Embedding) {
      for (int64_t t = 0; t < cfg.vocab_size; ++t) {
        for (int64_t c = 0; c < C; ++c) v[t * C + c] *= 0.05f * std::sqrt(fan_in);  // ~N(0, 0.05)
        v[t * C + kSignal] = t % kSinkEvery == 0 ? 1.0f : -1.0f;
      }
    } else if (p.kind == ParamKind::Norm) {
      for (int64_t c = 0; c < C; ++c) v[c] = 1.0f + 0.1f * n(g);
      v[kSignal] = 1.0f;
      v[kMassiveA] = v[kMassiveB] = 0.05f;
    } else if (p.kind == ParamKind::Bias) {
      for (int64_t i = 0; i < p.numel; ++i) v[i] *= 0.1f;
    } else if (ends("o_proj.weight")) {
      for (int64_t i = 0; i < p.numel; ++i) v[i] *= 0.1f;  // attention adds little: the signal channel leads
    } else if (ends("gate_proj.weight") || ends("up_proj.weight")) {
      for (int64_t c = 0; c < C; ++c) v[kUnit * C + c] = c == kSignal ? 2.0f : 0.0f;
    } else if (ends("down_proj.weight")) {
      for (int64_t i = 0; i < p.numel; ++i) v[i] *= 0.5f;
      for (int64_t c = 0; c < C; ++c) v[c * I + kUnit] = 0.0f;  // unit kUnit feeds only the massive channels
      v[kMassiveA * I + kUnit] = 1500.0f;
      v[kMassiveB * I + kUnit] = -1000.0f;
    }
  }
  return w;
}

// B rows of T tokens, each row starting with a sink token and about one token in eight a sink;
// the target of a token is a fixed function of it (learnable in a few steps).
struct LargeActivationBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> ids, targets;
  TokenBatch view() const { return TokenBatch{B, T, ids, targets, {}}; }
};

inline LargeActivationBatch large_activation_batch(std::mt19937_64& g, const ModelConfig& cfg, int64_t B, int64_t T) {
  const auto V = static_cast<int32_t>(cfg.vocab_size);
  std::uniform_int_distribution<int32_t> id(0, V - 1), sinks(0, V / kSinkEvery - 1), coin(0, 7);
  LargeActivationBatch b{B, T, std::vector<int32_t>(static_cast<size_t>(B * T)), {}};
  for (int64_t i = 0; i < B * T; ++i) {
    b.ids[static_cast<size_t>(i)] = i % T == 0 || coin(g) == 0 ? sinks(g) * kSinkEvery : id(g);
  }
  for (int32_t t : b.ids) b.targets.push_back((t * 7 + 3) % V);
  return b;
}

// SGD on fp32 master weights held on the host, one batch per step, with the trainer's dynamic
// loss scaling (a step whose gradients are not finite is redone with half the scale): the loss of
// each step before its update (the loss does not depend on the scale). A loss that is not finite
// ends the run there.
inline std::vector<double> sgd_losses(Backend& be, Qwen2Model& model, std::vector<float> w,
                                      const std::vector<LargeActivationBatch>& batches, float lr, float loss_scale) {
  std::vector<double> losses;
  std::vector<float> grad(w.size());
  model.set_weights(w);
  for (const LargeActivationBatch& b : batches) {
    for (int tries = 0; tries < 16; ++tries, loss_scale /= 2) {
      model.zero_grads();
      const LossSum l = model.forward(b.view(), true, loss_scale / static_cast<float>(b.targets.size()));
      if (tries == 0) losses.push_back(l.mean());
      if (!std::isfinite(l.sum)) return losses;
      model.backward();
      be.download(model.grads(), grad.data());
      double ss = 0;
      for (float x : grad) ss += double(x / loss_scale) * double(x / loss_scale);
      if (!std::isfinite(ss)) continue;
      // Clipped at norm 1, as the trainer's optim.grad_clip does: plain SGD on weights of 1e3 next
      // to weights of 1e-2 is unstable otherwise, and an unstable run amplifies rounding differences.
      const double clip = std::min(1.0, 1.0 / std::sqrt(ss));
      for (size_t i = 0; i < w.size(); ++i) w[i] -= float(lr * clip * grad[i] / loss_scale);
      model.set_weights(w);
      break;
    }
  }
  return losses;
}

// With the residual in f16 (narrow_residual): a prompt and two decode steps without a sink token
// stay finite; the sink token's decode step overflows and fails naming layer 0's down_proj output.
inline void expect_sink_step_overflow_named(InferenceModel& m) {
  m.forward(std::vector<int32_t>{1, 2, 3, 5, 7});
  for (int32_t t : {9, 11}) m.forward(std::vector<int32_t>{t});
  try {
    m.forward(std::vector<int32_t>{kSinkEvery});
    ADD_FAILURE() << "the sink token's decode step must overflow the f16 residual";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layer 0 (model.layers.0) mlp.down_proj out [1, 64] f16"), std::string::npos) << msg;
  }
}

}  // namespace llm::test
