// The model config and the tokenizer of a Qwen2 GGUF file, from its qwen2.* and tokenizer.ggml.*
// metadata (internal header). Apart from InferenceModel::load_gguf so that the fuzz target for
// GGUF files (fuzz/gguf_fuzz.cpp) runs them without the model and its backends.
#pragma once

#include <memory>

#include "llm/gguf_reader.h"
#include "llm/model.h"
#include "llm/tokenizer.h"

namespace llm {

// Errors name the file and the key that is wrong (another architecture than qwen2, unsupported
// head sizes or RoPE scaling, a config ModelConfig::validate rejects).
ModelConfig gguf_model_config(const GgufFile& f);

// Errors name the file and the key (a special token id outside the vocabulary, a vocabulary that
// tokenizer_from_gguf_vocab rejects).
std::unique_ptr<Tokenizer> gguf_tokenizer(const GgufFile& f);

}  // namespace llm
