// UTF-8 helpers shared by the tokenizers: decoding one character with the Unicode "maximal
// subpart" rule for ill-formed input, and the lossy conversion decode() uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llm::tok {

// One decoded character. For ill-formed input cp is -1 and len is the length of the maximal
// subpart (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal Subparts"): the longest
// prefix of a well-formed sequence, at least one byte.
struct Utf8Char {
  int32_t cp;
  int len;
};

// Decodes the character starting at s[i] (i < s.size()).
Utf8Char decode_utf8(std::string_view s, size_t i);

// Appends s with every maximal ill-formed subpart replaced by U+FFFD: the policy of WHATWG's
// TextDecoder (which the JavaScript reference uses) and of Rust's String::from_utf8_lossy (HF).
void append_utf8_lossy(std::string& out, std::string_view s);

bool is_valid_utf8(std::string_view s);

void append_utf8(std::string& out, char32_t cp);

}  // namespace llm::tok
