// End-to-end runs as a user makes them: llmtrain trains and saves, llmgen loads and generates.
// One suite-wide setup trains two small models (a text memorised, and a model of a fortunes
// slice for held-out perplexity) and shares them among the tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "io/io_test_util.h"
#include "llm/config.h"
#include "llm/trainer.h"
#include "test_util.h"

namespace llm::test {

namespace fs = std::filesystem;

// A few hundred tokens of real text (the first article of the Universal Declaration of Human
// Rights and the opening of the Gettysburg Address), memorised by the first model.
inline const char* kMemorised =
    "All human beings are born free and equal in dignity and rights. They are endowed with reason and "
    "conscience and should act towards one another in a spirit of brotherhood. Four score and seven years "
    "ago our fathers brought forth on this continent, a new nation, conceived in Liberty, and dedicated to "
    "the proposition that all men are created equal. Now we are engaged in a great civil war, testing "
    "whether that nation, or any nation so conceived and so dedicated, can long endure.";

// Training text of the general model, and a different file for held-out perplexity.
inline const char* kTrainFile = "/usr/share/games/fortunes/cookie";
inline const char* kHeldOutFile = "/usr/share/games/fortunes/people";

struct Proc {
  int status = -1;
  std::string out, err;
};

// Runs a tool of the build with arguments, capturing stdout and stderr.
inline Proc run_tool(const std::string& tool, const std::string& args, const fs::path& scratch) {
  const fs::path out = scratch / "out.txt", err = scratch / "err.txt";
  const std::string cmd =
      cat(LLM_TOOLS_DIR, "/", tool, " ", args, " > ", shell_quote(out.string()), " 2> ", shell_quote(err.string()));
  const int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_bytes(out), read_bytes(err)};
}

class EndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const fs::path d = dir_->path();
    // 1. A tokenizer and a small general model on one of Debian's fortune files.
    std::ifstream in(kTrainFile, std::ios::binary);
    ASSERT_TRUE(in.good()) << "Debian package fortunes is missing: run scripts/setup.sh";
    std::string text(400000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    text.resize(text.rfind("\n%\n") + 3);
    write_bytes(d / "fortunes.txt", text);
    const nlohmann::json general = {
        {"model",
         {{"vocab_size", 640},
          {"hidden_size", 128},
          {"intermediate_size", 256},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"max_position_embeddings", 256},
          {"tie_word_embeddings", true}}},
        {"tokenizer",
         {{"kind", "sentencepiece"}, {"path", (d / "tok.model").string()}, {"train", {{"vocab_size", 640}}}}},
        {"data",
         {{"inputs", {{{"path", (d / "fortunes.txt").string()}, {"doc_separator", "%"}}}},
          {"out_dir", (d / "general_shards").string()},
          {"val_fraction", 0.05}}},
        {"train",
         {{"device", "cpu"},
          {"threads", 2},
          {"seq_len", 64},
          {"micro_batch", 8},
          {"steps", 150},
          {"eval_every", 0},
          {"eval_batches", 4}}},
        {"optim", {{"lr", 0.004}, {"warmup_steps", 10}}},
        {"io", {{"run_dir", (d / "general").string()}}}};
    write_bytes(d / "general.json", general.dump(2));
    std::ostringstream log;
    TrainOptions o;
    o.log = &log;
    train(parse_config(general.dump(), "general.json", d), o);

    // 2. The same tokenizer, a model that sees only kMemorised (64 copies) until it knows it.
    // Numbered copies: the validation split goes by a document's hash, so copies must differ.
    std::string copies;
    for (int i = 0; i < 64; ++i) copies += cat("(", i, ") ", kMemorised, "\n%\n");
    write_bytes(d / "memorise.txt", copies);
    nlohmann::json mem = general;
    mem["tokenizer"].erase("train");
    mem["data"] = {{"inputs", {{{"path", (d / "memorise.txt").string()}, {"doc_separator", "%"}}}},
                   {"out_dir", (d / "memorise_shards").string()},
                   {"val_fraction", 0.05}};
    // Windows longer than a copy of the text: every position is learned with all of it in view.
    mem["model"].update({{"max_position_embeddings", 256},
                         {"hidden_size", 192},
                         {"intermediate_size", 512},
                         {"num_attention_heads", 6},
                         {"num_key_value_heads", 2}});
    mem["train"].update({{"steps", 600}, {"seq_len", 192}, {"micro_batch", 4}});
    mem["optim"] = {{"lr", 0.004}, {"warmup_steps", 20}, {"weight_decay", 0.0}, {"min_lr_ratio", 0.2}};
    mem["io"] = {{"run_dir", (d / "memorised").string()}};
    write_bytes(d / "memorise.json", mem.dump(2));
    const TrainResult r = train(parse_config(mem.dump(), "memorise.json", d), o);
    std::printf("memorising run: final training loss %.4f after %lld steps\n", r.last_loss,
                static_cast<long long>(r.steps_done));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static fs::path path(const std::string& name) { return dir_->path() / name; }

 public:
  static TempDir* dir_;
};

inline TempDir* EndToEnd::dir_ = nullptr;

}  // namespace llm::test
