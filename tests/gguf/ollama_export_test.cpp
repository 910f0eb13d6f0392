// `llmtrain export --to ollama`: OUTDIR/model.gguf + OUTDIR/Modelfile, and the two commands.
// The Modelfile is parsed with Ollama's grammar and its Go template rendered by a small Go
// text/template interpreter (tests/gguf/js/modelfile.mjs) on the data Ollama builds for a chat;
// the result must equal Qwen2.5's Jinja chat template rendered by @huggingface/jinja (the
// renderer transformers.js uses) for the same conversation. llama.cpp then tokenizes the rendered
// prompt with the exported GGUF's vocabulary, as Ollama would, and must get our ids.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "gguf_test_util.h"
#include "io/io_test_util.h"
#include "llm/model_export.h"
#include "llm/tokenizer.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

nlohmann::json run_node(const std::string& script, const nlohmann::json& req, const fs::path& dir) {
  write_bytes(dir / "req.json", req.dump());
  const auto r =
      run_command(cat("cd ", shell_quote(kJs.string()), " && node ", script, " < ",
                      shell_quote((dir / "req.json").string()), " 2> ", shell_quote((dir / "err.txt").string())));
  if (r.status != 0) {
    ADD_FAILURE() << "node " << script << " failed (" << r.status << "):\n" << read_bytes(dir / "err.txt");
    return {};
  }
  return nlohmann::json::parse(r.output);
}

nlohmann::json conversations() {
  const nlohmann::json no_args = nlohmann::json::object();
  return nlohmann::json::array({
      {{{"role", "user"}, {"content", "Hello!"}}},
      {{{"role", "system"}, {"content", "You are a pirate. Answer briefly."}},
       {{"role", "user"}, {"content", "Hi"}},
       {{"role", "assistant"}, {"content", "Arr!"}},
       {{"role", "user"}, {"content", "Where is the treasure?\nTell me\tnow."}}},
      {{{"role", "user"}, {"content", "你好，请介绍一下你自己。"}},
       {{"role", "assistant"}, {"content", "我是通义千问，由阿里云开发。"}},
       {{"role", "user"}, {"content", "写一首关于秋天的五言绝句 🍂"}}},
      {{{"role", "user"}, {"content", "Braces are data: {{ .System }} {% if x %}"}}},
      {{{"role", "user"}, {"content", "What time is it?"}},
       {{"role", "assistant"},
        {"content", ""},
        {"tool_calls", {{{"type", "function"}, {"function", {{"name", "get_time"}, {"arguments", no_args}}}}}}},
       {{"role", "tool"}, {"content", "12:30"}}},
      {{"legacy", "Say hi."}},
  });
}

TEST(OllamaExport, ModelfileTemplateRendersAsQwensJinjaAndLlamaCppTokenizesIt) {
  if (!fs::exists(kJs / "node_modules/@huggingface/jinja/package.json") ||
      !fs::exists(kQwenTokenizer / "tokenizer.json")) {
    GTEST_SKIP() << "npm references not installed (tests/gguf/js, tests/tokenizer/js): run scripts/setup.sh";
  }
  TempDir dir;
  write_random_hf_model(dir / "src", 151936);
  fs::copy(kQwenTokenizer / "tokenizer.json", dir / "src/tokenizer.json");
  const auto r = run_command(cat(LLM_TOOLS_DIR, "/llmtrain export --model ", shell_quote((dir / "src").string()),
                                 " --to ollama --out ", shell_quote((dir / "Qwen Tiny").string()), " 2> ",
                                 shell_quote((dir / "export.err").string())));
  ASSERT_EQ(r.status, 0) << read_bytes(dir / "export.err");
  const fs::path out = dir / "Qwen Tiny";
  EXPECT_EQ(r.output, cat("ollama create qwen-tiny -f ", (out / "Modelfile").string(), "\nollama run qwen-tiny\n"));
  // q4_k_m by default: its q4_K falls back to q5_0 on these rows of 32 (not whole super-blocks of 256).
  EXPECT_NE(read_bytes(dir / "export.err").find("q5_0"), std::string::npos) << read_bytes(dir / "export.err");
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(out)) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"Modelfile", "model.gguf"}));

  const std::string jinja =
      nlohmann::json::parse(read_bytes(kQwenTokenizer / "tokenizer_config.json"))["chat_template"];
  const nlohmann::json convs = conversations();
  const nlohmann::json res = run_node(
      "modelfile.mjs",
      {{"modelfile", (out / "Modelfile").string()}, {"chat_template", jinja}, {"conversations", convs}}, dir.path());
  ASSERT_FALSE(res.is_null());
  ASSERT_FALSE(res.contains("error")) << res["error"];
  const nlohmann::json expected_instructions = nlohmann::json::parse(R"([
    ["from", "./model.gguf"],
    ["parameter", "stop", "<|im_start|>"], ["parameter", "stop", "<|im_end|>"],
    ["parameter", "temperature", "0.7"], ["parameter", "top_p", "0.8"], ["parameter", "top_k", "20"],
    ["parameter", "repeat_penalty", "1.05"]])");
  nlohmann::json got = nlohmann::json::array();
  for (const auto& i : res["instructions"]) {
    if (i[0] == "template") {
      EXPECT_EQ(i[1], kOllamaQwen25Template);
    } else if (i[0] == "system") {
      EXPECT_EQ(i[1], kQwen25DefaultSystem);
    } else {
      got.push_back(i);
    }
  }
  EXPECT_EQ(got, expected_instructions);
  ASSERT_EQ(res["renders"].size(), convs.size());
  std::vector<std::string> prompts;
  for (size_t i = 0; i < convs.size(); ++i) {
    EXPECT_EQ(res["renders"][i]["go"], res["renders"][i]["jinja"]) << "conversation " << i << ": " << convs[i].dump();
    prompts.push_back(res["renders"][i]["go"]);
  }
  std::printf("ollama: %zu conversations, Go template == Jinja template\n", prompts.size());

  // llama.cpp on the folder's GGUF tokenizes the rendered prompts (special tokens parsed) as we do.
  if (fs::exists(kJs / "node_modules/node-llama-cpp/package.json")) {
    const nlohmann::json ids =
        run_node("llama.mjs", {{"model", (out / "model.gguf").string()}, {"texts", prompts}}, dir.path());
    ASSERT_FALSE(ids.is_null());
    const auto tok = load_tokenizer(dir / "src/tokenizer.json");
    for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(ids["ids"][i], tok->encode(prompts[i])) << prompts[i];
  }
}

// The checker itself: a broken Modelfile is an error, and a template one character off renders
// differently from the Jinja one (so the equality above is a real comparison).
TEST(OllamaExport, CheckerRejectsBrokenModelfiles) {
  if (!fs::exists(kJs / "node_modules/@huggingface/jinja/package.json")) {
    GTEST_SKIP() << "tests/gguf/js/node_modules is missing: run scripts/setup.sh";
  }
  TempDir dir;
  const std::string good = ollama_modelfile("model.gguf", true);
  const std::string jinja = kQwen25ChatTemplate;
  auto check = [&](const std::string& modelfile) {
    write_bytes(dir / "Modelfile", modelfile);
    return run_node(
        "modelfile.mjs",
        {{"modelfile", (dir / "Modelfile").string()}, {"chat_template", jinja}, {"conversations", conversations()}},
        dir.path());
  };
  const nlohmann::json ok = check(good);
  ASSERT_FALSE(ok.contains("error")) << ok.dump();
  for (const auto& r : ok["renders"]) EXPECT_EQ(r["go"], r["jinja"]);
  // Without ChatML: a completion template, still a valid Modelfile.
  EXPECT_FALSE(check(ollama_modelfile("model.gguf", false)).contains("error"));

  auto replaced = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? s : s.replace(at, from.size(), to);
  };
  EXPECT_NE(check(replaced("TEMPLATE \"\"\"", "TEMPLATES \"\"\"")).value("error", ""), "");
  EXPECT_NE(check(good.substr(0, good.find("\"\"\"\n\nSYSTEM"))).value("error", ""), "");  // unclosed """
  EXPECT_NE(check(good + "PARAMETER top_k twenty\n").value("error", ""), "");
  EXPECT_NE(check(good + "PARAMETER warmth 3\n").value("error", ""), "");
  const nlohmann::json off =
      check(replaced("{{ .Content }}<|im_end|>\n{{ else if", "{{ .Content }}<|im_end|>{{ else if"));
  ASSERT_FALSE(off.contains("error")) << off.dump();
  int differ = 0;
  for (const auto& r : off["renders"]) differ += r["go"] != r["jinja"];
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace llm::test
