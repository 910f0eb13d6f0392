// Issue 12, acceptance 3: llama.cpp (node-llama-cpp, tests/gguf/js/llama.mjs) tokenizing 240
// mixed lines (tests/gguf/data/tokenize_lines.jsonl: English, Chinese poetry and news, mixed
// scripts, code, URLs, numbers, emoji, whitespace runs, newlines, ChatML and other special
// tokens) with the Qwen2.5 vocabulary of an exported GGUF file gives our ids, line for line.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "gguf_test_util.h"
#include "io/io_test_util.h"
#include "llm/gguf.h"
#include "llm/tokenizer.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

const fs::path kLines = fs::path(LLM_SOURCE_DIR) / "tests/gguf/data/tokenize_lines.jsonl";

TEST(TokenizeParity, LlamaCppTokenizesTheLinesAsWeDo) {
  if (!fs::exists(kJs / "node_modules/node-llama-cpp/package.json") || !fs::exists(kQwenTokenizer / "tokenizer.json")) {
    GTEST_SKIP() << "npm references not installed (tests/gguf/js, tests/tokenizer/js): run scripts/setup.sh";
  }
  std::vector<std::string> lines;
  std::ifstream in(kLines);
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l).get<std::string>());
  ASSERT_GE(lines.size(), 200u) << kLines;

  TempDir dir;
  write_random_hf_model(dir / "hf", 151936);
  fs::copy(kQwenTokenizer / "tokenizer.json", dir / "hf/tokenizer.json");
  export_gguf(dir / "hf", dir / "qwen.gguf", GgufFileType::Q8_0);
  write_bytes(dir / "req.json", nlohmann::json{{"model", (dir / "qwen.gguf").string()}, {"texts", lines}}.dump());
  const auto r =
      run_command(cat("cd ", shell_quote(kJs.string()), " && node llama.mjs < ",
                      shell_quote((dir / "req.json").string()), " 2> ", shell_quote((dir / "err.txt").string())));
  ASSERT_EQ(r.status, 0) << read_bytes(dir / "err.txt");
  const nlohmann::json out = nlohmann::json::parse(r.output);
  ASSERT_EQ(out["ids"].size(), lines.size());

  const auto tok = load_tokenizer(dir / "hf/tokenizer.json");
  size_t equal = 0, tokens = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::vector<int32_t> ours = tok->encode(lines[i]);
    const std::vector<int32_t> theirs = out["ids"][i].get<std::vector<int32_t>>();
    EXPECT_EQ(theirs, ours) << "line " << i + 1 << " of " << kLines.filename() << ": " << nlohmann::json(lines[i]);
    equal += theirs == ours;
    tokens += ours.size();
  }
  std::printf("tokenization: llama.cpp's ids equal ours on %zu of %zu lines (%zu tokens)\n", equal, lines.size(),
              tokens);
}

}  // namespace
}  // namespace llm::test
