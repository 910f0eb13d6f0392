// Sampler: HF's logits-processor order on one row of logits, in double precision, with a
// deterministic candidate order (probability, then id) so a seed fixes the tokens.
#include "llm/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "llm/error.h"

namespace llm {

void SamplingParams::validate(std::string_view prefix) const {
  LLM_CHECK(std::isfinite(temperature) && temperature >= 0.0f, prefix, "temp: ", temperature,
            " is not a temperature >= 0 (0: greedy)");
  LLM_CHECK(top_k >= 0, prefix, "top-k: ", top_k, " is negative (0: off)");
  LLM_CHECK(top_p > 0.0f && top_p <= 1.0f, prefix, "top-p: ", top_p, " is outside (0, 1] (1: off)");
  LLM_CHECK(min_p >= 0.0f && min_p <= 1.0f, prefix, "min-p: ", min_p, " is outside [0, 1] (0: off)");
  LLM_CHECK(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f, prefix, "repeat-penalty: ", repeat_penalty,
            " is not a positive number (1: off)");
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int32_t> context, float penalty) {
  if (penalty == 1.0f) return;
  // Each distinct id once, as HF's gather/scatter over input_ids does.
  std::unordered_set<int32_t> seen;
  for (const int32_t id : context) {
    if (id < 0 || static_cast<size_t>(id) >= logits.size() || !seen.insert(id).second) continue;
    float& l = logits[static_cast<size_t>(id)];
    l = l > 0.0f ? l / penalty : l * penalty;
  }
}

namespace {

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

void check_logits(std::span<const float> logits) {
  LLM_CHECK(!logits.empty(), "sampler: no logits");
  for (size_t i = 0; i < logits.size(); ++i) {
    LLM_CHECK(!std::isnan(logits[i]), "sampler: the logit of token ", i, " is NaN");
  }
}

}  // namespace

std::vector<TokenProb> sampling_distribution(std::span<const float> logits, const SamplingParams& p) {
  check_logits(logits);
  const int32_t best = argmax(logits);
  const float top = logits[static_cast<size_t>(best)];
  LLM_CHECK(std::isfinite(top), "sampler: the largest logit is ", top);
  if (p.temperature == 0.0f) return {{best, 1.0}};

  // Unnormalised probabilities relative to the most likely token: w = exp((l - max) / T) <= 1.
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  auto weight = [&](int32_t id) { return std::exp((double(logits[size_t(id)]) - double(top)) * inv_t); };
  auto before = [&](int32_t a, int32_t b) {
    const float la = logits[size_t(a)], lb = logits[size_t(b)];
    return la > lb || (la == lb && a < b);
  };

  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < ids.size()) {
    std::nth_element(ids.begin(), ids.begin() + p.top_k - 1, ids.end(), before);
    ids.resize(static_cast<size_t>(p.top_k));
  }
  // Top-p renormalises over what top-k kept, so its mass is taken before min-p filters.
  double total = 0.0;
  for (const int32_t id : ids) total += weight(id);
  // Min-p keeps p >= min_p * p_max, i.e. w >= min_p: a ratio no renormalisation changes, so it
  // may run before top-p (both keep a most-likely-first prefix) and shrink the sort.
  if (p.min_p > 0.0f) {
    std::erase_if(ids, [&](int32_t id) { return weight(id) < double(p.min_p); });
  }
  if (p.top_p < 1.0f) {
    // Keep a token while the mass of the tokens before it is below top_p. Sort a growing prefix:
    // with a peaked distribution a few dozen candidates settle it.
    const double target = double(p.top_p) * total;
    size_t k = std::min<size_t>(ids.size(), 64);
    for (;;) {
      std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), before);
      double mass = 0.0;
      size_t keep = 0;
      while (keep < k && mass < target) mass += weight(ids[keep++]);
      if (mass >= target || k == ids.size()) {
        ids.resize(keep);
        break;
      }
      k = std::min(ids.size(), k * 8);
    }
  } else {
    std::sort(ids.begin(), ids.end(), before);
  }
  std::vector<TokenProb> out;
  out.reserve(ids.size());
  double sum = 0.0;
  for (const int32_t id : ids) {
    out.push_back({id, weight(id)});
    sum += out.back().p;
  }
  for (auto& t : out) t.p /= sum;
  return out;
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { p_.validate("--"); }

void Sampler::set_params(const SamplingParams& p) {
  p.validate("--");
  if (p.seed != p_.seed) rng_.seed(p.seed);
  p_ = p;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> context) {
  std::span<const float> row = logits;
  if (p_.repeat_penalty != 1.0f) {
    work_.assign(logits.begin(), logits.end());
    apply_repetition_penalty(work_, context, p_.repeat_penalty);
    row = work_;
  }
  if (p_.temperature == 0.0f) {
    check_logits(row);
    return argmax(row);
  }
  const std::vector<TokenProb> dist = sampling_distribution(row, p_);
  // 53 random bits -> a double in [0, 1), independent of the library's distributions.
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  double mass = 0.0;
  for (const TokenProb& t : dist) {
    mass += t.p;
    if (u < mass) return t.id;
  }
  return dist.back().id;  // u within rounding of 1
}

}  // namespace llm
