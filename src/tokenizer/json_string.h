// A fast, strict parser for a line holding one JSON string (the jsonl input of tokenize_stream).
// nlohmann::json is general but slow per line; this handles the common case and leaves every
// other line (errors included) to nlohmann, which then gives the message.
#pragma once

#include <string>
#include <string_view>

namespace llm::tok {

// Parses `line` = optional whitespace, one JSON string, optional whitespace. Returns false
// (out unspecified) for anything else, including invalid UTF-8 and lone surrogate escapes.
bool parse_json_string_line(std::string_view line, std::string& out);

}  // namespace llm::tok
