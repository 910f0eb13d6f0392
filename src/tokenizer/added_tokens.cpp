#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include "tokenizer/utf8.h"

namespace llm::tok {

namespace {

bool is_js_space(const UnicodeTables& t, int32_t cp) {
  const CharClass c = t.cls(cp);
  return c == CharClass::kSpace || c == CharClass::kNewline;
}

// Start of the character that ends at byte i (i > 0) of well-formed or ill-formed UTF-8.
size_t char_start_before(std::string_view s, size_t i) {
  size_t j = i - 1;
  while (j > 0 && i - j < 4 && (static_cast<uint8_t>(s[j]) & 0xC0) == 0x80) --j;
  // j is a candidate lead byte; accept it only if it decodes to a character ending exactly at i.
  const Utf8Char c = decode_utf8(s, j);
  return (c.cp >= 0 && j + static_cast<size_t>(c.len) == i) ? j : i - 1;
}

}  // namespace

std::string_view trim_js_space_left(const UnicodeTables& tables, std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const Utf8Char c = decode_utf8(s, i);
    if (c.cp < 0 || !is_js_space(tables, c.cp)) break;
    i += static_cast<size_t>(c.len);
  }
  return s.substr(i);
}

std::string_view trim_js_space_right(const UnicodeTables& tables, std::string_view s) {
  size_t end = s.size();
  while (end > 0) {
    const size_t start = char_start_before(s, end);
    const Utf8Char c = decode_utf8(s, start);
    if (c.cp < 0 || !is_js_space(tables, c.cp)) break;
    end = start;
  }
  return s.substr(0, end);
}

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens, const UnicodeTables* tables)
    : tokens_(tokens), tables_(tables) {
  for (size_t k = 0; k < tokens_.size(); ++k) {
    if (tokens_[k].content.empty()) continue;  // an empty token can never be matched
    by_first_byte_[static_cast<uint8_t>(tokens_[k].content[0])].push_back(static_cast<int>(k));
  }
  for (auto& list : by_first_byte_) {
    std::stable_sort(list.begin(), list.end(),
                     [&](int a, int b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
  }
}

std::pair<size_t, int> AddedTokenMatcher::longest_at(std::string_view text, size_t i) const {
  for (const int k : by_first_byte_[static_cast<uint8_t>(text[i])]) {
    const std::string& c = tokens_[k].content;
    if (c.size() <= text.size() - i && std::memcmp(text.data() + i, c.data(), c.size()) == 0) {
      return {c.size(), k};
    }
  }
  return {0, -1};
}

bool AddedTokenMatcher::word_char_before(std::string_view text, size_t i) const {
  if (i == 0) return false;
  const Utf8Char c = decode_utf8(text, char_start_before(text, i));
  if (c.cp == '_') return true;
  const CharClass k = tables_->cls(c.cp);
  return k == CharClass::kLetter || k == CharClass::kNumber;
}

bool AddedTokenMatcher::word_char_after(std::string_view text, size_t i) const {
  if (i >= text.size()) return false;
  const Utf8Char c = decode_utf8(text, i);
  if (c.cp == '_') return true;
  const CharClass k = tables_->cls(c.cp);
  return k == CharClass::kLetter || k == CharClass::kNumber;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  if (tokens_.empty()) {
    if (!text.empty()) out.push_back({text, -1});
    return;
  }
  const size_t first = out.size();
  bool strips = false;  // some matched token has lstrip or rstrip
  size_t start = 0;     // start of the pending plain text
  for (size_t i = 0; i < text.size();) {
    if (by_first_byte_[static_cast<uint8_t>(text[i])].empty()) {
      ++i;
      continue;
    }
    const auto [len, k] = longest_at(text, i);
    if (k < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[static_cast<size_t>(k)];
    if (t.single_word && (word_char_before(text, i) || word_char_after(text, i + len))) {
      i += len;  // as HF: the rejected match stays text and scanning resumes after it
      continue;
    }
    if (i > start) out.push_back({text.substr(start, i - start), -1});
    out.push_back({text.substr(i, len), t.id, k});
    strips = strips || t.lstrip || t.rstrip;
    i += len;
    start = i;
  }
  if (start < text.size()) out.push_back({text.substr(start), -1});
  if (!strips) return;

  // lstrip/rstrip trim the neighbouring plain text (the JavaScript reference trims the
  // neighbouring sections; HF folds the whitespace into the token's match: same ids).
  for (size_t s = first; s < out.size(); ++s) {
    if (out[s].token < 0) continue;
    const AddedToken& t = tokens_[static_cast<size_t>(out[s].index)];
    if (t.lstrip && s > first && out[s - 1].token < 0) {
      out[s - 1].text = trim_js_space_right(*tables_, out[s - 1].text);
    }
    if (t.rstrip && s + 1 < out.size() && out[s + 1].token < 0) {
      out[s + 1].text = trim_js_space_left(*tables_, out[s + 1].text);
    }
  }
  out.erase(std::remove_if(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                           [](const Segment& g) { return g.token < 0 && g.text.empty(); }),
            out.end());
}

}  // namespace llm::tok
