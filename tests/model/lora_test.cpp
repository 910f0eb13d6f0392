// LoRA: forward and every adapter gradient against the independent PyTorch reference
// (tests/reference/qwen2_ref.py --lora, which reads our PEFT files with its own safetensors
// reader and applies them as PEFT's LoraLayer does); the merge against the unmerged adapters;
// llmgen's load path (InferenceModel with --lora); recompute policies; bad adapters and configs.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "backend/cpu/cpu_backend.h"
#include "io/io_test_util.h"
#include "llm/error.h"
#include "llm/hf_weights.h"
#include "llm/inference.h"
#include "llm/lora.h"
#include "llm/safetensors.h"
#include "model/model_test_util.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

LoraConfig all_targets(int64_t rank, double alpha) {
  LoraConfig c;
  c.rank = rank;
  c.alpha = alpha;
  for (auto m : kLoraModules) c.target_modules.emplace_back(m);
  return c;
}

// Random A and B (B non-zero, unlike the initialisation, so that every gradient is exercised;
// small, as after some training, so the adapted model stays at the base model's scale).
std::vector<float> random_adapters(std::mt19937_64& g, const LoraTable& t) {
  std::vector<float> flat(static_cast<size_t>(t.flat_size()), 0.0f);
  std::normal_distribution<float> n(0.0f, 1.0f);
  const int64_t r = t.config().rank;
  for (const LoraAdapterInfo& a : t.adapters()) {
    for (int64_t i = 0; i < r * a.in; ++i) flat[size_t(a.a_offset + i)] = n(g) / std::sqrt(float(a.in));
    for (int64_t i = 0; i < a.out * r; ++i) flat[size_t(a.b_offset + i)] = 0.1f * n(g) / std::sqrt(float(r));
  }
  return flat;
}

// A model, adapters and a batch, all random.
struct Case {
  ModelConfig cfg;
  LoraConfig lc;
  ParamTable table;
  LoraTable lt;
  std::vector<float> w, ad;
  HostBatch batch;
  Case(std::mt19937_64& g, const ModelConfig& c, const LoraConfig& l, int64_t B, int64_t T)
      : cfg(c),
        lc(l),
        table(c),
        lt(c, l),
        w(random_weights(g, table)),
        ad(random_adapters(g, lt)),
        batch(random_batch(g, B, T, c.vocab_size)) {}
  ModelOptions options(bool training) const {
    ModelOptions o;
    o.max_batch = batch.B;
    o.max_seq = batch.T;
    o.training = training;
    o.lora = lc;
    return o;
  }
};

void write_model(const fs::path& dir, const ModelConfig& cfg, const ParamTable& table, const std::vector<float>& w) {
  write_model_safetensors(dir / "model.safetensors", table, w, DType::F32);
  write_hf_config(dir / "config.json", cfg, DType::F32);
}

void run_parity(const ModelConfig& cfg, const LoraConfig& lc, int64_t B, int64_t T) {
  auto g = rng();
  TempDir dir;
  const ParamTable table(cfg);
  const LoraTable lt(cfg, lc);
  const auto w = random_weights(g, table);
  const auto ad = random_adapters(g, lt);
  const HostBatch batch = random_batch(g, B, T, cfg.vocab_size, true);
  write_model(dir.path(), cfg, table, w);
  write_peft_adapter(dir / "adapter", lt, ad, "test-base");
  SafetensorsWriter bw;
  bw.add("input_ids", DType::I32, {B, T}, batch.ids.data());
  bw.add("targets", DType::I32, {B, T}, batch.targets.data());
  bw.write(dir / "batch.safetensors");
  const std::string cmd = cat(LLM_PYTHON, " ", LLM_SOURCE_DIR, "/tests/reference/qwen2_ref.py --model ", dir.path(),
                              " --batch ", dir / "batch.safetensors", " --lora ", dir / "adapter", " --out ",
                              dir / "ref.safetensors", " --dtype float64 --threads 1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const SafetensorsReader ref(dir / "ref.safetensors");

  CpuBackend cpu(2);
  ModelOptions o;
  o.max_batch = B;
  o.max_seq = T;
  o.lora = lc;
  Qwen2Model model(cfg, cpu, o);
  model.set_weights(w);
  model.set_lora_weights(ad);

  const auto logits = model.logits(batch.view());
  const auto want_logits = ref.read_f32("logits");
  ASSERT_EQ(logits.size(), want_logits.size());
  double ss = 0;
  for (float v : want_logits) ss += double(v) * v;
  const RelErr le = max_rel_err(logits, want_logits, std::sqrt(ss / double(want_logits.size())));
  EXPECT_LE(le.err, 1e-5) << "logits, worst at " << le.at;

  model.zero_grads();
  int64_t count = 0;
  for (int32_t t : batch.targets) count += t >= 0;
  const LossSum loss = model.forward(batch.view(), true, 1.0f / float(count));
  model.backward();
  const double want_loss = std::stod(ref.metadata().at("loss"));
  EXPECT_NEAR(loss.mean(), want_loss, 1e-6);

  std::vector<float> grads(static_cast<size_t>(lt.flat_size()));
  cpu.download(model.lora_grads(), grads.data());
  double worst = 0;
  std::string worst_name;
  const int64_t r = lc.rank;
  for (const LoraAdapterInfo& a : lt.adapters()) {
    for (auto [suffix, off, n] :
         {std::tuple{".lora_A.weight", a.a_offset, r * a.in}, {".lora_B.weight", a.b_offset, a.out * r}}) {
      const auto want = ref.read_f32("grad." + a.peft_prefix + suffix);
      const std::vector<float> got(grads.begin() + off, grads.begin() + off + n);
      const double e = norm_rel_err(got, want);
      EXPECT_LE(e, 1e-4) << a.peft_prefix << suffix;
      if (e > worst) worst = e, worst_name = a.peft_prefix + suffix;
    }
  }
  // The base is frozen: the forward and backward left its weights bitwise as they were.
  std::vector<float> after(w.size());
  cpu.download(model.weights(), after.data());
  EXPECT_TRUE(after == w);
  std::printf("lora parity: loss %.6f, logits max rel err %.2e, |loss - ref| %.2e, worst adapter gradient %s %.2e\n",
              want_loss, le.err, std::abs(loss.mean() - want_loss), worst_name.c_str(), worst);
}

TEST(LoraParity, Gqa7AllTargets) { run_parity(gqa7_config(), all_targets(4, 16), 2, 24); }

TEST(LoraParity, OddSizesSomeTargets) {
  LoraConfig c = all_targets(3, 5);  // scale 5/3
  c.target_modules = {"k_proj", "up_proj", "o_proj"};
  run_parity(odd_config(), c, 3, 17);
}

// The merged weights give the logits of base + adapter, in our training model and through
// llmgen's load path (InferenceModel with InferenceOptions::lora, as `llmgen --lora` runs it).
TEST(Lora, MergedEqualsBasePlusAdapter) {
  auto g = rng();
  const Case k(g, odd_config(), all_targets(4, 8), 1, 12);
  const ModelConfig& cfg = k.cfg;
  const ParamTable& table = k.table;
  const LoraTable& lt = k.lt;
  const auto& w = k.w;
  const auto& ad = k.ad;
  const HostBatch& batch = k.batch;
  CpuBackend cpu(2);
  ModelOptions o = k.options(false);
  Qwen2Model adapted(cfg, cpu, o);
  adapted.set_weights(w);
  adapted.set_lora_weights(ad);
  const auto want = adapted.logits(batch.view());

  auto merged_w = w;
  merge_lora(table, lt, ad, merged_w);
  o.lora = {};
  Qwen2Model merged(cfg, cpu, o);
  merged.set_weights(merged_w);
  const RelErr e = max_rel_err(merged.logits(batch.view()), want, 1.0);
  EXPECT_LE(e.err, 1e-5) << "at " << e.at;
  EXPECT_GT(max_rel_err(w, merged_w, 1.0).err, 1e-3);  // the adapter changed the weights

  TempDir dir;
  write_model(dir.path(), cfg, table, w);
  write_peft_adapter(dir / "adapter", lt, ad, "test-base");
  InferenceOptions io;
  io.context = 12;
  io.lora = dir / "adapter";
  const auto inf = InferenceModel::load(dir.path(), cpu, io);
  const auto all = inf->forward_all(batch.ids);
  const RelErr ie = max_rel_err(all, want, 1.0);
  EXPECT_LE(ie.err, 1e-5) << "at " << ie.at;
}

TEST(Lora, GradientsAreBitwiseTheSameUnderEveryRecomputePolicy) {
  auto g = rng();
  const Case k(g, odd_config(), all_targets(2, 4), 2, 9);
  const ModelConfig& cfg = k.cfg;
  const auto& w = k.w;
  const auto& ad = k.ad;
  CpuBackend cpu(2);
  std::vector<std::vector<float>> got;
  for (Recompute rc : {Recompute::None, Recompute::Selective, Recompute::Full}) {
    ModelOptions o = k.options(true);
    o.recompute = rc;
    Qwen2Model m(cfg, cpu, o);
    m.set_weights(w);
    m.set_lora_weights(ad);
    m.zero_grads();
    m.forward(k.batch.view(), true, 0.1f);
    m.backward();
    got.emplace_back(size_t(k.lt.flat_size()));
    cpu.download(m.lora_grads(), got.back().data());
  }
  EXPECT_TRUE(got[0] == got[1]);
  EXPECT_TRUE(got[0] == got[2]);
}

// With dropout the adapters' gradients are those of the loss under the step's masks: a central
// difference along a random direction, with the same dropout seed, agrees with the gradient.
TEST(Lora, DropoutGradientsMatchFiniteDifferences) {
  auto g = rng();
  LoraConfig lc = all_targets(3, 6);
  lc.dropout = 0.3;
  const Case k(g, odd_config(), lc, 2, 9);
  const ModelConfig& cfg = k.cfg;
  const auto& w = k.w;
  const auto& ad = k.ad;
  const HostBatch& batch = k.batch;
  CpuBackend cpu(2);
  const ModelOptions o = k.options(true);
  Qwen2Model m(cfg, cpu, o);
  m.set_weights(w);
  m.set_dropout_seed(12345);
  auto loss_at = [&](const std::vector<float>& a) {
    m.set_lora_weights(a);
    m.zero_grads();
    return m.forward(batch.view(), true, 1.0f).sum;
  };
  loss_at(ad);
  m.backward();
  std::vector<float> grad(ad.size());
  cpu.download(m.lora_grads(), grad.data());
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> dir(ad.size()), plus(ad), minus(ad);
  double gd = 0;
  const float eps = 1e-3f;
  for (size_t i = 0; i < ad.size(); ++i) {
    dir[i] = n(g);
    gd += double(grad[i]) * dir[i];
    plus[i] += eps * dir[i];
    minus[i] -= eps * dir[i];
  }
  const double fd = (loss_at(plus) - loss_at(minus)) / (2.0 * eps);
  std::printf("dropout gradient check: finite difference %.6f, gradient %.6f\n", fd, gd);
  // fp32 losses: the difference carries ~0.05 of rounding and curvature (measured without dropout too).
  EXPECT_NEAR(fd, gd, 2e-2 * std::abs(gd) + 0.05) << "finite difference " << fd << ", gradient " << gd;
  // And the dropout is real: another seed, another loss; none in a forward without gradients.
  m.set_dropout_seed(12345);
  const double l1 = loss_at(ad);
  m.set_dropout_seed(999);
  EXPECT_NE(loss_at(ad), l1);
  const double eval1 = m.forward(batch.view(), false).sum;
  m.set_dropout_seed(12345);
  EXPECT_EQ(m.forward(batch.view(), false).sum, eval1);
}

TEST(Lora, InitialisationIsPeftsAndStartsAtTheBase) {
  const ModelConfig cfg = odd_config();
  const LoraTable lt(cfg, all_targets(4, 8));
  const auto v = init_lora_values(lt, 7);
  for (const LoraAdapterInfo& a : lt.adapters()) {
    double lo = 1, hi = -1;
    for (int64_t i = 0; i < 4 * a.in; ++i)
      lo = std::min<double>(lo, v[size_t(a.a_offset + i)]), hi = std::max<double>(hi, v[size_t(a.a_offset + i)]);
    const double bound = 1.0 / std::sqrt(double(a.in));
    EXPECT_LE(hi, bound);
    EXPECT_GE(lo, -bound);
    EXPECT_GT(hi - lo, bound);  // spread over the range, not constant
    for (int64_t i = 0; i < a.out * 4; ++i) ASSERT_EQ(v[size_t(a.b_offset + i)], 0.0f);
  }
  EXPECT_TRUE(v == init_lora_values(lt, 7));
  EXPECT_FALSE(v == init_lora_values(lt, 8));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Lora, UnknownTargetIsAClearError) {
  LoraConfig c = all_targets(4, 8);
  c.target_modules = {"q_proj", "qkv_proj"};
  const std::string e = error_of([&] { validate_lora_config(c, "train.lora"); });
  EXPECT_NE(e.find("train.lora.target_modules[1]"), std::string::npos) << e;
  EXPECT_NE(e.find("\"qkv_proj\""), std::string::npos) << e;
  EXPECT_NE(e.find("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"), std::string::npos) << e;
  c.target_modules = {"v_proj", "v_proj"};
  EXPECT_NE(error_of([&] { validate_lora_config(c, "train.lora"); }).find("listed twice"), std::string::npos);
  c = all_targets(0, 8);
  EXPECT_NE(error_of([&] { validate_lora_config(c, "train.lora"); }).find("train.lora.rank"), std::string::npos);
}

TEST(Lora, PeftFilesHavePeftsNamesShapesAndKeys) {
  const ModelConfig cfg = odd_config();
  LoraConfig lc = all_targets(4, 8);
  lc.dropout = 0.05;
  const LoraTable lt(cfg, lc);
  auto g = rng();
  const auto ad = random_adapters(g, lt);
  TempDir dir;
  write_peft_adapter(dir.path(), lt, ad, "Qwen/Qwen2.5-0.5B-Instruct");
  const SafetensorsReader r(dir / "adapter_model.safetensors");
  EXPECT_EQ(r.tensors().size(), 2 * 7 * size_t(cfg.num_hidden_layers));
  const auto& qa = r.at("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight");
  EXPECT_EQ(qa.shape, (std::vector<int64_t>{4, cfg.hidden_size}));
  const auto& db = r.at("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight");
  EXPECT_EQ(db.shape, (std::vector<int64_t>{cfg.hidden_size, 4}));
  EXPECT_EQ(r.at("base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight").shape,
            (std::vector<int64_t>{cfg.intermediate_size, 4}));
  std::ifstream in(dir / "adapter_config.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["r"], 4);
  EXPECT_EQ(j["lora_alpha"], 8.0);
  EXPECT_EQ(j["lora_dropout"], 0.05);
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["base_model_name_or_path"], "Qwen/Qwen2.5-0.5B-Instruct");
  EXPECT_EQ(j["target_modules"].size(), 7u);

  const PeftAdapter back = read_peft_adapter(dir.path(), cfg);
  EXPECT_TRUE(back.flat == ad);
  EXPECT_EQ(back.config.rank, 4);
  EXPECT_EQ(back.config.alpha, 8.0);
}

TEST(Lora, BadAdapterDirectoriesAreNamed) {
  const ModelConfig cfg = odd_config();
  const LoraTable lt(cfg, all_targets(2, 4));
  auto g = rng();
  const auto ad = random_adapters(g, lt);
  TempDir dir;
  write_peft_adapter(dir.path(), lt, ad, "");
  auto rewrite = [&](const std::function<void(nlohmann::json&)>& f) {
    std::ifstream in(dir / "adapter_config.json");
    auto j = nlohmann::json::parse(in);
    f(j);
    std::ofstream(dir / "adapter_config.json") << j.dump();
  };
  rewrite([](nlohmann::json& j) { j["use_dora"] = true; });
  EXPECT_NE(error_of([&] { read_peft_adapter(dir.path(), cfg); }).find("use_dora"), std::string::npos);
  rewrite([](nlohmann::json& j) {
    j["use_dora"] = false;
    j["target_modules"] = {"q_proj", "lm_head"};
  });
  const std::string e = error_of([&] { read_peft_adapter(dir.path(), cfg); });
  EXPECT_NE(e.find("adapter_config.json"), std::string::npos) << e;
  EXPECT_NE(e.find("\"lm_head\""), std::string::npos) << e;
  rewrite([](nlohmann::json& j) {
    j["target_modules"] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"};
  });
  const std::string extra = error_of([&] { read_peft_adapter(dir.path(), cfg); });
  EXPECT_NE(extra.find("down_proj.lora_A.weight is not an adapter"), std::string::npos) << extra;
  // A model with fewer layers than the adapter: the extra layer's tensors are named.
  ModelConfig small = cfg;
  small.num_hidden_layers = 2;
  rewrite([](nlohmann::json& j) {
    j["target_modules"] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  });
  EXPECT_NE(error_of([&] { read_peft_adapter(dir.path(), small); }).find("layers.2."), std::string::npos);
  // A model of another width: the shape is named.
  ModelConfig wide = cfg;
  wide.hidden_size = 60;
  wide.num_attention_heads = 6;
  wide.num_key_value_heads = 6;
  EXPECT_NE(error_of([&] { read_peft_adapter(dir.path(), wide); }).find("lora_A.weight"), std::string::npos);
}

}  // namespace
}  // namespace llm::test
