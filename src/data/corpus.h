// Reading the corpus: the input files a data config names (globs and directories expanded), and
// the documents in them, streamed as pieces of bounded size. Private to src/data.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "llm/data_config.h"

namespace llm::data {

struct InputFile {
  std::filesystem::path path;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  size_t input = 0;  // index into DataConfig::inputs
};

// Expands every input in config order; files of one input sorted by path. Directories are walked
// recursively (hidden entries and `exclude` matches skipped); files that look binary (a NUL byte
// in their first 64 KiB) are skipped when found by a walk or glob and an error when named
// directly; a file reached twice (e.g. through a symlink) is read once. A missing path, a glob
// matching nothing, or an input yielding no files is an error naming it.
std::vector<InputFile> resolve_inputs(const DataConfig& config);

// A piece of one document. Documents longer than max_document_bytes come in several pieces
// (cut after a newline, or else at a UTF-8 character boundary); `last` marks the final one.
struct DocPiece {
  std::string text;
  bool last = true;
  // Chat data: a whole conversation rendered with ChatML (chat_data.h); `assistant` marks the
  // rendered messages that are trained on, `where` is its file:line for messages.
  bool chat = false;
  std::vector<bool> assistant;
  std::string where;
};

class LineReader;

// Streams the documents of the files in order. Bytes are passed on unchanged (the tokenizers
// encode invalid UTF-8 losslessly as byte tokens); whitespace-only documents are skipped.
// Errors name file and line.
class DocumentReader {
 public:
  DocumentReader(const DataConfig& config, std::vector<InputFile> files);
  ~DocumentReader();
  DocumentReader(const DocumentReader&) = delete;
  DocumentReader& operator=(const DocumentReader&) = delete;

  // The next piece; false when the corpus is exhausted.
  bool next(DocPiece& out);
  // Input bytes consumed so far (for throughput).
  uint64_t bytes_read() const;
  // Bytes seen that are not part of valid UTF-8 (reported, not changed).
  uint64_t invalid_utf8_bytes() const { return invalid_utf8_; }

 private:
  bool open_next_file();
  void read_more();  // fills pending_ from the current file
  void read_text_line();
  void read_jsonl_line();
  void read_chat_line();
  bool next_json_line(nlohmann::json& j, std::string& where);
  void add_text(std::string_view s);  // appends to the current text document, cutting pieces
  void end_document();                // emits the current document's final piece
  void emit(std::string text, bool last);

  const DataConfig& config_;
  std::vector<InputFile> files_;
  size_t next_file_ = 0;
  std::unique_ptr<LineReader> reader_;
  const InputFile* file_ = nullptr;
  const DataInput* input_ = nullptr;
  std::string doc_;                    // current text document (not yet emitted)
  bool doc_has_pieces_ = false;        // an earlier piece of the current document was emitted
  bool prev_chunk_continues_ = false;  // the last line read was a chunk of a longer line
  std::deque<DocPiece> pending_;
  uint64_t bytes_done_ = 0;  // bytes of files already finished
  uint64_t invalid_utf8_ = 0;
};

// Number of bytes of s that are not part of a valid UTF-8 sequence.
uint64_t count_invalid_utf8(std::string_view s);
// Removes ANSI escape sequences (ESC [ ... final byte, and two-byte ESC x) and backspace
// overstrikes ("_\bx" or "x\bx" become "x").
std::string strip_terminal_codes(std::string_view s);
// Largest n <= limit such that s[0, n) ends after a newline, or else at a UTF-8 boundary
// (never 0 when limit > 0 and s is not empty).
size_t piece_cut(std::string_view s, size_t limit);

}  // namespace llm::data
