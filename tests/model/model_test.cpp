// Qwen2Model: parameter table, initialisation, recompute policies, accumulation, precision.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include <map>
#include "backend/cpu/cpu_backend.h"
#include "llm/memory_plan.h"
#include "model/model_test_util.h"
#include "test_util.h"

namespace llm::test {
namespace {

ModelConfig read_config_model_section(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  const auto j = nlohmann::json::parse(in);
  ConfigReader r(j.at("model"), "model");
  r.ignore({"init_from"});
  return parse_model_config(r);
}

TEST(ParamTable, Qwen05bHasTheHfParameterCount) {
  const ModelConfig c = read_config_model_section(std::string(LLM_SOURCE_DIR) + "/configs/qwen05b.json");
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_EQ(c.hidden_size, 896);
  EXPECT_EQ(c.num_hidden_layers, 24);
  EXPECT_EQ(c.num_attention_heads, 14);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.intermediate_size, 4864);
  EXPECT_TRUE(c.tie_word_embeddings);
  const ParamTable t(c);
  // Qwen2.5-0.5B as published: 494,032,768 parameters with the output layer tied.
  EXPECT_EQ(t.count(), 494032768);
  EXPECT_EQ(t.params().size(), size_t(1 + 24 * 12 + 1));
  EXPECT_EQ(t.at("model.layers.23.mlp.down_proj.weight").shape, (std::vector<int64_t>{896, 4864}));
  EXPECT_EQ(t.at("model.layers.0.self_attn.k_proj.weight").shape, (std::vector<int64_t>{128, 896}));
  EXPECT_EQ(t.find("lm_head.weight"), nullptr);
}

TEST(ParamTable, FusedBlocksAreContiguousAndGroupsAligned) {
  const ModelConfig c = odd_config();
  const ParamTable t(c);
  const auto& q = t.at("model.layers.1.self_attn.q_proj.weight");
  const auto& k = t.at("model.layers.1.self_attn.k_proj.weight");
  const auto& v = t.at("model.layers.1.self_attn.v_proj.weight");
  EXPECT_EQ(k.offset, q.offset + q.numel);
  EXPECT_EQ(v.offset, k.offset + k.numel);
  const auto& gate = t.at("model.layers.2.mlp.gate_proj.weight");
  EXPECT_EQ(t.at("model.layers.2.mlp.up_proj.weight").offset, gate.offset + gate.numel);
  EXPECT_EQ(q.offset % 64, 0);
  EXPECT_EQ(t.at("model.layers.1.self_attn.q_proj.bias").offset % 64, 0);
  ASSERT_NE(t.find("lm_head.weight"), nullptr);  // untied
  int64_t sum = 0;
  for (const auto& p : t.params()) sum += p.numel;
  EXPECT_EQ(sum, t.count());
}

TEST(Init, IsQwenStyleAndRangeIndependent) {
  const ModelConfig c = gqa7_config();
  const ParamTable t(c);
  std::vector<float> full(size_t(t.flat_size()));
  init_parameter_values(c, t, 1234, 0, t.flat_size(), full.data());
  // Any sub-range yields the same values (ZeRO shards initialise only their range).
  std::vector<float> part(1000);
  init_parameter_values(c, t, 1234, 51234, 1000, part.data());
  EXPECT_EQ(0, std::memcmp(part.data(), full.data() + 51234, 4000));
  const auto& emb = t.at("model.embed_tokens.weight");
  double s = 0, ss = 0;
  for (int64_t i = 0; i < emb.numel; ++i) {
    s += full[size_t(emb.offset + i)];
    ss += double(full[size_t(emb.offset + i)]) * full[size_t(emb.offset + i)];
  }
  const double mean = s / double(emb.numel), sd = std::sqrt(ss / double(emb.numel) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 4 * 0.02 / std::sqrt(double(emb.numel)));
  EXPECT_NEAR(sd, 0.02, 0.02 * 0.02);
  EXPECT_EQ(full[size_t(t.at("model.norm.weight").offset)], 1.0f);
  EXPECT_EQ(full[size_t(t.at("model.layers.0.self_attn.q_proj.bias").offset)], 0.0f);
  std::vector<float> other(1000);
  init_parameter_values(c, t, 1235, 51234, 1000, other.data());
  EXPECT_NE(0, std::memcmp(part.data(), other.data(), 4000)) << "the seed must matter";
}

std::vector<float> grads_under(Recompute rc, const ModelConfig& c, const std::vector<float>& w, const HostBatch& b,
                               LossSum* loss = nullptr) {
  CpuBackend cpu(2);
  ModelOptions o;
  o.recompute = rc;
  o.max_batch = b.B;
  o.max_seq = b.T;
  Qwen2Model m(c, cpu, o);
  m.set_weights(w);
  m.zero_grads();
  const LossSum l = m.forward(b.view(), true, 1.0f / 64);
  m.backward();
  if (loss) *loss = l;
  std::vector<float> g(size_t(m.params().flat_size()));
  cpu.download(m.grads(), g.data());
  return g;
}

TEST(Recompute, GradientsAreBitwiseIdenticalAcrossPolicies) {
  auto g = rng();
  for (const ModelConfig& c : {gqa7_config(), odd_config()}) {
    const ParamTable t(c);
    const auto w = random_weights(g, t);
    const auto b = random_batch(g, 2, 19, c.vocab_size, true);
    LossSum l0, l1, l2;
    const auto none = grads_under(Recompute::None, c, w, b, &l0);
    const auto sel = grads_under(Recompute::Selective, c, w, b, &l1);
    const auto full = grads_under(Recompute::Full, c, w, b, &l2);
    EXPECT_EQ(l0.sum, l1.sum);
    EXPECT_EQ(l0.sum, l2.sum);
    EXPECT_EQ(0, std::memcmp(none.data(), full.data(), none.size() * 4)) << "full differs from none";
    EXPECT_EQ(0, std::memcmp(none.data(), sel.data(), none.size() * 4)) << "selective differs from none";
    double norm = 0;
    for (float x : none) norm += double(x) * x;
    EXPECT_GT(norm, 0.0);
  }
}

TEST(Model, MicroBatchGradientsAccumulate) {
  auto g = rng();
  const ModelConfig c = odd_config();
  const ParamTable t(c);
  const auto w = random_weights(g, t);
  const auto b1 = random_batch(g, 1, 11, c.vocab_size), b2 = random_batch(g, 1, 11, c.vocab_size);
  const auto g1 = grads_under(Recompute::None, c, w, b1), g2 = grads_under(Recompute::None, c, w, b2);
  CpuBackend cpu(2);
  ModelOptions o;
  o.max_batch = 1;
  o.max_seq = 11;
  Qwen2Model m(c, cpu, o);
  m.set_weights(w);
  m.zero_grads();
  for (const auto* b : {&b1, &b2}) {
    m.forward(b->view(), true, 1.0f / 64);
    m.backward();
  }
  std::vector<float> both(size_t(t.flat_size()));
  cpu.download(m.grads(), both.data());
  std::vector<double> want(both.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = double(g1[i]) + double(g2[i]);
  EXPECT_LE(norm_rel_err(both, want), 1e-6);
}

TEST(Model, HalfPrecisionStorageStaysCloseToFp32) {
  auto g = rng();
  ModelConfig c = gqa7_config();
  const ParamTable t(c);
  std::vector<float> w(size_t(t.flat_size()));
  init_parameter_values(c, t, g(), 0, t.flat_size(), w.data());
  const auto b = random_batch(g, 2, 32, c.vocab_size);
  double loss[3];
  std::vector<float> grads[3];
  const DType dts[3] = {DType::F32, DType::BF16, DType::F16};
  for (int i = 0; i < 3; ++i) {
    CpuBackend cpu(2);
    ModelOptions o;
    o.compute_dtype = dts[i];
    o.max_batch = 2;
    o.max_seq = 32;
    Qwen2Model m(c, cpu, o);
    m.set_weights(w);
    m.zero_grads();
    loss[i] = m.forward(b.view(), true, 1.0f / 64).mean();
    m.backward();
    grads[i].resize(size_t(t.flat_size()));
    cpu.download(m.grads(), grads[i].data());
  }
  EXPECT_NEAR(loss[1], loss[0], 2e-2) << "bf16";
  EXPECT_NEAR(loss[2], loss[0], 2e-2) << "f16";
  EXPECT_LE(norm_rel_err(grads[1], grads[0]), 5e-2) << "bf16 gradients";
  EXPECT_LE(norm_rel_err(grads[2], grads[0]), 1e-2) << "f16 gradients";
}

TEST(Model, RejectsTokenOutsideVocabulary) {
  CpuBackend cpu(1);
  const ModelConfig c = odd_config();
  ModelOptions o;
  o.max_batch = 1;
  o.max_seq = 4;
  Qwen2Model m(c, cpu, o);
  HostBatch b{1, 4, {1, 2, 131, 3}, {1, 2, 3, 4}};
  try {
    m.forward(b.view(), false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 131 at position 2 is outside the vocabulary [0, 131)"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace llm::test

namespace llm::test {
namespace {

TEST(MemoryPlan, AgreesWithTheModelsArenas) {
  for (Recompute rc : {Recompute::None, Recompute::Selective, Recompute::Full}) {
    for (DType dt : {DType::F32, DType::BF16}) {
      const ModelConfig c = gqa7_config();
      CpuBackend cpu(1);
      ModelOptions o;
      o.compute_dtype = dt;
      o.recompute = rc;
      o.max_batch = 3;
      o.max_seq = 40;
      const MemoryPlan plan = plan_training_memory(c, o, PlanOptions{});
      Qwen2Model m(c, cpu, o);
      std::map<std::string, size_t> arena;
      for (const Arena* a : m.arenas()) arena[a->name()] = a->live_bytes();
      std::map<std::string, size_t> line;
      for (const auto& l : plan.lines) line[l.what] = l.bytes;
      EXPECT_EQ(line["parameters"], arena["weights"]);
      EXPECT_EQ(line["gradients"], arena["grads"]);
      EXPECT_EQ(line["activations"], arena["activations"]) << recompute_name(rc);
      EXPECT_EQ(line["backward and scratch buffers"], arena["scratch"]) << recompute_name(rc);
    }
  }
  // Full recompute keeps far less than none once there are enough layers.
  ModelConfig deep = gqa7_config();
  deep.num_hidden_layers = 12;
  ModelOptions o;
  o.max_batch = 2;
  o.max_seq = 64;
  auto acts = [&](Recompute rc) {
    o.recompute = rc;
    for (const auto& l : plan_training_memory(deep, o, PlanOptions{}).lines) {
      if (l.what == "activations") return l.bytes;
    }
    return size_t(0);
  };
  EXPECT_LT(acts(Recompute::Full) * 3, acts(Recompute::None));
  EXPECT_LT(acts(Recompute::Selective), acts(Recompute::None));
}

}  // namespace
}  // namespace llm::test
