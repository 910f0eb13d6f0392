// Shared test helpers: the per-run seed, random tensors, float64 comparisons.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "llm/arena.h"
#include "llm/backend.h"
#include "llm/tokenizer.h"

namespace llm::test {

// Fresh for every process unless LLM_TEST_SEED is set.
inline uint64_t base_seed() {
  static const uint64_t seed = [] {
    if (const char* s = std::getenv("LLM_TEST_SEED")) return static_cast<uint64_t>(std::strtoull(s, nullptr, 10));
    return (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  }();
  return seed;
}

// A generator seeded from the run's seed and the current test's name.
inline std::mt19937_64 rng() {
  const auto* info = testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "";
  return std::mt19937_64(base_seed() ^ std::hash<std::string>{}(name));
}

inline std::vector<float> randn(std::mt19937_64& g, size_t n, float stddev = 1.0f) {
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

inline std::vector<float> uniform(std::mt19937_64& g, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Largest |a - b| / max(|b|, floor) over the elements, and the index where it occurs.
struct RelErr {
  double err = 0;
  size_t at = 0;
};
template <class A, class B>
RelErr max_rel_err(const A& a, const B& b, double floor = 1e-6) {
  RelErr r;
  for (size_t i = 0; i < b.size(); ++i) {
    const double e = std::abs(double(a[i]) - double(b[i])) / std::max(std::abs(double(b[i])), floor);
    if (e > r.err || std::isnan(e)) r = {std::isnan(e) ? INFINITY : e, i};
  }
  return r;
}

// max |a - b| / max |b|: the distance between two rows of logits relative to their scale (a
// per-element ratio would blow up on logits near zero).
template <class A, class B>
double max_diff_over_max(const A& a, const B& b) {
  double d = 0, m = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    d = std::max(d, std::abs(double(a[i]) - double(b[i])));
    m = std::max(m, std::abs(double(b[i])));
  }
  return d / m;
}

// A sentencepiece model trained on these documents, written to `model`.
inline void train_sentencepiece_on(const std::vector<std::string>& docs, const SentencePieceTrainOptions& o,
                                   const std::filesystem::path& model) {
  size_t next = 0;
  train_sentencepiece(
      [&](std::string& doc) {
        if (next >= docs.size()) return false;
        doc = docs[next++];
        return true;
      },
      o, model);
}

// ||a - b|| / ||b|| over the whole vector: the error measure for gradients, whose individual
// entries can be arbitrarily close to zero.
template <class A, class B>
double norm_rel_err(const A& a, const B& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

}  // namespace llm::test
