// LoRA adapters over the Qwen2 linear layers: the adapter table (one A [r, in] and B [out, r]
// per layer and target module, in one flat buffer), PEFT-style initial values, the merge into
// the base weights, and the HF PEFT directory format (adapter_config.json and
// adapter_model.safetensors with PEFT's tensor names).
//
//   y = x W^T + (alpha / r) * dropout(x) A^T B^T
//
// Our blocks fuse q/k/v and gate/up; an adapter stays per HF module and writes its slice of the
// fused output (columns [col0, col0 + out)).
#pragma once

#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "llm/lora_config.h"
#include "llm/model.h"

namespace llm {

struct LoraAdapterInfo {
  int layer = 0;
  int module = 0;           // index in kLoraModules
  int64_t in = 0, out = 0;  // the base layer's W is [out, in]
  int64_t col0 = 0;         // first column of this module's output in the fused block output
  int64_t a_offset = 0;     // A [r, in] in the flat adapter buffer
  int64_t b_offset = 0;     // B [out, r]
  std::string peft_prefix;  // base_model.model.model.layers.N.self_attn.q_proj
  std::string base_weight;  // model.layers.N.self_attn.q_proj.weight
};

class LoraTable {
 public:
  LoraTable(const ModelConfig& model, const LoraConfig& lora);
  const LoraConfig& config() const { return cfg_; }
  const std::vector<LoraAdapterInfo>& adapters() const { return adapters_; }
  // Adapters of one layer's fused block (0 qkv, 1 o, 2 gate_up, 3 down), in column order.
  std::vector<const LoraAdapterInfo*> of_block(int layer, int block) const;
  int64_t flat_size() const { return flat_size_; }  // with padding
  int64_t count() const { return count_; }          // adapter parameters proper

 private:
  LoraConfig cfg_;
  std::vector<LoraAdapterInfo> adapters_;
  int64_t flat_size_ = 0, count_ = 0;
};

// Which fused block of a layer a module belongs to: 0 qkv, 1 o, 2 gate_up, 3 down.
int lora_block_of(int module);

// PEFT's initial values: A uniform in [-1/sqrt(in), 1/sqrt(in)] (kaiming_uniform_ with
// a = sqrt(5)), B zero, so the adapted model starts as the base. Each value is a function of
// (seed, tensor name, index) alone.
std::vector<float> init_lora_values(const LoraTable& t, uint64_t seed);

// base_flat [table.flat_size()] += scale * B A for every adapter: the merged model.
void merge_lora(const ParamTable& table, const LoraTable& lora, std::span<const float> adapters,
                std::span<float> base_flat);

// ---- HF PEFT directories -------------------------------------------------------------------------

// Writes dir/adapter_config.json and dir/adapter_model.safetensors (F32), each atomically.
void write_peft_adapter(const std::filesystem::path& dir, const LoraTable& t, std::span<const float> flat,
                        const std::string& base_model_name_or_path);

struct PeftAdapter {
  LoraConfig config;
  std::vector<float> flat;  // in LoraTable(model, config) order
  std::string base_model_name_or_path;
};

// Reads a PEFT LoRA directory (or a LoRA run's newest checkpoint, locate_adapter) for a model of this shape. Errors
// name the file and the key or tensor that is wrong (unsupported options such as use_dora, missing or mis-shaped
// tensors).
PeftAdapter read_peft_adapter(const std::filesystem::path& dir, const ModelConfig& model);

}  // namespace llm

namespace llm {

// A PEFT adapter directory: dir itself when it holds adapter_config.json, else the newest
// checkpoint of a LoRA run directory. Throws naming dir when neither.
std::filesystem::path locate_adapter(const std::filesystem::path& dir);

// Writes out_dir as an HF model directory (config.json, model.safetensors in `dtype`, the base's
// tokenizer files) holding base_model's weights with the adapter merged in, W += alpha/r B A in
// fp32; built under a temporary name and renamed into place when complete.
void merge_lora_directory(const std::filesystem::path& base_model, const std::filesystem::path& adapter,
                          const std::filesystem::path& out_dir, DType dtype);

// base + adapter merged (fp32) into a temporary directory next to `near`, removed again on
// destruction: what `llmtrain export --lora` exports from.
class TempMergedModel {
 public:
  TempMergedModel(const std::filesystem::path& base_model, const std::filesystem::path& adapter,
                  const std::filesystem::path& near);
  ~TempMergedModel();
  TempMergedModel(const TempMergedModel&) = delete;
  TempMergedModel& operator=(const TempMergedModel&) = delete;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
};

}  // namespace llm
