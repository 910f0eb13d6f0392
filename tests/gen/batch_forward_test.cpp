// forward_batch (continuous batching): sequences that share every forward pass, each in its own
// KV-cache slot at its own position, joining and leaving at different steps, get the logits and
// greedy tokens that each gets alone through the single-sequence path.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "gen/gen_test_util.h"
#include "test_util.h"

namespace llm::test {
namespace {

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

struct Greedy {
  std::vector<int32_t> tokens;             // greedy tokens after the prompt
  std::vector<std::vector<float>> logits;  // the logits each token was chosen from
};

// The single-sequence path: prefill the prompt, then decode one token at a time.
Greedy alone(InferenceModel& m, const std::vector<int32_t>& prompt, int steps) {
  m.reset();
  Greedy r;
  std::vector<float> lg = m.forward(prompt);
  for (int i = 0; i < steps; ++i) {
    r.logits.push_back(lg);
    r.tokens.push_back(argmax(lg));
    if (i + 1 < steps) lg = m.forward(std::vector<int32_t>{r.tokens.back()});
  }
  return r;
}

std::vector<int32_t> random_prompt(std::mt19937_64& g, size_t n, int64_t vocab) {
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> p(n);
  for (auto& t : p) t = d(g);
  return p;
}

TEST(BatchForward, SequencesJoiningAtDifferentStepsMatchEachAlone) {
  auto g = rng();
  const ModelConfig cfg = small_gen_config();
  const std::vector<float> w = peaked_weights(g, cfg);
  CpuBackend cpu(2);
  InferenceOptions io;
  io.context = 64;
  io.prefill_chunk = 16;
  InferenceModel single(cfg, w, cpu, io);
  io.slots = 3;
  InferenceModel batched(cfg, w, cpu, io);
  ASSERT_EQ(batched.slots(), 3);

  constexpr int kSteps = 10;
  // Four requests; the fourth reuses the slot the first frees. join: the step at which each
  // request's prompt enters the batch (beside the others' decode tokens).
  struct Request {
    std::vector<int32_t> prompt;
    int join;
    int64_t slot;
  };
  std::vector<Request> reqs = {{random_prompt(g, 5, cfg.vocab_size), 0, 0},
                               {random_prompt(g, 9, cfg.vocab_size), 1, 1},
                               {random_prompt(g, 1, cfg.vocab_size), 3, 2},
                               {random_prompt(g, 7, cfg.vocab_size), kSteps + 1, 0}};
  std::vector<Greedy> expect;
  for (const Request& r : reqs) expect.push_back(alone(single, r.prompt, kSteps));

  std::vector<Greedy> got(reqs.size());
  std::map<size_t, std::vector<int32_t>> pending;  // request -> its next input
  for (int step = 0; step < 2 * kSteps + 2; ++step) {
    std::vector<size_t> order;
    for (size_t i = 0; i < reqs.size(); ++i) {
      if (reqs[i].join == step) {
        batched.reset(reqs[i].slot);  // a finished request's slot is reused from position 0
        pending[i] = reqs[i].prompt;
      }
    }
    std::vector<SeqTokens> batch;
    for (auto& [i, input] : pending) {
      batch.push_back(SeqTokens{reqs[i].slot, input});
      order.push_back(i);
    }
    if (batch.empty()) continue;
    const std::vector<float> lg = batched.forward_batch(batch);
    const auto V = static_cast<size_t>(cfg.vocab_size);
    for (size_t k = 0; k < order.size(); ++k) {
      const size_t i = order[k];
      const std::span<const float> row(lg.data() + k * V, V);
      got[i].logits.emplace_back(row.begin(), row.end());
      got[i].tokens.push_back(argmax(row));
      if (got[i].tokens.size() == kSteps) {
        pending.erase(i);
      } else {
        pending[i] = std::vector<int32_t>{got[i].tokens.back()};
      }
    }
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE("request " + std::to_string(i));
    EXPECT_EQ(got[i].tokens, expect[i].tokens);
    ASSERT_EQ(got[i].logits.size(), expect[i].logits.size());
    for (size_t s = 0; s < expect[i].logits.size(); ++s) {
      // fp32: a GEMM over several rows may sum in another order than a one-row product.
      EXPECT_LT(max_diff_over_max(got[i].logits[s], expect[i].logits[s]), 1e-5) << "step " << s;
    }
  }
  EXPECT_EQ(batched.position(0), 7 + kSteps - 1);
  EXPECT_EQ(batched.position(1), 9 + kSteps - 1);
}

TEST(BatchForward, BadBatchesAreErrorsNamingWhatIsWrong) {
  auto g = rng();
  const ModelConfig cfg = small_gen_config();
  CpuBackend cpu(1);
  InferenceOptions io;
  io.context = 16;
  io.prefill_chunk = 8;
  io.slots = 2;
  InferenceModel m(cfg, peaked_weights(g, cfg), cpu, io);
  const std::vector<int32_t> two = {1, 2}, nine(9, 3), bad = {1, 300};
  auto fails_with = [&](std::vector<SeqTokens> batch, const std::string& text) {
    try {
      m.forward_batch(batch);
      ADD_FAILURE() << "no error; expected one containing: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  fails_with({SeqTokens{2, two}}, "slot 2 of 2");
  fails_with({SeqTokens{0, two}, SeqTokens{0, two}}, "slot 0 appears twice");
  fails_with({SeqTokens{0, nine}, SeqTokens{1, two}}, "exceeds the 8 rows");
  fails_with({SeqTokens{1, bad}}, "token id 300 at position 1 is outside the vocabulary");
  fails_with({}, "a batch of 0 sequences");
  // A failed batch leaves every slot where it was.
  EXPECT_EQ(m.position(0), 0);
  EXPECT_EQ(m.position(1), 0);
  m.forward_batch(std::vector<SeqTokens>{SeqTokens{1, two}});
  EXPECT_EQ(m.position(1), 2);
  const std::vector<int32_t> fifteen(15, 4);
  fails_with({SeqTokens{1, fifteen}}, "2 cached + 15 new tokens exceed the context of 16");
}

}  // namespace
}  // namespace llm::test
