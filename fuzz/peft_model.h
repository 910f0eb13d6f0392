// The model the PEFT fuzz target reads adapters for, shared with the program that writes its seeds.
#pragma once

#include "llm/model.h"

namespace llm::fuzz {

// 2 layers, hidden 64, GQA 2:1 (k_proj and v_proj are [32, 64]): small, but every module shape differs.
inline ModelConfig peft_model() {
  ModelConfig m;
  m.vocab_size = 256;
  m.hidden_size = 64;
  m.intermediate_size = 128;
  m.num_hidden_layers = 2;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  return m;
}

}  // namespace llm::fuzz
