// Model weights in HF's layout: model.safetensors (or model.safetensors.index.json with shards)
// under HF tensor names, plus config.json. Our checkpoints write exactly this, so HF tools load
// them, and continued pretraining reads an HF Qwen2 directory the same way.
#pragma once

#include <filesystem>
#include <span>
#include <vector>

#include "llm/dtype.h"
#include "llm/model.h"

namespace llm {

// Writes every parameter of the flat fp32 host values [table.flat_size()] to `file` in dtype,
// with __metadata__ {"format": "pt"} (transformers refuses files without it). Atomic.
void write_model_safetensors(const std::filesystem::path& file, const ParamTable& table, std::span<const float> flat,
                             DType dtype);

// Writes config.json (HF Qwen2Config keys) atomically.
void write_hf_config(const std::filesystem::path& file, const ModelConfig& cfg, DType dtype);

// Reads the weights of an HF directory (model.safetensors, or model.safetensors.index.json and
// the shards it names) into flat fp32 host values [table.flat_size()]. Every parameter of the
// table must be present with its shape (F32, F16 or BF16). With tied embeddings an lm_head.weight
// in the file is ignored when it equals the embedding (some exporters write both) and an error
// otherwise; any other unexpected tensor is an error naming it.
std::vector<float> read_model_weights(const std::filesystem::path& dir, const ParamTable& table,
                                      const ModelConfig& cfg);

}  // namespace llm
