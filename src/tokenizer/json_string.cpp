#include "tokenizer/json_string.h"

#include <cstdint>

#include "tokenizer/utf8.h"

namespace llm::tok {

namespace {

bool is_json_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int hex4(std::string_view s, size_t i) {
  if (i + 4 > s.size()) return -1;
  int v = 0;
  for (size_t k = i; k < i + 4; ++k) {
    const char c = s[k];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

bool parse_json_string_line(std::string_view line, std::string& out) {
  out.clear();
  size_t i = 0;
  while (i < line.size() && is_json_space(line[i])) ++i;
  if (i >= line.size() || line[i] != '"') return false;
  ++i;
  while (true) {
    // Copy the run up to the next quote, backslash, control character or non-ASCII byte.
    const size_t run = i;
    while (i < line.size()) {
      const auto b = static_cast<uint8_t>(line[i]);
      if (b == '"' || b == '\\' || b < 0x20 || b >= 0x80) break;
      ++i;
    }
    out.append(line.substr(run, i - run));
    if (i >= line.size()) return false;  // unterminated
    const auto b = static_cast<uint8_t>(line[i]);
    if (b == '"') {
      ++i;
      break;
    }
    if (b < 0x20) return false;  // control characters must be escaped
    if (b >= 0x80) {
      const Utf8Char c = decode_utf8(line, i);
      if (c.cp < 0) return false;
      out.append(line.substr(i, static_cast<size_t>(c.len)));
      i += static_cast<size_t>(c.len);
      continue;
    }
    // An escape.
    if (i + 1 >= line.size()) return false;
    const char e = line[i + 1];
    i += 2;
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        int cp = hex4(line, i);
        if (cp < 0) return false;
        i += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a lone low surrogate
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (i + 6 > line.size() || line[i] != '\\' || line[i + 1] != 'u') return false;
          const int lo = hex4(line, i + 2);
          if (lo < 0xDC00 || lo > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        append_utf8(out, static_cast<char32_t>(cp));
        break;
      }
      default: return false;
    }
  }
  while (i < line.size() && is_json_space(line[i])) ++i;
  return i == line.size();
}

}  // namespace llm::tok
