#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace llm::tok {

std::optional<std::string> byte_level_to_bytes(std::string_view spelled) {
  std::string out;
  out.reserve(spelled.size());
  for (size_t i = 0; i < spelled.size();) {
    const Utf8Char c = decode_utf8(spelled, i);
    if (c.cp < 0 || c.cp >= static_cast<int32_t>(kByteLevel.char_to_byte.size())) return std::nullopt;
    const int16_t b = kByteLevel.char_to_byte[static_cast<size_t>(c.cp)];
    if (b < 0) return std::nullopt;
    out += static_cast<char>(b);
    i += static_cast<size_t>(c.len);
  }
  return out;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  for (const char ch : bytes) append_utf8(out, kByteLevel.byte_to_char[static_cast<uint8_t>(ch)]);
  return out;
}

}  // namespace llm::tok
