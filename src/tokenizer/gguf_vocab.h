// A tokenizer from a GGUF file's tokenizer.ggml.* metadata (internal header): "gpt2" vocabularies
// with the "qwen2" pre-tokenizer become the Qwen byte-level BPE tokenizer (a tokenizer.json built
// in memory), "llama" vocabularies a sentencepiece BPE model (a ModelProto built in memory).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "llm/tokenizer.h"

namespace llm::tok {

struct GgufVocab {
  std::string model;                // tokenizer.ggml.model: "gpt2" | "llama"
  std::string pre;                  // tokenizer.ggml.pre ("qwen2" for gpt2 vocabularies)
  std::vector<std::string> tokens;  // tokenizer.ggml.tokens
  std::vector<int32_t> types;       // tokenizer.ggml.token_type (gguf-py TokenType); empty: all normal
  std::vector<float> scores;        // tokenizer.ggml.scores (llama)
  std::vector<std::string> merges;  // tokenizer.ggml.merges (gpt2): "a b"
  int32_t eos = -1, bos = -1, unk = -1, pad = -1;
  bool add_space_prefix = true;  // llama: sentencepiece's add_dummy_prefix
};

// `where` (the GGUF file) names the source in errors.
std::unique_ptr<Tokenizer> tokenizer_from_gguf_vocab(const GgufVocab& v, const std::filesystem::path& where);

}  // namespace llm::tok
