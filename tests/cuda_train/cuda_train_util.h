// Helpers of the whole-step tests: the tiny config's model section and comparison of host vectors.
// The CUDA side is the emulated CudaBackend (llm::cuda_emu, see docs/cuda-emulation.md), built by
// the host compiler from the very kernels and launchers nvcc builds.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "llm/model.h"

namespace llm::test {

// The "model" section of configs/tiny.json: GQA (4 query heads over 2 KV heads), head_dim 64,
// tied embeddings, and (as in every Qwen2) q/k/v biases.
inline nlohmann::json tiny_model_json() {
  std::ifstream in(std::string(LLM_SOURCE_DIR) + "/configs/tiny.json");
  return nlohmann::json::parse(in).at("model");
}

inline ModelConfig tiny_model_config() {
  const nlohmann::json j = tiny_model_json();
  ModelConfig c;
  c.vocab_size = j.at("vocab_size");
  c.hidden_size = j.at("hidden_size");
  c.intermediate_size = j.at("intermediate_size");
  c.num_hidden_layers = j.at("num_hidden_layers");
  c.num_attention_heads = j.at("num_attention_heads");
  c.num_key_value_heads = j.at("num_key_value_heads");
  c.max_position_embeddings = j.at("max_position_embeddings");
  c.rope_theta = j.at("rope_theta");
  c.rms_norm_eps = j.at("rms_norm_eps");
  c.tie_word_embeddings = j.at("tie_word_embeddings");
  c.initializer_range = j.at("initializer_range");
  c.validate("configs/tiny.json");
  return c;
}

// max_i |got_i - want_i| / max(|want_i|, rms(want)): relative error where it means something,
// measured against the tensor's rms where an entry is near zero (gradients have many such).
inline double rel_to_rms_err(const std::vector<float>& got, const std::vector<float>& want, size_t* at = nullptr) {
  double ss = 0;
  for (float w : want) ss += double(w) * w;
  const double rms = want.empty() ? 0 : std::sqrt(ss / double(want.size()));
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(double(got[i]) - double(want[i])) / std::max({std::abs(double(want[i])), rms, 1e-30});
    if (!(e <= worst)) {  // also catches NaN
      worst = std::isnan(e) ? INFINITY : e;
      if (at) *at = i;
    }
  }
  return worst;
}

}  // namespace llm::test
