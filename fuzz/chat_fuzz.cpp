// Corpus files as `llmtrain prepare` reads them, chat JSONL above all: DocumentReader over one
// input file, then for chat data the rendered conversation encoded and flagged per token
// (conversation_flags) with the tiny demo's tokenizer (it has <|im_start|> and <|im_end|>).
// Byte 0 picks the reading: bits 0-1 the format (0, 3: chat, 1: jsonl, 2: text), bit 2 a blank-line
// document separator (text), bit 3 strip_terminal_codes (text), bits 4-7 max_document_bytes
// (16 << n, so long documents are cut into pieces); the rest is the file.
#include <memory>

#include "data/chat_data.h"
#include "data/corpus.h"
#include "fuzz_util.h"
#include "llm/error.h"
#include "llm/tokenizer.h"

namespace {

const llm::Tokenizer& chat_tokenizer() {
  static const std::unique_ptr<llm::Tokenizer> tok =
      llm::load_tokenizer(std::string(LLM_FUZZ_CORPUS_DIR) + "/sentencepiece/tiny_fortunes.model");
  return *tok;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const llm::Tokenizer& tok = chat_tokenizer();
  const uint8_t mode = data[0];
  const auto path = llm::fuzz::write_input("corpus.jsonl", data + 1, size - 1);
  llm::DataConfig config;
  llm::DataInput in;
  in.path = path.string();
  in.format = (mode & 3) == 1 ? "jsonl" : (mode & 3) == 2 ? "text" : "chat";
  in.has_separator = (mode & 4) != 0;
  in.strip_terminal_codes = (mode & 8) != 0;
  config.inputs.push_back(in);
  config.max_document_bytes = int64_t{16} << (mode >> 4);
  try {
    llm::data::DocumentReader reader(config, llm::data::resolve_inputs(config));
    llm::data::DocPiece piece;
    while (reader.next(piece)) {
      const std::vector<int32_t> ids = tok.encode(piece.text);
      if (!piece.chat) continue;
      const llm::data::RenderedChat chat{piece.text, piece.assistant};
      const std::vector<uint8_t> flags = llm::data::conversation_flags(tok, ids, chat, piece.where);
      if (flags.size() != ids.size()) __builtin_trap();  // one flag byte per token
    }
  } catch (const llm::Error& e) {
    llm::fuzz::rejected(e);
  }
  return 0;
}
