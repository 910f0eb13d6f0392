// Sentencepiece .model files (protobuf): our own reader of the piece types, then the library's
// loader through load_tokenizer, encoding and decoding a fixed text.
#include "fuzz_util.h"
#include "llm/error.h"
#include "llm/tokenizer.h"
#include "tokenizer/sp_model_proto.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)llm::tok::sp_piece_types(std::string_view(reinterpret_cast<const char*>(data), size));
  const auto path = llm::fuzz::write_input("tok.model", data, size);
  try {
    const auto tok = llm::load_tokenizer(path);
    const auto ids = tok->encode("Hello, world! 你好 123\n");
    (void)tok->decode(ids);
  } catch (const llm::Error&) {
  }
  return 0;
}
