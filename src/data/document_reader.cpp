// Streaming documents out of text and JSONL files with bounded memory.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <system_error>

#include "chat_data.h"
#include "corpus.h"
#include "llm/error.h"

namespace llm::data {

namespace fs = std::filesystem;

// Lines of a file, read through a 1 MiB buffer. A line longer than max_line comes in chunks so
// that memory stays bounded; `continues` marks every chunk but a line's last.
class LineReader {
 public:
  LineReader(const fs::path& path, size_t max_line) : path_(path), max_line_(max_line), buf_(1 << 20) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      const int err = errno;
      fail(path, ": cannot open input file: ", std::generic_category().message(err));
    }
  }
  ~LineReader() { ::close(fd_); }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line (without "\n" or "\r\n"); the view lives until the next call.
  bool next(std::string_view& line, bool& continues) {
    if (carry_returned_) {
      carry_.clear();
      carry_returned_ = false;
    }
    line_no_ = done_lines_ + 1;
    for (;;) {
      const char* begin = buf_.data() + pos_;
      const auto* nl = static_cast<const char*>(std::memchr(begin, '\n', end_ - pos_));
      if (nl) {
        const size_t n = static_cast<size_t>(nl - begin);
        pos_ += n + 1;
        consumed_ += n + 1;
        ++done_lines_;
        continues = false;
        if (carry_.empty()) {
          line = std::string_view(begin, n);
        } else {
          carry_.append(begin, n);
          carry_returned_ = true;
          line = carry_;
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        return true;
      }
      carry_.append(begin, end_ - pos_);
      consumed_ += end_ - pos_;
      pos_ = end_ = 0;
      if (carry_.size() >= max_line_) {  // a very long line: hand out what we have
        continues = true;
        carry_returned_ = true;
        line = carry_;
        return true;
      }
      if (!fill()) {
        if (carry_.empty()) return false;
        ++done_lines_;  // a last line without "\n"
        continues = false;
        carry_returned_ = true;
        line = carry_;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        return true;
      }
    }
  }

  uint64_t line_number() const { return line_no_; }  // of the line last returned (1-based)
  uint64_t offset() const { return consumed_; }      // bytes consumed

 private:
  bool fill() {
    for (;;) {
      const ssize_t r = ::read(fd_, buf_.data(), buf_.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        const int err = errno;
        fail(path_, ": read failed at byte offset ", consumed_, ": ", std::generic_category().message(err));
      }
      end_ = static_cast<size_t>(r);
      return r > 0;
    }
  }

  fs::path path_;
  size_t max_line_;
  int fd_ = -1;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  std::string carry_;
  bool carry_returned_ = false;
  uint64_t line_no_ = 0, done_lines_ = 0, consumed_ = 0;
};

namespace {

bool all_space(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; });
}

std::string_view rtrim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// Length of the valid UTF-8 sequence at s[i], or 0 when invalid.
size_t utf8_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2, cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3, cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4, cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

uint64_t count_invalid_utf8(std::string_view s) {
  uint64_t bad = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_len(s, i);
    bad += n == 0 ? 1 : 0;
    i += n == 0 ? 1 : n;
  }
  return bad;
}

std::string strip_terminal_codes(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\x1b') {
      if (i + 1 < s.size() && s[i + 1] == '[') {  // CSI: parameters, then a final byte 0x40-0x7E
        i += 2;
        while (i < s.size() && !(s[i] >= 0x40 && s[i] <= 0x7E)) ++i;
      } else {
        ++i;  // a two-byte escape
      }
    } else if (c == '\b') {  // overstrike: drop the character before (a whole UTF-8 character)
      while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80) out.pop_back();
      if (!out.empty() && out.back() != '\n') out.pop_back();
    } else {
      out += c;
    }
  }
  return out;
}

size_t piece_cut(std::string_view s, size_t limit) {
  if (s.size() <= limit) return s.size();
  const size_t nl = s.rfind('\n', limit - 1);
  if (nl != std::string_view::npos && nl + 1 >= limit / 2) return nl + 1;  // keep pieces large
  size_t n = limit;
  for (int k = 0; k < 3 && n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80; ++k) --n;
  return n > 0 ? n : limit;
}

DocumentReader::DocumentReader(const DataConfig& config, std::vector<InputFile> files)
    : config_(config), files_(std::move(files)) {}

DocumentReader::~DocumentReader() = default;

uint64_t DocumentReader::bytes_read() const { return bytes_done_ + (reader_ ? reader_->offset() : 0); }

bool DocumentReader::next(DocPiece& out) {
  while (pending_.empty()) {
    if (!reader_ && !open_next_file()) return false;
    read_more();
  }
  out = std::move(pending_.front());
  pending_.pop_front();
  return true;
}

bool DocumentReader::open_next_file() {
  if (next_file_ >= files_.size()) return false;
  file_ = &files_[next_file_++];
  input_ = &config_.inputs[file_->input];
  const size_t max_line =
      input_->format != "text" ? std::numeric_limits<size_t>::max() : static_cast<size_t>(config_.max_document_bytes);
  reader_ = std::make_unique<LineReader>(file_->path, max_line);
  prev_chunk_continues_ = false;
  return true;
}

void DocumentReader::read_more() {
  if (input_->format == "jsonl") {
    read_jsonl_line();
  } else if (input_->format == "chat") {
    read_chat_line();
  } else {
    read_text_line();
  }
}

void DocumentReader::read_text_line() {
  std::string_view line;
  bool continues = false;
  if (!reader_->next(line, continues)) {  // the end of a file ends its last document
    end_document();
    bytes_done_ += reader_->offset();
    reader_.reset();
    return;
  }
  std::string cleaned;
  if (input_->strip_terminal_codes) {
    cleaned = strip_terminal_codes(line);
    line = cleaned;
  }
  const bool whole_line = !continues && !prev_chunk_continues_;
  prev_chunk_continues_ = continues;
  if (whole_line && input_->has_separator && rtrim(line) == input_->doc_separator) {
    end_document();
    return;
  }
  add_text(line);
  if (!continues) add_text("\n");
}

// The next non-blank line of a JSONL file, parsed, and where it is ("file:line"); false at the
// end of the file (or on a blank line, with where empty).
bool DocumentReader::next_json_line(nlohmann::json& j, std::string& where) {
  where.clear();
  std::string_view line;
  bool continues = false;
  if (!reader_->next(line, continues)) {
    bytes_done_ += reader_->offset();
    reader_.reset();
    return false;
  }
  if (all_space(line)) return true;
  where = cat(file_->path.string(), ":", reader_->line_number());
  try {
    j = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::parse_error& e) {
    fail(where, ": malformed JSON line (at byte ", e.byte, " of the line): ", e.what());
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond 64 bits or double (error 406)
    fail(where, ": ", e.what());
  }
  return true;
}

void DocumentReader::read_jsonl_line() {
  nlohmann::json j;
  std::string where;
  if (!next_json_line(j, where) || where.empty()) return;
  LLM_CHECK(j.is_object(), where, ": expected a JSON object with a string field \"", input_->field, "\", got ",
            j.type_name());
  const auto it = j.find(input_->field);
  const bool looks_chat = it == j.end() && (j.contains("messages") || j.contains("conversations"));
  LLM_CHECK(it != j.end() && it->is_string(), where, ": expected a string field \"", input_->field, "\"",
            it == j.end() ? " (absent)" : cat(" (it is ", it->type_name(), ")"),
            looks_chat ? "; this looks like chat data: set \"format\": \"chat\"" : "");
  std::string text = it->get<std::string>();
  if (all_space(text)) return;
  const auto limit = static_cast<size_t>(config_.max_document_bytes);
  std::string_view rest = text;
  while (rest.size() > limit) {
    const size_t n = piece_cut(rest, limit);
    emit(std::string(rest.substr(0, n)), false);
    rest.remove_prefix(n);
  }
  emit(std::string(rest), true);
}

void DocumentReader::read_chat_line() {
  nlohmann::json j;
  std::string where;
  if (!next_json_line(j, where) || where.empty()) return;
  const std::vector<ChatMessage> messages = parse_conversation(j, where);
  RenderedChat r = render_conversation(messages);
  invalid_utf8_ += count_invalid_utf8(r.text);
  pending_.push_back({std::move(r.text), true, true, std::move(r.assistant), where});
}

void DocumentReader::add_text(std::string_view s) {
  if (doc_.empty() && !doc_has_pieces_) {  // a document starts at its first non-blank line
    while (!s.empty() && (s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
  }
  doc_ += s;
  const auto limit = static_cast<size_t>(config_.max_document_bytes);
  if (doc_.size() > limit) {
    size_t at = 0;
    while (doc_.size() - at > limit) {
      const size_t n = piece_cut(std::string_view(doc_).substr(at), limit);
      emit(doc_.substr(at, n), false);
      doc_has_pieces_ = true;
      at += n;
    }
    doc_.erase(0, at);
  }
}

void DocumentReader::end_document() {
  doc_.resize(rtrim(doc_).size());
  if (doc_has_pieces_ || !all_space(doc_)) emit(std::move(doc_), true);
  doc_.clear();
  doc_has_pieces_ = false;
}

void DocumentReader::emit(std::string text, bool last) {
  invalid_utf8_ += count_invalid_utf8(text);
  pending_.push_back({std::move(text), last, false, {}, {}});
}

}  // namespace llm::data
