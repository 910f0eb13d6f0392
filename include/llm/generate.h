// Generation: streaming UTF-8 output, stop strings, the prefill/decode loop over an
// InferenceModel's KV cache, timing, and perplexity of a token sequence. docs/llmgen.md.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "llm/inference.h"
#include "llm/sampler.h"
#include "llm/tokenizer.h"

namespace llm {

// Token bytes in, complete UTF-8 characters out: a character split across tokens is held back
// until its last byte arrives. Ill-formed bytes become U+FFFD exactly as Tokenizer::decode()
// replaces them (one per maximal ill-formed subpart), so the concatenated output of push() and
// flush() equals the lossy decoding of all the bytes.
class Utf8Stream {
 public:
  std::string push(std::string_view bytes);
  // The held-back tail of an unfinished character, as U+FFFD (end of output).
  std::string flush();
  void reset() { pending_.clear(); }

 private:
  std::string pending_;
};

// Holds back text that may be the beginning of a stop string; once a stop string appears the
// text before it is released and everything from it on is dropped.
class StopFilter {
 public:
  explicit StopFilter(std::vector<std::string> stops);  // no empty strings
  std::string push(std::string_view text);
  std::string flush();  // what is held back (no stop string followed)
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

struct GenerateOptions;

// The text side of generation, shared by llmgen and the server: each sampled token's bytes go
// through the UTF-8 stream and the stop filter; special tokens print only with show_special.
class TokenText {
 public:
  TokenText(const Tokenizer& tok, const GenerateOptions& opt);
  std::string push(int32_t id);                       // the text that became complete with this token (may be empty)
  std::string finish();                               // the rest, at the end of generation
  bool stopped() const { return filter_.stopped(); }  // a stop string appeared

 private:
  const Tokenizer* tok_;
  bool show_special_;
  Utf8Stream utf8_;
  StopFilter filter_;
};

struct GenerateOptions {
  int64_t max_tokens = 512;       // generated tokens at most; -1: until the context is full
  std::vector<std::string> stop;  // stop strings (matched in the decoded text, not printed)
  bool show_special = false;      // print special tokens (other than the stop ids) as text

  void validate(std::string_view prefix) const;  // prefix: "--" (flags) or "/set " (REPL)
};

enum class StopReason { StopToken, StopString, MaxTokens, ContextFull, Interrupted };
std::string_view stop_reason_text(StopReason r);

struct GenerateStats {
  int64_t reused_tokens = 0;  // prompt tokens found in the KV cache already
  int64_t prompt_tokens = 0;  // prompt tokens forwarded (prefill)
  double prefill_seconds = 0;
  int64_t generated = 0;      // tokens sampled, the stop token included
  int64_t decode_tokens = 0;  // single-token forwards during decode
  double decode_seconds = 0;  // sampling and decode forwards
  StopReason reason = StopReason::MaxTokens;
};

struct GenerateResult {
  std::string text;             // what was emitted
  std::vector<int32_t> tokens;  // sampled, without a final stop token
  GenerateStats stats;
};

// A model and its tokenizer, with the tokens the KV cache holds, so a prompt that shares a prefix
// with them is only partly prefilled (the cache is truncated to the common prefix).
class Session {
 public:
  Session(InferenceModel& model, const Tokenizer& tok);

  InferenceModel& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  const std::vector<int32_t>& cached() const { return cached_; }
  void reset();

  // Brings the cache to `tokens` (reusing the common prefix) and returns the logits after the
  // last token. Error when tokens is empty or longer than the context.
  std::vector<float> prefill(std::span<const int32_t> tokens, int64_t* reused = nullptr);

  // Prefills `prompt`, then samples until a stop id, a stop string, the token limit, the end of
  // the context or interrupted() (checked between tokens). Text goes to emit as it completes.
  GenerateResult generate(std::span<const int32_t> prompt, Sampler& sampler, const GenerateOptions& opt,
                          const std::function<void(std::string_view)>& emit,
                          const std::function<bool()>& interrupted = {});

 private:
  InferenceModel* model_;
  const Tokenizer* tok_;
  std::vector<int32_t> cached_;  // == the model's first position() tokens
};

// One line: "prefill: ... | decode: ... | memory: weights ..., KV cache ..." (docs/llmgen.md).
std::string format_stats(const GenerateStats& s, const InferenceModel& model);

// ---- perplexity ---------------------------------------------------------------------------------

struct PerplexityResult {
  int64_t tokens = 0;     // in the text
  int64_t predicted = 0;  // scored: tokens - 1
  int64_t windows = 0;
  double nll_mean = 0;  // mean negative log-likelihood (nats)
  double ppl = 0;       // exp(nll_mean)
};

// Every token after the first scored from the tokens before it: the whole sequence at once when
// it fits model.context(), otherwise windows of context tokens with stride context/2, each later
// window scoring only the tokens after the previous window's end (its second half). Log-softmax
// in double. progress(window, windows) after each window.
PerplexityResult perplexity(InferenceModel& model, std::span<const int32_t> ids,
                            const std::function<void(int64_t, int64_t)>& progress = {});

// The windows perplexity() uses, as [start, end) with scoring from `score_from`.
struct PerplexityWindow {
  int64_t start, end, score_from;
};
std::vector<PerplexityWindow> perplexity_windows(int64_t tokens, int64_t context);

// Tokens of a text file; errors name the file (unreadable, empty, fewer than 2 tokens).
std::vector<int32_t> perplexity_tokens(const Tokenizer& tok, const std::filesystem::path& file);

// {"tokens": N, "predicted": M, "nll_mean": x, "ppl": y} on one line.
std::string perplexity_json(const PerplexityResult& r);

}  // namespace llm
