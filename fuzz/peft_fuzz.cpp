// PEFT LoRA adapter directories (read_peft_adapter): adapter_config.json, then
// adapter_model.safetensors, for a fixed small model (peft_model.h). The input is
// the JSON, a NUL byte, then the safetensors file (no NUL: no safetensors file).
#include <cstring>
#include <filesystem>

#include "fuzz_util.h"
#include "llm/error.h"
#include "llm/lora.h"
#include "peft_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t json_size = nul ? static_cast<size_t>(nul - data) : size;
  llm::fuzz::write_input("adapter_config.json", data, json_size);
  const auto weights = llm::fuzz::scratch_dir() / "adapter_model.safetensors";
  if (nul) {
    llm::fuzz::write_input("adapter_model.safetensors", nul + 1, size - json_size - 1);
  } else {
    std::filesystem::remove(weights);
  }
  const llm::ModelConfig model = llm::fuzz::peft_model();
  try {
    const llm::PeftAdapter a = llm::read_peft_adapter(llm::fuzz::scratch_dir(), model);
    if (a.flat.size() != static_cast<size_t>(llm::LoraTable(model, a.config).flat_size())) __builtin_trap();
  } catch (const llm::Error& e) {
    llm::fuzz::rejected(e);
  }
  return 0;
}
