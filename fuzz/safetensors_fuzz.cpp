// safetensors files (header JSON, offsets, dtypes, data): SafetensorsReader and reading every tensor.
#include "fuzz_util.h"
#include "llm/error.h"
#include "llm/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = llm::fuzz::write_input("model.safetensors", data, size);
  try {
    const llm::SafetensorsReader r(path);
    for (const auto& t : r.tensors()) {
      (void)r.bytes(t);
      try {
        (void)r.read_f32(t.name);
      } catch (const llm::Error&) {
      }
    }
  } catch (const llm::Error&) {
  }
  return 0;
}
