// train.lora: the settings of a LoRA run (HF PEFT's LoraConfig r, lora_alpha, lora_dropout,
// target_modules). Kept apart from lora.h so that the model and trainer options can hold it
// without the adapter table.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llm {

// The linear layers an adapter can sit on, by their HF module names, in the order the block runs them.
inline constexpr std::array<std::string_view, 7> kLoraModules = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                                 "gate_proj", "up_proj", "down_proj"};

struct LoraConfig {
  int64_t rank = 0;  // r; 0: no LoRA (full fine-tuning)
  double alpha = 0;  // lora_alpha; the adapter's output is scaled by alpha / rank
  double dropout = 0;
  std::vector<std::string> target_modules;  // HF names from kLoraModules
  bool enabled() const { return rank > 0; }
  float scale() const { return static_cast<float>(alpha / static_cast<double>(rank)); }
  // Index in kLoraModules of target_modules' names, in kLoraModules order.
  std::vector<int> module_indices() const;
};

// Throws naming the key (where + ".rank", where + ".target_modules", ...) when a value is out of
// range or a target is not one of kLoraModules (the message lists them).
void validate_lora_config(const LoraConfig& c, const std::string& where);

}  // namespace llm
