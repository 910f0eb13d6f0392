// GPT-2's byte-to-unicode mapping: tokenizer.json spells every byte as a printable character
// (bytes 33..126, 161..172, 174..255 as themselves, the other 68 bytes as U+0100.. in order),
// so "Ġthe" is the bytes " the". We undo it when loading and work on raw bytes.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace llm::tok {

struct ByteLevel {
  std::array<char32_t, 256> byte_to_char{};
  std::array<int16_t, 324> char_to_byte{};  // -1 for characters that stand for no byte

  constexpr ByteLevel() {
    for (auto& b : char_to_byte) b = -1;
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      byte_to_char[static_cast<size_t>(b)] = c;
      char_to_byte[c] = static_cast<int16_t>(b);
    }
  }
};

inline constexpr ByteLevel kByteLevel{};

// The raw bytes a byte-level spelled string stands for; nullopt unless it is well-formed UTF-8
// made of byte-level characters only.
std::optional<std::string> byte_level_to_bytes(std::string_view spelled);
// The byte-level spelling of raw bytes (how tokenizer.json writes them; used in messages).
std::string bytes_to_byte_level(std::string_view bytes);

}  // namespace llm::tok
