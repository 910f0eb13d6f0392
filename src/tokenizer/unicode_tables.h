// Unicode facts the Qwen pipeline needs per character: the regex classes of the pre-tokenizer
// (\p{L}, \p{N}, JavaScript's \s) and whether NFC leaves the character alone. Built once per
// tokenizer from ICU: a table for the BMP, ICU calls for the rest.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace llm::tok {

enum class CharClass : uint8_t {
  kOther = 0,    // none of the below; also an ill-formed UTF-8 subpart
  kLetter = 1,   // \p{L}: Lu Ll Lt Lm Lo
  kNumber = 2,   // \p{N}: Nd Nl No
  kSpace = 3,    // JavaScript \s other than \r and \n
  kNewline = 4,  // \r or \n (also \s)
};

class UnicodeTables {
 public:
  UnicodeTables();

  CharClass cls(int32_t cp) const {
    if (cp >= 0 && cp < 0x10000) return static_cast<CharClass>(bmp_[cp] & kClassMask);
    return cp < 0 ? CharClass::kOther : slow_class(cp);
  }
  // NFC_Quick_Check = Yes and canonical combining class 0: a string made only of such
  // characters is already NFC (docs/tokenizers.md).
  bool nfc_inert(int32_t cp) const {
    if (cp < 0x10000) return (bmp_[cp] & kNfcInert) != 0;
    return slow_nfc_inert(cp);
  }

  // Appends the NFC form of s to out. Ill-formed UTF-8 subparts are copied through unchanged
  // and split the text into independently normalised runs.
  void append_nfc(std::string_view s, std::string& out) const;
  // True when append_nfc would copy s unchanged (checked without ICU for the common case).
  bool is_nfc_inert(std::string_view s) const;

  static CharClass slow_class(int32_t cp);
  static bool slow_nfc_inert(int32_t cp);

 private:
  static constexpr uint8_t kClassMask = 0x07;
  static constexpr uint8_t kNfcInert = 0x08;
  std::vector<uint8_t> bmp_;  // [0x10000]: class | kNfcInert
};

}  // namespace llm::tok
