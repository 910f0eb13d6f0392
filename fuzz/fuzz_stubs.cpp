// The fuzzers' stand-ins for four functions whose real homes (checkpoint.cpp, qwen2_model.cpp,
// the generated embedded config, lora_merge.cpp) would pull the model, optimizer and backends
// into the fuzz build. parse_config asks latest_checkpoint only about model.init_from
// directories (a fuzzed config names none holding a checkpoint), the recompute name is a
// one-line lookup outside the JSON parsing under test, and the PEFT fuzzer's adapter directory
// is always the directory itself (no run directory to search).
#include "llm/checkpoint.h"
#include "llm/config.h"
#include "llm/lora.h"
#include "llm/model.h"

namespace llm {

std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path&) { return std::nullopt; }

Recompute parse_recompute(std::string_view, std::string_view) { return Recompute::None; }

std::string_view embedded_tiny_config() { return "{}"; }

std::filesystem::path locate_adapter(const std::filesystem::path& dir) { return dir; }

}  // namespace llm
