// The run configuration (llmtrain --config: JSON sections, types, ranges) and an HF config.json.
#include "fuzz_util.h"
#include "llm/config.h"
#include "llm/error.h"
#include "llm/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)llm::parse_config(text, "fuzz.json", llm::fuzz::scratch_dir(), {});
  } catch (const llm::Error&) {
  }
  try {
    (void)llm::read_hf_config(llm::fuzz::write_input("config.json", data, size));
  } catch (const llm::Error&) {
  }
  return 0;
}
