// tokenizer.json (Qwen byte-level BPE: vocab, merges, added tokens, pre-tokenizer settings):
// loading, then encoding and decoding a fixed text.
#include "fuzz_util.h"
#include "llm/error.h"
#include "llm/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = llm::fuzz::write_input("tokenizer.json", data, size);
  try {
    const auto tok = llm::load_tokenizer(path);
    const auto ids = tok->encode("Hello, world! 你好 <|im_start|> 123\n");
    (void)tok->decode(ids);
  } catch (const llm::Error&) {
  }
  return 0;
}
