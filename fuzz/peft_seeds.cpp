// Writes the PEFT fuzz target's seeds (fuzz/corpus/peft/) with the engine's own writer,
// write_peft_adapter: for each LoRA setting an adapter directory, then the target's input made of
// it (adapter_config.json, a NUL byte, adapter_model.safetensors).
//   build-fuzz/peft_seeds fuzz/corpus/peft
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include "llm/error.h"
#include "llm/lora.h"
#include "peft_model.h"

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: peft_seeds OUT_DIR\n";
    return 2;
  }
  try {
    const fs::path out = argv[1];
    const llm::ModelConfig model = llm::fuzz::peft_model();
    struct Seed {
      const char* name;
      llm::LoraConfig lora;
    };
    const Seed seeds[] = {
        {"q_v_rank2", {2, 16, 0.05, {"q_proj", "v_proj"}}},
        {"all_modules_rank1", {1, 2, 0, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}}},
    };
    fs::create_directories(out);
    for (const Seed& s : seeds) {
      const llm::LoraTable table(model, s.lora);
      std::vector<float> flat = llm::init_lora_values(table, 7);
      for (size_t i = 0; i < flat.size(); ++i) flat[i] += 1e-3f * static_cast<float>(i % 13);  // B nonzero
      const fs::path dir = fs::temp_directory_path() / ("peft_seed_" + std::string(s.name));
      llm::write_peft_adapter(dir, table, flat, "fuzz/peft_model.h");
      std::ofstream(out / (std::string(s.name) + ".seed"), std::ios::binary)
          << slurp(dir / "adapter_config.json") << '\0' << slurp(dir / "adapter_model.safetensors");
      fs::remove_all(dir);
    }
  } catch (const llm::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
