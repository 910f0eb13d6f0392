// The sentencepiece tokenizer (internal header): a loaded .model file behind llm::Tokenizer.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "llm/tokenizer.h"

namespace llm::tok {

// Loads a serialized sentencepiece ModelProto; `path` names it in errors.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& path);
std::unique_ptr<Tokenizer> sentencepiece_from_bytes(std::string model_bytes, const std::filesystem::path& path);

}  // namespace llm::tok
