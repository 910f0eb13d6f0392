// Added tokens (<|im_start|>, <think>, ...): found in the text before normalisation and
// pre-tokenisation, each becoming its one id. Matching follows the JavaScript reference: scan left
// to right, at each position take the longest token that starts there. Flags as in HF:
//  - lstrip / rstrip: whitespace (JavaScript \s) before / after the token is dropped;
//  - single_word: a match touching a letter or digit on either side is not a token (HF; the
//    JavaScript reference ignores this flag);
//  - normalized: the token is matched in the NFC-normalised text instead of the raw text;
//  - special: only reported by is_special() (generation hides these).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/unicode_tables.h"

namespace llm::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

// A stretch of text: either plain text to normalise and pre-tokenize, or one added token.
struct Segment {
  std::string_view text;
  int32_t token = -1;  // id, or -1 for plain text
  int index = -1;      // the token's index in its matcher (internal)
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // tokens: the ones this matcher finds (all of one "normalized" kind).
  AddedTokenMatcher(const std::vector<AddedToken>& tokens, const UnicodeTables* tables);

  bool empty() const { return tokens_.empty(); }
  // Appends the segments of text to out, with lstrip/rstrip applied to the neighbouring text.
  // Empty text segments are dropped.
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  // Length of the longest token starting at text[i] and its index, or {0, -1}.
  std::pair<size_t, int> longest_at(std::string_view text, size_t i) const;
  bool word_char_before(std::string_view text, size_t i) const;
  bool word_char_after(std::string_view text, size_t i) const;

  std::vector<AddedToken> tokens_;
  // Token indices by first byte, longest content first.
  std::array<std::vector<int>, 256> by_first_byte_{};
  const UnicodeTables* tables_ = nullptr;
};

// JavaScript's trimStart/trimEnd whitespace (the same set as \s).
std::string_view trim_js_space_left(const UnicodeTables& tables, std::string_view s);
std::string_view trim_js_space_right(const UnicodeTables& tables, std::string_view s);

}  // namespace llm::tok
