// Perplexity against a direct computation from forward_all logits (float64 log-softmax), for a
// text within the context and one longer than it; the window plan by hand; bad files.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>

#include "gen_test_util.h"
#include "llm/error.h"
#include "llm/generate.h"
#include "test_util.h"

namespace llm::test {
namespace {

double nll_of(const float* row, int64_t V, int32_t target) {
  double mx = row[0];
  for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += std::exp(double(row[v]) - mx);
  return std::log(s) + mx - double(row[target]);
}

class PerplexityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_ = rng();
    weights_ = random_weights(g_, ParamTable(cfg_));  // unpeaked: a perplexity of order V
  }
  std::unique_ptr<InferenceModel> model(int64_t context) {
    InferenceOptions io;
    io.context = context;
    io.prefill_chunk = 8;
    return std::make_unique<InferenceModel>(cfg_, weights_, cpu_, io);
  }
  std::vector<int32_t> random_ids(int n) {
    std::uniform_int_distribution<int32_t> d(0, int32_t(cfg_.vocab_size - 1));
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& x : ids) x = d(g_);
    return ids;
  }

  std::mt19937_64 g_;
  ModelConfig cfg_ = small_gen_config();
  std::vector<float> weights_;
  CpuBackend cpu_{1};
};

TEST_F(PerplexityTest, WithinTheContextEqualsForwardAll) {
  const auto ids = random_ids(100);
  auto m = model(128);
  int64_t progress_calls = 0;
  const PerplexityResult r = perplexity(*m, ids, [&](int64_t w, int64_t n) {
    ++progress_calls;
    EXPECT_EQ(w, 1);
    EXPECT_EQ(n, 1);
  });
  // Direct: one forward_all over the whole text, token t + 1 scored from row t.
  auto ref = model(128);
  const auto rows = ref->forward_all(ids);
  const int64_t V = cfg_.vocab_size;
  double nll = 0;
  for (size_t t = 0; t + 1 < ids.size(); ++t) nll += nll_of(rows.data() + t * size_t(V), V, ids[t + 1]);
  nll /= double(ids.size() - 1);
  EXPECT_EQ(r.tokens, 100);
  EXPECT_EQ(r.predicted, 99);
  EXPECT_EQ(r.windows, 1);
  EXPECT_EQ(progress_calls, 1);
  EXPECT_NEAR(r.nll_mean, nll, 1e-6 * nll);
  EXPECT_NEAR(r.ppl, std::exp(nll), 1e-5 * std::exp(nll));
  EXPECT_GT(r.ppl, 10.0);  // a random model is far from certain
}

TEST_F(PerplexityTest, LongerThanTheContextUsesHalfOverlappingWindows) {
  const int64_t ctx = 16, stride = ctx / 2;
  const auto ids = random_ids(50);
  auto m = model(ctx);
  const PerplexityResult r = perplexity(*m, ids);
  // Direct: token t (t >= ctx) is scored in the first window that contains it, which starts at
  // stride * ceil((t + 1 - ctx) / stride); tokens before ctx in the first window (start 0).
  auto ref = model(64);
  const int64_t V = cfg_.vocab_size;
  double nll = 0;
  for (int64_t t = 1; t < int64_t(ids.size()); ++t) {
    const int64_t start = t < ctx ? 0 : stride * ((t + 1 - ctx + stride - 1) / stride);
    ref->reset();
    const auto rows = ref->forward_all(std::span(ids).subspan(size_t(start), size_t(t - start)));
    nll += nll_of(rows.data() + size_t(t - start - 1) * size_t(V), V, ids[size_t(t)]);
  }
  nll /= double(ids.size() - 1);
  EXPECT_EQ(r.predicted, 49);
  EXPECT_EQ(r.windows, 6);
  EXPECT_NEAR(r.nll_mean, nll, 1e-6 * nll);
  // Limited context changes the answer: the windows are not a no-op.
  auto whole = model(64);
  const PerplexityResult full = perplexity(*whole, ids);
  EXPECT_GT(std::abs(full.nll_mean - r.nll_mean), 1e-6);
}

TEST(PerplexityWindows, PlanByHand) {
  auto plan = [](int64_t n, int64_t ctx) {
    std::vector<std::array<int64_t, 3>> out;
    for (const auto& w : perplexity_windows(n, ctx)) out.push_back({w.start, w.end, w.score_from});
    return out;
  };
  using W = std::vector<std::array<int64_t, 3>>;
  EXPECT_EQ(plan(10, 16), (W{{0, 10, 1}}));
  EXPECT_EQ(plan(16, 16), (W{{0, 16, 1}}));
  EXPECT_EQ(plan(50, 16), (W{{0, 16, 1}, {8, 24, 16}, {16, 32, 24}, {24, 40, 32}, {32, 48, 40}, {40, 50, 48}}));
  EXPECT_EQ(plan(12, 5), (W{{0, 5, 1}, {2, 7, 5}, {4, 9, 7}, {6, 11, 9}, {8, 12, 11}}));
  EXPECT_THROW(perplexity_windows(1, 16), Error);
  EXPECT_THROW(perplexity_windows(10, 1), Error);
}

TEST(PerplexityFile, RejectsEmptyShortAndMissingFiles) {
  GenTempDir dir;
  const ByteTokenizer tok;
  auto expect_error = [&](const std::filesystem::path& p, const std::string& msg) {
    try {
      perplexity_tokens(tok, p);
      ADD_FAILURE() << "no error for " << p;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), p.string() + msg);
    }
  };
  write_text(dir / "empty.txt", "");
  expect_error(dir / "empty.txt", ": the perplexity file is empty");
  write_text(dir / "one.txt", "a");
  expect_error(dir / "one.txt", ": the text is 1 token; perplexity needs at least 2 (one to predict from)");
  expect_error(dir / "missing.txt", ": cannot read the perplexity file");
  write_text(dir / "ok.txt", "ab");
  EXPECT_EQ(perplexity_tokens(tok, dir / "ok.txt"), (std::vector<int32_t>{'a', 'b'}));
}

TEST(PerplexityJson, IsOneLineWithTheFourKeys) {
  PerplexityResult r;
  r.tokens = 10;
  r.predicted = 9;
  r.nll_mean = 2.5;
  r.ppl = std::exp(2.5);
  const std::string s = perplexity_json(r);
  EXPECT_EQ(s.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(s);
  EXPECT_EQ(j.size(), 4u);
  EXPECT_EQ(j["tokens"], 10);
  EXPECT_EQ(j["predicted"], 9);
  EXPECT_EQ(j["nll_mean"].get<double>(), 2.5);
  EXPECT_EQ(j["ppl"].get<double>(), std::exp(2.5));
}

}  // namespace
}  // namespace llm::test
