#include "tokenizer/qwen_pretokenizer.h"

#include <array>
#include <cstdint>

#include "tokenizer/utf8.h"

namespace llm::tok {

namespace {

constexpr std::array<CharClass, 128> make_ascii_classes() {
  std::array<CharClass, 128> t{};
  for (int c = 0; c < 128; ++c) {
    CharClass k = CharClass::kOther;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k = CharClass::kLetter;
    if (c >= '0' && c <= '9') k = CharClass::kNumber;
    if (c == ' ' || c == '\t' || c == '\v' || c == '\f') k = CharClass::kSpace;
    if (c == '\r' || c == '\n') k = CharClass::kNewline;
    t[static_cast<size_t>(c)] = k;
  }
  return t;
}
constexpr std::array<CharClass, 128> kAscii = make_ascii_classes();

struct Char {
  CharClass cls;
  int len;
};

class Scanner {
 public:
  Scanner(const UnicodeTables& tables, std::string_view s) : tables_(tables), s_(s) {}

  Char at(size_t i) const {
    const uint8_t b = static_cast<uint8_t>(s_[i]);
    if (b < 0x80) return {kAscii[b], 1};
    const Utf8Char c = decode_utf8(s_, i);
    return {tables_.cls(c.cp), c.len};
  }
  bool is_space(CharClass c) const { return c == CharClass::kSpace || c == CharClass::kNewline; }
  size_t size() const { return s_.size(); }
  uint8_t byte(size_t i) const { return i < s_.size() ? static_cast<uint8_t>(s_[i]) : 0; }

  // End of the run of characters of class `cls` starting at i.
  size_t run_end(size_t i, CharClass cls) const {
    while (i < s_.size()) {
      const Char c = at(i);
      if (c.cls != cls) break;
      i += static_cast<size_t>(c.len);
    }
    return i;
  }

  // End of the piece that starts at i (i < size()): the first alternative of the regex that
  // matches at i, with that alternative's backtracking resolved.
  size_t match(size_t i) const {
    const size_t n = s_.size();
    const Char c0 = at(i);
    const size_t i1 = i + static_cast<size_t>(c0.len);

    // 1. '(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])  (ASCII apostrophe only)
    if (s_[i] == '\'') {
      const uint8_t a = byte(i + 1) | 0x20, b = byte(i + 2) | 0x20;  // | 0x20: ASCII lower case
      if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    // 2. [^\r\n\p{L}\p{N}]?\p{L}+
    if (c0.cls == CharClass::kLetter) return run_end(i1, CharClass::kLetter);
    if (c0.cls != CharClass::kNewline && c0.cls != CharClass::kNumber && i1 < n && at(i1).cls == CharClass::kLetter) {
      return run_end(i1, CharClass::kLetter);
    }
    // 3. \p{N}  (one character)
    if (c0.cls == CharClass::kNumber) return i1;
    // 4.  ?[^\s\p{L}\p{N}]+[\r\n]*
    {
      const size_t j = s_[i] == ' ' ? i + 1 : i;
      if (j < n && at(j).cls == CharClass::kOther) {
        size_t k = run_end(j, CharClass::kOther);
        while (k < n && (s_[k] == '\r' || s_[k] == '\n')) ++k;
        return k;
      }
    }
    // Here c0 is whitespace (letters, numbers and others have matched above).
    // Scan the maximal whitespace run, remembering where its last \r/\n ends and where its last
    // character starts.
    size_t end = i, after_newline = 0, last_start = i;
    while (end < n) {
      const Char c = at(end);
      if (!is_space(c.cls)) break;
      last_start = end;
      end += static_cast<size_t>(c.len);
      if (c.cls == CharClass::kNewline) after_newline = end;
    }
    // 5. \s*[\r\n]+  : \s* backtracks from the run's end to its last \r/\n.
    if (after_newline != 0) return after_newline;
    // 6. \s+(?!\S)   : the whole run at the end of text, else all but its last character.
    if (end == n) return end;
    if (last_start > i) return last_start;
    // 7. \s+         : a single whitespace character before non-whitespace.
    return end;
  }

 private:
  const UnicodeTables& tables_;
  std::string_view s_;
};

}  // namespace

void qwen_pretokenize(const UnicodeTables& tables, std::string_view text, std::vector<std::string_view>& pieces) {
  const Scanner scan(tables, text);
  for (size_t i = 0; i < text.size();) {
    const size_t end = scan.match(i);
    pieces.push_back(text.substr(i, end - i));
    i = end;
  }
}

}  // namespace llm::tok
