// The training loop: exact resume, gradient accumulation, loss scaling, checkpoints as init_from.
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "llm/checkpoint.h"
#include "llm/hf_weights.h"
#include "llm/loader.h"
#include "llm/trainer.h"
#include "train/train_fixture.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

TrainResult run(const Config& c, bool resume = false, int64_t stop_at = -1) {
  std::ostringstream log;
  TrainOptions o;
  o.resume = resume;
  o.stop_at = stop_at;
  o.log = &log;
  return train(c, o);
}

class ExactResume : public TrainFixture, public ::testing::WithParamInterface<const char*> {};

TEST_P(ExactResume, StopAndResumeIsBitwiseIdenticalToOneRun) {
  const std::string prec = std::string("train.precision=") + GetParam();
  const Config once = config({prec}, "once");
  const Config split = config({prec}, "split");
  run(once);
  run(split, false, 4);  // steps 1..4, then a checkpoint
  ASSERT_TRUE(fs::exists(split.io.run_dir / "step_00000004"));
  run(split, true);  // resumes at 4, runs 5..8

  const auto a = losses(once.io.run_dir), b = losses(split.io.run_dir);
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "loss of step " << i + 1;
  const fs::path fa = once.io.run_dir / "step_00000008", fb = split.io.run_dir / "step_00000008";
  for (const char* t : {"master", "m", "v"}) {
    EXPECT_TRUE(tensor_bytes(fa / "optimizer.rank00000.safetensors", t) ==
                tensor_bytes(fb / "optimizer.rank00000.safetensors", t))
        << t << " differs";
  }
  EXPECT_TRUE(tensor_bytes(fa / "model.safetensors", "model.layers.1.mlp.down_proj.weight") ==
              tensor_bytes(fb / "model.safetensors", "model.layers.1.mlp.down_proj.weight"));
}

INSTANTIATE_TEST_SUITE_P(Precisions, ExactResume, ::testing::Values("fp32", "bf16"));

TEST_F(TrainFixture, GradientAccumulationEqualsTheLargerBatch) {
  // micro-batch 2 x accumulation 4 vs micro-batch 8: the same samples, the same normalisation.
  const Config acc =
      config({"train.micro_batch=2", "train.grad_accum=4", "train.steps=2", "train.eval_every=0"}, "acc");
  const Config big =
      config({"train.micro_batch=8", "train.grad_accum=1", "train.steps=2", "train.eval_every=0"}, "big");
  run(acc);
  run(big);
  const auto la = losses(acc.io.run_dir), lb = losses(big.io.run_dir);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-5 * std::abs(lb[i]));
  const SafetensorsReader ra(acc.io.run_dir / "step_00000002" / "optimizer.rank00000.safetensors");
  const SafetensorsReader rb(big.io.run_dir / "step_00000002" / "optimizer.rank00000.safetensors");
  const auto pa = ra.read_f32("master"), pb = rb.read_f32("master");
  const auto a0 = SafetensorsReader(acc.io.run_dir / "step_00000002" / "optimizer.rank00000.safetensors").read_f32("m");
  const auto b0 = SafetensorsReader(big.io.run_dir / "step_00000002" / "optimizer.rank00000.safetensors").read_f32("m");
  // The update is lr * m / sqrt(v): compare the moments that carry the gradient.
  EXPECT_LE(norm_rel_err(a0, b0), 1e-5);
  EXPECT_LE(norm_rel_err(pa, pb), 1e-6);
}

TEST_F(TrainFixture, Fp16OverflowSkipsTheStepBacksOffAndContinues) {
  // A scale of 2^40 overflows fp16 activations gradients at once: the first steps must be
  // skipped with the scale halving each time, then training proceeds with finite losses.
  const Config c = config({"train.precision=fp16", "train.loss_scale_init=1099511627776", "train.steps=30",
                           "train.eval_every=0", "train.max_skipped_steps=40"});
  const TrainResult r = run(c);
  EXPECT_GT(r.skipped_steps, 0);
  std::ifstream in(c.io.run_dir / "metrics.jsonl");
  std::string line;
  std::vector<nlohmann::json> steps;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss_scale")) steps.push_back(j);
  }
  ASSERT_EQ(steps.size(), 30u);
  EXPECT_FALSE(steps[0]["applied"].get<bool>());
  EXPECT_EQ(steps[1]["loss_scale"].get<double>(), steps[0]["loss_scale"].get<double>() / 2);
  EXPECT_TRUE(steps.back()["applied"].get<bool>());
  EXPECT_TRUE(std::isfinite(steps.back()["loss"].get<double>()));
  int applied = 0;
  for (const auto& s : steps) applied += s["applied"].get<bool>();
  EXPECT_EQ(applied, 30 - r.skipped_steps);
  EXPECT_LT(steps.back()["loss"].get<double>(), std::log(512.0));  // it learned something
}

TEST_F(TrainFixture, NonFiniteLossStopsWithADiagnosticAndKeepsTheLastCheckpoint) {
  const Config ok = config({"train.steps=4", "train.eval_every=0"}, "div");
  run(ok, false, 2);  // a good checkpoint at step 2
  // An absurd learning rate blows the fp32 weights up to inf/nan.
  const Config bad = config({"train.steps=40", "train.eval_every=0", "optim.lr=1e30", "optim.warmup_steps=0",
                             "optim.grad_clip=0", "train.max_skipped_steps=3"},
                            "div");
  try {
    run(bad, true);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("not finite for 3 steps in a row"), std::string::npos) << m;
    EXPECT_NE(m.find("step_00000002"), std::string::npos) << m;
  }
  EXPECT_EQ(latest_checkpoint(ok.io.run_dir)->filename(), "step_00000002");
}

TEST_F(TrainFixture, CheckpointLoadsBackThroughInitFrom) {
  const Config c = config({"train.steps=3", "train.eval_every=0"}, "src");
  run(c);
  const fs::path ck = c.io.run_dir / "step_00000003";
  // config.json carries HF's Qwen2 keys.
  std::ifstream in(ck / "config.json");
  const auto hf = nlohmann::json::parse(in);
  EXPECT_EQ(hf["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(hf["model_type"], "qwen2");
  for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                        "num_key_value_heads", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
                        "max_position_embeddings", "torch_dtype"}) {
    EXPECT_TRUE(hf.contains(k)) << k;
  }
  // The same loss on a fixed batch from the checkpoint's weights read back as init_from.
  const ModelConfig cfg = read_hf_config(ck / "config.json");
  const ParamTable table(cfg);
  const auto w = read_model_weights(ck, table, cfg);
  const auto master = SafetensorsReader(ck / "optimizer.rank00000.safetensors").read_f32("master");
  ASSERT_EQ(master.size(), w.size());
  for (const auto& p : table.params()) {
    for (int64_t i = 0; i < p.numel; ++i) ASSERT_EQ(w[size_t(p.offset + i)], master[size_t(p.offset + i)]) << p.name;
  }
  // A new run initialised from the checkpoint starts exactly where the old one ended.
  const Config cont = config({"train.steps=1", "train.eval_every=0", "model.init_from=" + ck.string(), "optim.lr=1e-12",
                              "optim.warmup_steps=0"},
                             "cont");
  const TrainResult r = run(cont);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  CpuBackend cpu(2);
  ModelOptions mo;
  mo.max_batch = 4;
  mo.max_seq = 32;
  Qwen2Model a(cfg, cpu, mo);
  a.set_weights(w);
  const auto stream = TokenStream::from_manifest(c.data.out_dir, "val", "");
  std::vector<int32_t> toks(4 * 33);
  stream.read(0, toks);
  std::vector<int32_t> ids, tg;
  for (int b = 0; b < 4; ++b) {
    ids.insert(ids.end(), toks.begin() + b * 33, toks.begin() + b * 33 + 32);
    tg.insert(tg.end(), toks.begin() + b * 33 + 1, toks.begin() + b * 33 + 33);
  }
  const double l1 = a.forward(TokenBatch{4, 32, ids, tg, {}}, false).mean();
  const auto w2 = read_model_weights(cont.io.run_dir / "step_00000001", table, cfg);
  Qwen2Model b2(cfg, cpu, mo);
  b2.set_weights(w2);
  EXPECT_NEAR(b2.forward(TokenBatch{4, 32, ids, tg, {}}, false).mean(), l1, 1e-5);
}

TEST_F(TrainFixture, KeepsOnlyTheNewestCheckpointsAndPointsLatestAtTheLast) {
  const Config c = config({"train.steps=5", "io.save_every=1", "io.keep_last=2", "train.eval_every=0"});
  run(c);
  EXPECT_FALSE(fs::exists(c.io.run_dir / "step_00000003"));
  EXPECT_TRUE(fs::exists(c.io.run_dir / "step_00000004"));
  EXPECT_TRUE(fs::exists(c.io.run_dir / "step_00000005"));
  EXPECT_EQ(fs::read_symlink(c.io.run_dir / "latest"), "step_00000005");
  EXPECT_TRUE(fs::exists(c.io.run_dir / "loss.svg"));
}

}  // namespace
}  // namespace llm::test
