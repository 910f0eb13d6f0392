// The Qwen2 pre-tokenizer: splits normalised text into the pieces that BPE sees, exactly as the
// tokenizer.json regex
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// does under JavaScript semantics (ordered alternation with backtracking, \s as in ECMAScript),
// written by hand: std::regex has neither \p{L} nor the lookahead. docs/tokenizers.md derives
// each rule from the regex.
#pragma once

#include <string_view>
#include <vector>

#include "tokenizer/unicode_tables.h"

namespace llm::tok {

// Appends the pieces of text to pieces (views into text). Every byte of text is in exactly one
// piece, in order. Ill-formed UTF-8 subparts count as one "other" character each.
void qwen_pretokenize(const UnicodeTables& tables, std::string_view text, std::vector<std::string_view>& pieces);

}  // namespace llm::tok
