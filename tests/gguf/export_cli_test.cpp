// `llmtrain export` as a user runs it: a working export, and for each kind of bad input one clear
// error, a non-zero exit and no file (nor temporary) left behind.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "gguf_test_util.h"
#include "io/io_test_util.h"
#include "llm/tokenizer.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

struct CliResult {
  int status;
  std::string err;
};

CliResult llmtrain(const TempDir& dir, const std::string& args) {
  const auto r = run_command(cat(LLM_TOOLS_DIR, "/llmtrain ", args, " 2> ", shell_quote((dir / "err.txt").string())));
  return {r.status, read_bytes(dir / "err.txt")};
}

// An HF directory: a small random model with a sentencepiece tokenizer trained here.
void make_model(const fs::path& d) {
  fs::create_directories(d);
  std::vector<std::string> docs;
  for (int i = 0; i < 400; ++i) docs.push_back(cat("the cat ", i % 17, " sat on the mat number ", i));
  SentencePieceTrainOptions o;
  o.vocab_size = 300;
  o.special_tokens = {"<|endoftext|>"};
  o.threads = 1;
  train_sentencepiece_on(docs, o, d / "tokenizer.model");
  write_random_hf_model(d, 320);
}

TEST(ExportCli, WritesAFileAndRefusesBadInput) {
  TempDir dir;
  make_model(dir / "m");
  const std::string m = shell_quote((dir / "m").string());
  CliResult r =
      llmtrain(dir, cat("export --model ", m, " --to gguf --type q8_0 --out ", shell_quote((dir / "m.gguf").string())));
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "m.gguf"));
  EXPECT_NE(r.err.find("q8_0"), std::string::npos) << r.err;

  auto expect_refused = [&](const std::string& args, const std::string& what) {
    const CliResult bad = llmtrain(dir, args);
    EXPECT_NE(bad.status, 0) << args;
    EXPECT_NE(bad.err.find(what), std::string::npos) << args << ":\n" << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << "one line of error:\n" << bad.err;
    EXPECT_FALSE(fs::exists(dir / "x.gguf")) << args;
  };
  const std::string x = shell_quote((dir / "x.gguf").string());
  expect_refused(cat("export --model ", shell_quote((dir / "nope").string()), " --out ", x), "no such model directory");
  expect_refused(cat("export --model ", m, " --type q3_k --out ", x), "\"q3_k\" is not one of");
  expect_refused(cat("export --model ", m, " --to onnx --out ", x), "\"onnx\" is not a supported format");
  expect_refused(cat("export --model ", m, " --out ", shell_quote((dir / "no/dir/x.gguf").string())), "does not exist");
  fs::create_directories(dir / "ro");
  fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  if (::geteuid() != 0) {  // root writes anywhere
    expect_refused(cat("export --model ", m, " --out ", shell_quote((dir / "ro/x.gguf").string())), "not writable");
  }
  fs::create_directories(dir / "notok");
  fs::copy(dir / "m/config.json", dir / "notok/config.json");
  fs::copy(dir / "m/model.safetensors", dir / "notok/model.safetensors");
  expect_refused(cat("export --model ", shell_quote((dir / "notok").string()), " --out ", x), "no tokenizer");
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "temporary left: " << e.path();
  }
}

}  // namespace
}  // namespace llm::test
