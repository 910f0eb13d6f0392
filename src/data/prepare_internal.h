// Shared between prepare.cpp and tokenizer_setup.cpp. Private to src/data.
#pragma once

#include <nlohmann/json.hpp>

#include "llm/prepare.h"

namespace llm::data {

// prepare_corpus, recording tok_config as the manifest's "config.tokenizer".
PrepareResult prepare_with_config(const DataConfig& d, const Tokenizer& tok, const nlohmann::json& tok_config,
                                  const PrepareOptions& opt);

}  // namespace llm::data
