// The KV-cache decode path against the training forward over the same tokens (a different code
// path: no cache, all positions at once), for GQA ratios 1, 2 and 7.
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "llm/inference.h"
#include "model/model_test_util.h"
#include "test_util.h"

namespace llm::test {
namespace {

ModelConfig config_with_heads(int64_t hq, int64_t hkv) {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_size = hq * 16;
  c.intermediate_size = 75;
  c.num_hidden_layers = 2;
  c.num_attention_heads = hq;
  c.num_key_value_heads = hkv;
  c.max_position_embeddings = 256;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = true;
  return c;
}

class KvCacheTest : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

TEST_P(KvCacheTest, DecodeMatchesFullForwardFor100Steps) {
  auto g = rng();
  const auto [hq, hkv] = GetParam();
  const ModelConfig cfg = config_with_heads(hq, hkv);
  const ParamTable table(cfg);
  const auto w = random_weights(g, table);
  const int64_t prompt = 5, steps = 100, T = prompt + steps;
  const HostBatch seq = random_batch(g, 1, T, cfg.vocab_size);

  CpuBackend cpu(2);
  ModelOptions mo;
  mo.training = false;
  mo.max_batch = 1;
  mo.max_seq = T;
  Qwen2Model full(cfg, cpu, mo);
  full.set_weights(w);
  const std::vector<float> want = full.logits(seq.view());  // [T, V]

  InferenceOptions io;
  io.context = 128;
  io.prefill_chunk = 4;  // the prompt spans two prefill chunks
  InferenceModel inf(cfg, w, cpu, io);
  const int64_t V = cfg.vocab_size;
  std::vector<float> got = inf.forward(std::span(seq.ids).first(size_t(prompt)));
  double worst = 0;
  for (int64_t t = prompt - 1; t < T; ++t) {
    if (t >= prompt) got = inf.forward(std::span(seq.ids).subspan(size_t(t), 1));
    const std::vector<float> ref(want.begin() + t * V, want.begin() + (t + 1) * V);
    double ss = 0;
    for (float v : ref) ss += double(v) * v;
    const RelErr e = max_rel_err(got, ref, std::sqrt(ss / double(V)));
    worst = std::max(worst, e.err);
    ASSERT_LE(e.err, 1e-5) << "position " << t << ", vocab entry " << e.at;
  }
  EXPECT_EQ(inf.position(), T);
  std::printf("GQA %lld/%lld: worst relative logit error over %lld decode steps: %.2e\n", (long long)hq, (long long)hkv,
              (long long)steps, worst);

  // forward_all over the whole sequence from an empty cache gives the same rows.
  inf.reset();
  const auto rows = inf.forward_all(seq.ids);
  ASSERT_EQ(rows.size(), want.size());
  double ss = 0;
  for (float v : want) ss += double(v) * v;
  EXPECT_LE(max_rel_err(rows, want, std::sqrt(ss / double(want.size()))).err, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(GqaRatios, KvCacheTest,
                         ::testing::Values(std::pair<int64_t, int64_t>{3, 3}, std::pair<int64_t, int64_t>{4, 2},
                                           std::pair<int64_t, int64_t>{7, 1}));

TEST(KvCache, RejectsOverflowingTheContext) {
  auto g = rng();
  const ModelConfig cfg = config_with_heads(2, 1);
  const auto w = random_weights(g, ParamTable(cfg));
  CpuBackend cpu(1);
  InferenceOptions io;
  io.context = 8;
  InferenceModel inf(cfg, w, cpu, io);
  std::vector<int32_t> ids(6, 1);
  inf.forward(ids);
  try {
    inf.forward(ids);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("6 cached + 6 new tokens exceed the context of 8 positions"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace llm::test
