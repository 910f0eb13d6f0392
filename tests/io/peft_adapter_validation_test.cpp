// read_peft_adapter on adapter directories whose adapter_config.json was damaged in the ways
// fuzz/peft_fuzz.cpp checks (fuzz/regressions/peft/): each is one llm::Error naming the file and
// the key, never undefined behaviour or an allocation sized by a bogus r.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>

#include "io_test_util.h"
#include "llm/lora.h"

namespace llm {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

ModelConfig small_model() {
  ModelConfig m;
  m.vocab_size = 64;
  m.hidden_size = 32;
  m.intermediate_size = 48;
  m.num_hidden_layers = 2;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  return m;
}

// A valid adapter (rank 2 on q_proj and down_proj, random values) in dir; then `edit` applied to
// its adapter_config.json, written back as text with `number` in place of the string "NUMBER".
void write_adapter(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit, const std::string& number) {
  const LoraTable table(small_model(), LoraConfig{2, 4, 0, {"q_proj", "down_proj"}});
  std::mt19937 g(std::random_device{}());
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> flat(static_cast<size_t>(table.flat_size()));
  for (float& v : flat) v = u(g);
  write_peft_adapter(dir, table, flat, "test");
  std::ifstream in(dir / "adapter_config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  edit(j);
  std::string text = j.dump();
  if (const size_t at = text.find("\"NUMBER\""); at != std::string::npos) text.replace(at, 8, number);
  test::write_bytes(dir / "adapter_config.json", text);
}

TEST(PeftAdapterValidation, TheUndamagedAdapterReads) {
  TempDir dir;
  write_adapter(
      dir.path(), [](nlohmann::json&) {}, "");
  const PeftAdapter a = read_peft_adapter(dir.path(), small_model());
  EXPECT_EQ(a.config.rank, 2);
  EXPECT_EQ(a.flat.size(), static_cast<size_t>(LoraTable(small_model(), a.config).flat_size()));
}

TEST(PeftAdapterValidation, RankThatIsNotAnInteger) {
  // Before the fix get<int64_t> cast 1e300 to an integer: undefined behaviour (UBSan).
  for (const auto& [r, shown] : {std::pair{"1e300", "1e+300"}, {"2.5", "2.5"}, {"-1e300", "-1e+300"}}) {
    TempDir dir;
    write_adapter(
        dir.path(), [](nlohmann::json& j) { j["r"] = "NUMBER"; }, r);
    test::expect_error([&] { read_peft_adapter(dir.path(), small_model()); },
                       {(dir.path() / "adapter_config.json").string(), "r must be an integer", shown});
  }
}

TEST(PeftAdapterValidation, RankBeyondWhatTheFileHolds) {
  // Before the fix r sized the buffer first: 2e9 overflowed the allocator, 2e7 exhausted memory.
  for (const char* r : {"2000000000", "20000000", "9223372036854775807"}) {
    TempDir dir;
    write_adapter(
        dir.path(), [](nlohmann::json& j) { j["r"] = "NUMBER"; }, r);
    test::expect_error([&] { read_peft_adapter(dir.path(), small_model()); },
                       {(dir.path() / "adapter_config.json").string(), cat("r = ", r), "could hold"});
  }
}

TEST(PeftAdapterValidation, RankDisagreeingWithTheTensors) {
  TempDir dir;
  write_adapter(
      dir.path(), [](nlohmann::json& j) { j["r"] = 3; }, "");
  test::expect_error([&] { read_peft_adapter(dir.path(), small_model()); },
                     {"adapter_model.safetensors", "q_proj.lora_A.weight is [2,32], expected [3,32] (r = 3)"});
}

TEST(PeftAdapterValidation, NumberBeyondDouble) {
  TempDir dir;
  write_adapter(
      dir.path(), [](nlohmann::json& j) { j["lora_alpha"] = "NUMBER"; }, "1e400");
  test::expect_error([&] { read_peft_adapter(dir.path(), small_model()); },
                     {(dir.path() / "adapter_config.json").string(), "1e400"});
}

}  // namespace
}  // namespace llm
