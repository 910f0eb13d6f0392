// GGUF files (header, metadata, tensor infos and data): GgufFile's validation, every typed
// metadata read on every key (the wrong types included: they must be errors), every tensor's data
// decoded, then what InferenceModel::load_gguf reads from the metadata (the qwen2.* model config
// and the tokenizer.ggml.* vocabulary, which then encodes and decodes a fixed text).
#include <vector>

#include "fuzz_util.h"
#include "gen/gguf_metadata.h"
#include "llm/error.h"
#include "llm/gguf_reader.h"

namespace {

// Calls one typed read; a rejected type or value is an error, which is fine.
template <typename F>
void try_read(F&& read) {
  try {
    read();
  } catch (const llm::Error&) {
  }
}

void read_metadata(const llm::GgufFile& f) {
  for (const std::string& key : f.keys()) {
    try_read([&] { (void)f.get_int(key); });
    try_read([&] { (void)f.get_float(key); });
    try_read([&] { (void)f.get_bool(key); });
    try_read([&] { (void)f.get_string(key); });
    try_read([&] { (void)f.get_string_array(key); });
    try_read([&] { (void)f.get_int_array(key); });
    try_read([&] { (void)f.get_float_array(key); });
  }
}

// Decodes every tensor (bounded: a fuzzed file may declare big tensors of a few bytes each only if
// they are quantized, so the value count is at most a few times the file size).
void read_tensors(const llm::GgufFile& f) {
  std::vector<float> values;
  for (const llm::GgufFile::TensorInfo& t : f.tensors()) {
    if (f.find_tensor(t.name) != &t) __builtin_trap();  // the index must find every tensor
    const int64_t n = t.rows * t.cols;
    if (n > (int64_t{1} << 22)) continue;
    values.resize(static_cast<size_t>(n));
    llm::ggml_dequantize(t.type, t.data, n, values.data());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = llm::fuzz::write_input("model.gguf", data, size);
  try {
    const llm::GgufFile f(path);
    read_metadata(f);
    read_tensors(f);
    try_read([&] { (void)llm::gguf_model_config(f); });
    const auto tok = llm::gguf_tokenizer(f);
    const auto ids = tok->encode("Hello, world! 你好 <|im_start|> 123\n");
    (void)tok->decode(ids);
  } catch (const llm::Error& e) {
    llm::fuzz::rejected(e);
  }
  return 0;
}
