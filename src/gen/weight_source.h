// Where InferenceModel's weights come from (internal header): fp32 host values by HF parameter
// name (a checkpoint or HF directory read whole), or a GGUF file whose quantized tensors are kept
// in their ggml blocks (src/gen/gguf_model.cpp).
#pragma once

#include <cstdint>
#include <string>

#include "llm/gguf_reader.h"

namespace llm {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // The n values of parameter `name` (HF name, e.g. model.layers.0.self_attn.q_proj.weight) in fp32.
  virtual void read_f32(const std::string& name, float* out, int64_t n) const = 0;
  // The parameter's tensor when it is stored in a ggml block format worth computing on as it is
  // (q8_0, q4_K, ...: not f32/f16/bf16); nullptr otherwise.
  virtual const GgufFile::TensorInfo* blocks(const std::string& /*name*/) const { return nullptr; }
};

}  // namespace llm
