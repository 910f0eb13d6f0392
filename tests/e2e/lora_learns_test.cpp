// LoRA learns a task that needs the prompt (issue 15, acceptance 4), run as a user would run it:
//   1. llmtrain pretrains a tiny model from scratch on chat conversations that teach it the ChatML
//      format and to repeat the user's words (system prompt "Repeat the words.");
//   2. llmtrain fine-tunes LoRA adapters on a new task: reply with the user's words in reverse
//      order (system prompt "Reverse the words."), the base frozen;
//   3. llmgen --chat --lora ... --temp 0 answers 200 held-out prompts, never seen in either run.
// With the adapter at least 90% of the answers are exact; the base alone answers (almost) none: it
// repeats the words in their order, and no prompt reads the same reversed (first word != last).
// About 40 s on two quiet cores; the random draw is the test seed's (LLM_TEST_SEED repeats it).
#include <algorithm>
#include <sstream>

#include "e2e/e2e_fixture.h"

namespace llm::test {
namespace {

const std::vector<std::string> kWords = {"cat",  "dog",  "sun",  "man", "day", "war", "god", "love",
                                         "life", "time", "king", "red", "sea", "old", "new", "fire"};
constexpr size_t kHeldOut = 200, kEchoConversations = 4000;

using Prompt = std::vector<std::string>;

std::string join(const Prompt& w) {
  std::string s;
  for (const std::string& x : w) s += (s.empty() ? "" : " ") + x;
  return s;
}

Prompt reversed(Prompt p) {
  std::reverse(p.begin(), p.end());
  return p;
}

std::string conversation(const std::string& system, const Prompt& user, const Prompt& assistant) {
  const nlohmann::json c = {{"messages",
                             {{{"role", "system"}, {"content", system}},
                              {{"role", "user"}, {"content", join(user)}},
                              {{"role", "assistant"}, {"content", join(assistant)}}}}};
  return c.dump() + "\n";
}

// The model, tokenizer and optimiser of both runs; the LoRA run adds its keys with --set.
nlohmann::json base_config(const fs::path& d) {
  return {{"model",
           {{"vocab_size", 320},
            {"hidden_size", 64},
            {"intermediate_size", 128},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"max_position_embeddings", 64},
            {"tie_word_embeddings", true}}},
          {"tokenizer",
           {{"kind", "sentencepiece"},
            {"path", (d / "tok.model").string()},
            {"train", {{"vocab_size", 320}, {"special_tokens", {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}}}}}},
          {"data",
           {{"inputs", {{{"path", (d / "echo.jsonl").string()}, {"format", "chat"}}}},
            {"out_dir", (d / "echo_shards").string()},
            {"val_fraction", 0}}},
          {"train",
           {{"device", "cpu"},
            {"threads", 2},
            {"seq_len", 64},
            {"micro_batch", 16},
            {"steps", 400},
            {"eval_every", 0},
            {"log_every", 100}}},
          {"optim", {{"lr", 0.01}, {"warmup_steps", 20}}},
          {"io", {{"run_dir", (d / "base").string()}, {"save_every", 0}, {"keep_last", 1}}}};
}

// Fraction of the prompts whose greedy answer is exactly the reversed words. One llmgen process,
// a conversation per prompt (/reset between them); each answer is one line of stdout.
double exact_answers(const fs::path& d, const std::string& model_args, const std::vector<Prompt>& prompts,
                     std::string* wrong) {
  std::string input;
  for (const Prompt& p : prompts) input += join(p) + "\n/reset\n";
  write_bytes(d / "prompts.txt", input);
  // The repetition penalty is off: a reversal repeats the prompt's words by design.
  const Proc r =
      run_tool("llmgen",
               cat(model_args, " --chat --system 'Reverse the words.' --temp 0 --repeat-penalty 1",
                   " --max-tokens 12 --device cpu --threads 2 < ", shell_quote((d / "prompts.txt").string())),
               d);
  EXPECT_EQ(r.status, 0) << r.err;
  std::istringstream lines(r.out);
  std::string line;
  size_t i = 0, right = 0;
  while (i < prompts.size() && std::getline(lines, line)) {
    if (line == join(reversed(prompts[i]))) {
      ++right;
    } else if (wrong->size() < 400) {
      *wrong += cat("\n  \"", join(prompts[i]), "\" -> \"", line, "\"");
    }
    ++i;
  }
  EXPECT_EQ(i, prompts.size()) << "one answer line per prompt expected; stdout:\n" << r.out;
  return double(right) / double(prompts.size());
}

TEST(LoraLearns, ToReverseTheUsersWordsOnHeldOutPrompts) {
  TempDir dir;
  const fs::path d = dir.path();
  // Every three-word prompt whose reversal differs from it, shuffled: 200 held out, the rest for
  // the two training runs.
  std::vector<Prompt> all;
  for (const auto& a : kWords)
    for (const auto& b : kWords)
      for (const auto& c : kWords)
        if (a != c) all.push_back({a, b, c});
  auto g = rng();
  std::shuffle(all.begin(), all.end(), g);
  const std::vector<Prompt> held_out(all.end() - kHeldOut, all.end());
  const std::vector<Prompt> train(all.begin(), all.end() - kHeldOut);

  std::string echo, reverse;
  std::uniform_int_distribution<size_t> pick(0, train.size() - 1);
  for (size_t i = 0; i < kEchoConversations; ++i) {
    const Prompt& p = train[pick(g)];
    echo += conversation("Repeat the words.", p, p);
  }
  for (const Prompt& p : train) reverse += conversation("Reverse the words.", p, reversed(p));
  write_bytes(d / "echo.jsonl", echo);
  write_bytes(d / "reverse.jsonl", reverse);
  write_bytes(d / "c.json", base_config(d).dump(1));

  // 1. Pretraining from scratch (the tokenizer is trained on the echo conversations first).
  Proc r = run_tool("llmtrain", cat("--config ", shell_quote((d / "c.json").string())), d);
  ASSERT_EQ(r.status, 0) << r.err;

  // 2. LoRA on every linear layer, the base frozen.
  const fs::path base = d / "base" / "latest", adapter = d / "lora" / "latest";
  const std::string inputs =
      nlohmann::json::array({{{"path", (d / "reverse.jsonl").string()}, {"format", "chat"}}}).dump();
  r = run_tool("llmtrain",
               cat("--config ", shell_quote((d / "c.json").string()), " --set model.init_from=",
                   shell_quote(base.string()), " --set ", shell_quote("data.inputs=" + inputs),
                   " --set data.out_dir=", shell_quote((d / "reverse_shards").string()), " --set io.run_dir=",
                   shell_quote((d / "lora").string()), " --set train.steps=2500 --set optim.lr=0.005", " --set ",
                   shell_quote(R"(train.lora={"rank": 16, "alpha": 32, "target_modules": )"
                               R"(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]})")),
               d);
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(fs::exists(adapter / "adapter_config.json")) << r.err;
  ASSERT_TRUE(fs::exists(adapter / "adapter_model.safetensors")) << r.err;

  // 3. The held-out prompts through llmgen.
  std::string wrong_lora, wrong_base;
  const double with_lora = exact_answers(
      d, cat("--model ", shell_quote(base.string()), " --lora ", shell_quote(adapter.string())), held_out, &wrong_lora);
  const double base_only = exact_answers(d, cat("--model ", shell_quote(base.string())), held_out, &wrong_base);
  std::cerr << "[ lora learns ] exact reversals of " << kHeldOut << " held-out prompts: with the adapter " << with_lora
            << ", the base alone " << base_only << "\n";
  EXPECT_GE(with_lora, 0.9) << "wrong answers with the adapter:" << wrong_lora;
  EXPECT_LE(base_only, 0.05) << "the base alone should not know the task";
}

}  // namespace
}  // namespace llm::test
