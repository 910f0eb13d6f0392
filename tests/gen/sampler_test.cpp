// The sampler against distributions and support sets worked out by hand or by a brute-force
// float64 computation here, and its draws against the exact distribution (chi-square).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "llm/error.h"
#include "llm/sampler.h"
#include "test_util.h"

namespace llm::test {
namespace {

SamplingParams plain(float temp) {
  SamplingParams p;
  p.temperature = temp;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.0f;
  return p;
}

std::vector<double> softmax(const std::vector<float>& l, double temp) {
  double mx = -INFINITY;
  for (float v : l) mx = std::max(mx, double(v));
  std::vector<double> p(l.size());
  double s = 0;
  for (size_t i = 0; i < l.size(); ++i) s += p[i] = std::exp((double(l[i]) - mx) / temp);
  for (auto& x : p) x /= s;
  return p;
}

std::vector<int32_t> ids_of(const std::vector<TokenProb>& d) {
  std::vector<int32_t> ids;
  for (const auto& t : d) ids.push_back(t.id);
  return ids;
}

// Logits whose softmax at temperature 1 is exactly `probs`.
std::vector<float> logits_for(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(float(std::log(p)));
  return l;
}

// Chi-square critical value for `df` degrees of freedom at p = 1e-4 (Wilson-Hilferty).
double chi2_critical(int df) {
  const double z = 3.719, a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}

// Draws n tokens and checks the frequencies against `want` (id -> probability); ids outside it
// must never be drawn.
void expect_draws_match(Sampler& s, const std::vector<float>& logits, const std::map<int32_t, double>& want, int n) {
  std::map<int32_t, int> count;
  for (int i = 0; i < n; ++i) ++count[s.sample(logits, {})];
  double chi2 = 0;
  for (const auto& [id, c] : count) ASSERT_TRUE(want.count(id)) << "token " << id << " is outside the support";
  for (const auto& [id, p] : want) {
    const double e = p * n;
    const double o = count.count(id) ? count[id] : 0;
    chi2 += (o - e) * (o - e) / e;
  }
  const int df = int(want.size()) - 1;
  if (df > 0) {
    EXPECT_LT(chi2, chi2_critical(df)) << "chi-square " << chi2 << " with " << df << " degrees of freedom";
  }
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  auto g = rng();
  for (int rep = 0; rep < 20; ++rep) {
    const std::vector<float> l = randn(g, 1000);
    Sampler s(plain(0.0f));
    const auto want = std::max_element(l.begin(), l.end()) - l.begin();
    EXPECT_EQ(s.sample(l, {}), want);
  }
  Sampler s(plain(0.0f));
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 3.0f, 2.0f, 3.0f}, {}), 1);
}

TEST(Sampler, RepetitionPenaltyIsHfs) {
  // Positive logits divided, negative ones multiplied, each distinct id once, ids out of range ignored.
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
  apply_repetition_penalty(l, std::vector<int32_t>{0, 1, 1, 4, 7, -1}, 2.0f);
  EXPECT_EQ(l, (std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f, 0.0f}));
  // Greedy sees the penalised logits: 3.0 in the context becomes 1.5 < 2.0.
  SamplingParams p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  Sampler s(p);
  EXPECT_EQ(s.sample(std::vector<float>{2.0f, 3.0f}, std::vector<int32_t>{1}), 0);
  EXPECT_EQ(s.sample(std::vector<float>{2.0f, 3.0f}, std::vector<int32_t>{0}), 1);
}

TEST(Sampler, TemperatureDistributionIsSoftmax) {
  auto g = rng();
  const std::vector<float> l = randn(g, 50, 2.0f);
  for (float t : {0.3f, 1.0f, 2.5f}) {
    const auto d = sampling_distribution(l, plain(t));
    ASSERT_EQ(d.size(), l.size());
    const auto want = softmax(l, t);
    for (size_t i = 0; i < d.size(); ++i) {
      EXPECT_NEAR(d[i].p, want[size_t(d[i].id)], 1e-12);
      if (i) {
        EXPECT_GE(d[i - 1].p, d[i].p);
      }
    }
  }
}

TEST(Sampler, TopKTopPMinPSupportsByHand) {
  const std::vector<float> l = logits_for({0.5, 0.2, 0.15, 0.1, 0.05});
  auto with = [](int64_t k, float top_p, float min_p) {
    SamplingParams p = plain(1.0f);
    p.top_k = k;
    p.top_p = top_p;
    p.min_p = min_p;
    return p;
  };
  EXPECT_EQ(ids_of(sampling_distribution(l, with(2, 1, 0))), (std::vector<int32_t>{0, 1}));
  // top-p keeps a token while the mass before it is below p: 0, .5, .7, .85, .95
  EXPECT_EQ(ids_of(sampling_distribution(l, with(0, 0.45f, 0))), (std::vector<int32_t>{0}));
  EXPECT_EQ(ids_of(sampling_distribution(l, with(0, 0.6f, 0))), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(ids_of(sampling_distribution(l, with(0, 0.8f, 0))), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(ids_of(sampling_distribution(l, with(0, 0.9f, 0))), (std::vector<int32_t>{0, 1, 2, 3}));
  // After top-k 3 the mass is renormalised over .85: before-masses 0, .588, .824 -> 0.8 keeps two.
  EXPECT_EQ(ids_of(sampling_distribution(l, with(3, 0.8f, 0))), (std::vector<int32_t>{0, 1}));
  // min-p 0.35: p >= 0.175 -> .5 and .2
  EXPECT_EQ(ids_of(sampling_distribution(l, with(0, 1, 0.35f))), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(ids_of(sampling_distribution(l, with(0, 1, 0.25f))), (std::vector<int32_t>{0, 1, 2}));
  // All three: top-k 4 -> {0..3} (mass .95); top-p .8 of it: before-masses 0, .526, .737, .895 -> {0, 1, 2};
  // then min-p .25 keeps p >= .125 -> {0, 1, 2} and min-p .35 keeps p >= .175 -> {0, 1}.
  EXPECT_EQ(ids_of(sampling_distribution(l, with(4, 0.8f, 0.25f))), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(ids_of(sampling_distribution(l, with(4, 0.8f, 0.35f))), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(ids_of(sampling_distribution(l, with(2, 0.8f, 0.25f))), (std::vector<int32_t>{0, 1}));
  // Renormalised probabilities of a support.
  const auto d = sampling_distribution(l, with(0, 0.8f, 0));
  EXPECT_NEAR(d[0].p, 0.5 / 0.85, 1e-7);
  EXPECT_NEAR(d[1].p, 0.2 / 0.85, 1e-7);
  EXPECT_NEAR(d[2].p, 0.15 / 0.85, 1e-7);
  // Temperature 0: the argmax alone.
  EXPECT_EQ(ids_of(sampling_distribution(l, plain(0.0f))), (std::vector<int32_t>{0}));
}

TEST(Sampler, TopPOverALargeVocabularyMatchesBruteForce) {
  // The sampler sorts a growing prefix; the brute force sorts everything.
  auto g = rng();
  const std::vector<float> l = randn(g, 5000, 1.5f);
  for (float top_p : {0.05f, 0.5f, 0.9f, 0.99f}) {
    SamplingParams p = plain(0.8f);
    p.top_p = top_p;
    const auto sm = softmax(l, 0.8);
    std::vector<int32_t> order(l.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
      return sm[size_t(a)] > sm[size_t(b)] || (sm[size_t(a)] == sm[size_t(b)] && a < b);  // equal floats happen
    });
    std::vector<int32_t> want;
    double before = 0;
    for (int32_t id : order) {
      if (before >= top_p) break;
      want.push_back(id);
      before += sm[size_t(id)];
    }
    const auto got = ids_of(sampling_distribution(l, p));
    ASSERT_EQ(got.size(), want.size()) << "top-p " << top_p;
    const auto diff = std::mismatch(got.begin(), got.end(), want.begin());
    EXPECT_EQ(diff.first, got.end()) << "top-p " << top_p << ": rank " << (diff.first - got.begin()) << " differs";
  }
}

TEST(Sampler, DrawsFollowTheExactDistribution) {
  auto g = rng();
  const std::vector<float> l = {1.0f, 0.2f, -0.5f, 2.0f, 0.0f, 1.4f};
  SamplingParams p = plain(0.8f);
  p.seed = g();
  Sampler s(p);
  const auto sm = softmax(l, 0.8);
  std::map<int32_t, double> want;
  for (size_t i = 0; i < sm.size(); ++i) want[int32_t(i)] = sm[i];
  expect_draws_match(s, l, want, 20000);
}

TEST(Sampler, DrawsFromATruncatedDistributionStayInItsSupport) {
  auto g = rng();
  const std::vector<float> l = logits_for({0.3, 0.25, 0.2, 0.1, 0.08, 0.07});
  SamplingParams p = plain(1.0f);
  p.top_k = 5;     // drops 0.07
  p.top_p = 0.7f;  // of 0.93: before-masses 0, .323, .591, .806 -> {0, 1, 2}
  p.seed = g();
  Sampler s(p);
  expect_draws_match(s, l, {{0, 0.3 / 0.75}, {1, 0.25 / 0.75}, {2, 0.2 / 0.75}}, 20000);
}

TEST(Sampler, SameSeedSameTokens) {
  auto g = rng();
  const uint64_t seed = g();
  std::vector<std::vector<float>> rows;
  for (int i = 0; i < 200; ++i) rows.push_back(randn(g, 64));
  auto run = [&](uint64_t sd) {
    SamplingParams p;  // the defaults: temperature, top-k, top-p, penalty all on
    p.seed = sd;
    Sampler s(p);
    std::vector<int32_t> out;
    for (const auto& r : rows) out.push_back(s.sample(r, out));
    return out;
  };
  EXPECT_EQ(run(seed), run(seed));
  EXPECT_NE(run(seed), run(seed + 1));
}

TEST(Sampler, SetParamsReseedsOnlyOnANewSeed) {
  SamplingParams p = plain(1.0f);
  p.seed = 7;
  Sampler a(p), b(p);
  const std::vector<float> l(16, 0.0f);
  a.sample(l, {});
  b.sample(l, {});
  p.temperature = 2.0f;  // same seed: the stream continues
  b.set_params(p);
  EXPECT_EQ(a.sample(l, {}), b.sample(l, {}));
  p.seed = 7;
  Sampler c(p);
  std::vector<int32_t> first, again;
  for (int i = 0; i < 20; ++i) first.push_back(c.sample(l, {}));
  p.seed = 8;
  c.set_params(p);
  p.seed = 7;
  c.set_params(p);  // a new seed: restart
  for (int i = 0; i < 20; ++i) again.push_back(c.sample(l, {}));
  EXPECT_EQ(first, again);
}

void expect_invalid(const SamplingParams& p, const std::string& msg) {
  try {
    p.validate("--");
    ADD_FAILURE() << "no error, expected: " << msg;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), msg);
  }
}

TEST(Sampler, RejectsBadParameters) {
  SamplingParams p;
  p.temperature = -1.0f;
  expect_invalid(p, "--temp: -1 is not a temperature >= 0 (0: greedy)");
  p = {};
  p.top_p = 0.0f;
  expect_invalid(p, "--top-p: 0 is outside (0, 1] (1: off)");
  p.top_p = 1.5f;
  expect_invalid(p, "--top-p: 1.5 is outside (0, 1] (1: off)");
  p = {};
  p.top_k = -2;
  expect_invalid(p, "--top-k: -2 is negative (0: off)");
  p = {};
  p.min_p = 1.5f;
  expect_invalid(p, "--min-p: 1.5 is outside [0, 1] (0: off)");
  p = {};
  p.repeat_penalty = 0.0f;
  expect_invalid(p, "--repeat-penalty: 0 is not a positive number (1: off)");
  EXPECT_THROW(Sampler{p}, Error);
  EXPECT_THROW(sampling_distribution(std::vector<float>{1.0f, NAN}, SamplingParams{}), Error);
}

}  // namespace
}  // namespace llm::test
