// LoRA learns a task that needs the prompt (issue 15, acceptance 4): a tiny model pretrained by
// llmtrain on fortunes, then LoRA-fine-tuned on chat conversations whose answer is the user's
// words in reverse order, answers 200 held-out prompts exactly through
// `llmgen --chat --lora ... --temp 0`; the base model alone answers (almost) none of them.
// Everything runs as a user would: the llmtrain and llmgen executables, config keys and flags.
#include <sys/wait.h>

#include <algorithm>
#include <random>
#include <set>
#include <sstream>

#include "train/train_fixture.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

// Single words common in fortunes (most are one token of the fixture's 512-piece vocabulary).
const std::vector<std::string> kWords = {"cat", "dog", "sun", "man", "day", "war", "god", "love",
                                         "life", "time", "king", "red", "sea", "old", "new", "fire"};
constexpr int kPromptWords = 3;
constexpr int kTrain = 2400, kHeldOut = 200;

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct Run {
  int status;
  std::string out, err;
};

Run run_tool(const std::string& name, const std::string& args, const fs::path& dir, const fs::path* stdin_file) {
  const std::string cmd = cat(LLM_TOOLS_DIR, "/", name, " ", args, stdin_file ? " < " + shell_quote(*stdin_file) : "",
                              " > ", shell_quote((dir / "out.txt").string()), " 2> ",
                              shell_quote((dir / "err.txt").string()));
  const int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_bytes(dir / "out.txt"), read_bytes(dir / "err.txt")};
}

std::string join(const std::vector<std::string>& w) {
  std::string s;
  for (const std::string& x : w) s += (s.empty() ? "" : " ") + x;
  return s;
}

// Fraction of prompts whose greedy chat answer is exactly the reversed words. The prompts go to
// one llmgen process, a conversation each (/reset between them); --stop on a newline keeps one
// answer per output line.
double exact_answers(const fs::path& dir, const std::string& model_args,
                     const std::vector<std::vector<std::string>>& prompts, std::string* first_wrong) {
  std::string input;
  for (const auto& p : prompts) input += join(p) + "\n/reset\n";
  write_bytes(dir / "prompts.txt", input);
  const fs::path in = dir / "prompts.txt";
  const Run r = run_tool("llmgen",
                         cat(model_args, " --chat --temp 0 --max-tokens 12 --device cpu --threads 2 --stop '\n'"),
                         dir, &in);
  EXPECT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  size_t i = 0, right = 0;
  while (std::getline(lines, line) && i < prompts.size()) {
    std::vector<std::string> want = prompts[i];
    std::reverse(want.begin(), want.end());
    if (line == join(want)) {
      ++right;
    } else if (first_wrong != nullptr && first_wrong->empty()) {
      *first_wrong = cat("\"", join(prompts[i]), "\" -> \"", line, "\"");
    }
    ++i;
  }
  EXPECT_EQ(i, prompts.size()) << "one answer line per prompt expected; stdout:\n" << r.out;
  return double(right) / double(prompts.size());
}

TEST_F(TrainFixture, LoraLearnsToReverseTheUsersWordsOnHeldOutPrompts) {
  // Every prompt of three words, shuffled: the first kTrain for training, the last kHeldOut never
  // seen in training.
  std::vector<std::vector<std::string>> all;
  for (size_t a = 0; a < kWords.size(); ++a)
    for (size_t b = 0; b < kWords.size(); ++b)
      for (size_t c = 0; c < kWords.size(); ++c) all.push_back({kWords[a], kWords[b], kWords[c]});
  static_assert(kPromptWords == 3);
  std::mt19937 rng(std::random_device{}());
  std::shuffle(all.begin(), all.end(), rng);
  ASSERT_GE(all.size(), size_t(kTrain + kHeldOut));
  const std::vector<std::vector<std::string>> held_out(all.end() - kHeldOut, all.end());
  std::string chat;
  for (int i = 0; i < kTrain; ++i) {
    std::vector<std::string> rev = all[size_t(i)];
    std::reverse(rev.begin(), rev.end());
    chat += nlohmann::json{{"messages",
                            {{{"role", "user"}, {"content", join(all[size_t(i)])}},
                             {{"role", "assistant"}, {"content", join(rev)}}}}}
                .dump() +
            "\n";
  }
  write_bytes(dir / "chat.jsonl", chat);

  // 1. The base: pretrained on the fortunes slice (its tokenizer knows the ChatML tokens).
  write_bytes(dir / "c.json", config_json());
  const fs::path base = dir / "base", lora = dir / "lora";
  const std::string common =
      cat("--config ", dir / "c.json",
          R"( --set 'tokenizer.train.special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]')",
          " --set model.max_position_embeddings=128 --set train.eval_every=0 --set train.log_every=50");
  Run r = run_tool("llmtrain", cat(common, " --set train.steps=150 --set io.run_dir=", base), dir.path(), nullptr);
  ASSERT_EQ(r.status, 0) << r.err;

  // 2. LoRA on the chat task, init_from the base run.
  r = run_tool("llmtrain",
               cat(common, " --set model.init_from=", base, " --set io.run_dir=", lora,
                   R"( --set 'data.inputs=[{"path": ")", (dir / "chat.jsonl").string(),
                   R"(", "format": "chat"}]' --set data.out_dir=)", dir / "sft_shards",
                   " --set data.val_fraction=0 --set train.seq_len=128 --set train.micro_batch=8",
                   " --set train.steps=300 --set optim.lr=0.003 --set optim.warmup_steps=20",
                   R"( --set 'train.lora={"rank": 16, "alpha": 32, "target_modules": )",
                   R"(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}')"),
               dir.path(), nullptr);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(fs::exists(lora / "latest" / "adapter_config.json")) << r.err;

  // 3. Held-out prompts through llmgen: with the adapter >= 90% exact, without it near 0.
  std::string wrong_lora, wrong_base;
  const double with_lora = exact_answers(dir.path(), cat("--model ", base, " --lora ", lora / "latest"), held_out,
                                         &wrong_lora);
  const double base_only = exact_answers(dir.path(), cat("--model ", base), held_out, &wrong_base);
  std::cerr << "[ lora learn ] exact answers on " << kHeldOut << " held-out prompts: with LoRA " << with_lora
            << ", base alone " << base_only << "\n";
  EXPECT_GE(with_lora, 0.9) << "first wrong answer: " << wrong_lora;
  EXPECT_LE(base_only, 0.05) << "the base should not know the task; first wrong: " << wrong_base;
}

}  // namespace
}  // namespace llm::test
