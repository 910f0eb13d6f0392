// Helpers for the GGUF tests: an HF model directory with random (initial) weights.
#pragma once

#include <filesystem>
#include <vector>

#include "llm/hf_weights.h"
#include "llm/model.h"

namespace llm::test {

// Writes config.json and model.safetensors of a 1-layer model (hidden 32, GQA 2:1) with the
// given vocabulary into dir (created); the caller adds the tokenizer files.
inline void write_random_hf_model(const std::filesystem::path& dir, int64_t vocab_size) {
  ModelConfig cfg;
  cfg.vocab_size = vocab_size;
  cfg.hidden_size = 32;
  cfg.intermediate_size = 64;
  cfg.num_hidden_layers = 1;
  cfg.num_attention_heads = 2;
  cfg.num_key_value_heads = 1;
  const ParamTable table(cfg);
  std::vector<float> w(static_cast<size_t>(table.flat_size()));
  init_parameter_values(cfg, table, 7, 0, table.flat_size(), w.data());
  std::filesystem::create_directories(dir);
  write_hf_config(dir / "config.json", cfg, DType::F32);
  write_model_safetensors(dir / "model.safetensors", table, w, DType::F32);
}

}  // namespace llm::test
