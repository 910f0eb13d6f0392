// Sampler: picks the next token from a row of logits. Greedy (temperature 0) or sampling with
// temperature, top-k, top-p and min-p, after HF's repetition penalty; reproducible for a seed.
// docs/llmgen.md gives the exact semantics; the order of the steps is HF's:
//   repetition penalty -> (temperature 0: argmax) -> temperature -> top-k -> top-p -> min-p -> draw.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <vector>

namespace llm {

// Defaults are Qwen2.5-Instruct's generation_config.json.
struct SamplingParams {
  float temperature = 0.7f;      // 0: greedy (argmax)
  int64_t top_k = 20;            // keep the k most likely tokens; 0: off
  float top_p = 0.8f;            // keep the most likely tokens up to this probability mass; 1: off
  float min_p = 0.0f;            // drop tokens below min_p times the most likely one's probability; 0: off
  float repeat_penalty = 1.05f;  // HF repetition_penalty over the whole context; 1: off
  uint64_t seed = 0;

  // Throws naming the parameter as `prefix` + its name: "--temp" for flags, "/set temp" in the REPL.
  void validate(std::string_view prefix) const;
};

// HF's RepetitionPenaltyLogitsProcessor: every distinct id of `context` (ids outside the logits
// are ignored) has its logit divided by `penalty` when positive and multiplied by it otherwise.
void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> context, float penalty);

struct TokenProb {
  int32_t id;
  double p;
};

// The distribution sample() draws from, for logits the penalty was already applied to: the kept
// tokens, most likely first (ties: lower id first), probabilities summing to 1. Temperature 0
// gives the argmax (lowest id on ties) with probability 1.
std::vector<TokenProb> sampling_distribution(std::span<const float> logits, const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);  // validates (prefix "--") and seeds with p.seed

  const SamplingParams& params() const { return p_; }
  // Validates; the generator is re-seeded only when the seed changes.
  void set_params(const SamplingParams& p);

  // The next token after `context` (the tokens the penalty looks at) for `logits` [V].
  int32_t sample(std::span<const float> logits, std::span<const int32_t> context);

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;  // its raw 64-bit output is fixed by the standard: same seed, same draws everywhere
  std::vector<float> work_;
};

}  // namespace llm
