// Streaming output: complete UTF-8 characters only (with decode()'s U+FFFD policy), and stop
// strings that may arrive split across tokens.
#include <algorithm>

#include "llm/error.h"
#include "llm/generate.h"
#include "tokenizer/utf8.h"

namespace llm {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// A byte that can start a multi-byte character (Unicode Table 3-7).
bool is_lead(uint8_t b) { return b >= 0xC2 && b <= 0xF4; }
}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  pending_.append(bytes);
  std::string out;
  size_t i = 0, run = 0;  // pending_[run, i) is valid and not yet copied
  while (i < pending_.size()) {
    if (static_cast<uint8_t>(pending_[i]) < 0x80) {
      ++i;
      continue;
    }
    const tok::Utf8Char c = tok::decode_utf8(pending_, i);
    if (c.cp >= 0) {
      i += static_cast<size_t>(c.len);
      continue;
    }
    // Ill-formed only because the buffer ends: a valid start that later bytes may complete.
    if (i + static_cast<size_t>(c.len) == pending_.size() && is_lead(static_cast<uint8_t>(pending_[i]))) break;
    out.append(pending_, run, i - run);
    out += kReplacement;
    i += static_cast<size_t>(c.len);
    run = i;
  }
  out.append(pending_, run, i - run);
  pending_.erase(0, i);
  return out;
}

std::string Utf8Stream::flush() {
  std::string out;
  tok::append_utf8_lossy(out, pending_);
  pending_.clear();
  return out;
}

StopFilter::StopFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) LLM_CHECK(!s.empty(), "--stop: a stop string is empty");
}

std::string StopFilter::push(std::string_view text) {
  if (stopped_) return {};
  held_.append(text);
  size_t first = std::string::npos;
  for (const auto& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Keep the longest tail that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const auto& s : stops_) {
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopFilter::flush() {
  std::string out;
  if (!stopped_) out.swap(held_);
  held_.clear();
  return out;
}

}  // namespace llm
