// 20 optimizer steps of the real trainer (llm::train: data, fused loss, loss scaling, clipping,
// AdamW, metrics) on configs/tiny.json's model, once on CpuBackend and once on the emulated
// CudaBackend injected through TrainOptions::backend: every step's loss must agree within 1%,
// and fp16's loss-scaling decisions (applied / skipped, scale) must be the same.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "llm/trainer.h"
#include "train/train_fixture.h"

namespace llm::test {
namespace {

struct StepRecord {
  double loss = 0;
  bool applied = true;
  double loss_scale = 0;  // 0 unless f16
};

// Every step's record of a run, from its metrics.jsonl.
std::vector<StepRecord> step_records(const std::filesystem::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::vector<StepRecord> out;
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("loss")) continue;
    out.push_back({j["loss"].get<double>(), j["applied"].get<bool>(), j.value("loss_scale", 0.0)});
  }
  return out;
}

class CudaTrainSteps : public TrainFixture, public ::testing::WithParamInterface<std::string> {
 protected:
  // configs/tiny.json (model; optimizer as is: lr 3e-3, warmup 50, clipping, weight decay) with
  // the fixture's corpus and tokenizer (vocabulary 512) and a run short enough for the emulator:
  // 20 steps of 1 x 64 tokens (the emulated tensor-core attention dominates, and it works on
  // 64-row tiles: one 64-token row costs what one 32-token row does), one evaluation batch at the
  // end, no sample text. The tiny warmup matters: with warmup 5 the run hits a loss spike at step
  // 9 where even CPU bf16 and CPU fp32 differ by 7%, and no backend comparison means anything.
  Config tiny_config(const std::string& precision, const std::string& run_name) const {
    std::ifstream in(std::string(LLM_SOURCE_DIR) + "/configs/tiny.json");
    nlohmann::json j = nlohmann::json::parse(in);
    const nlohmann::json fixture = nlohmann::json::parse(config_json(run_name));
    j["tokenizer"] = fixture["tokenizer"];
    j["data"] = fixture["data"];
    j["model"]["vocab_size"] = 512;
    j["train"].update({{"threads", 2},
                       {"seq_len", 64},
                       {"micro_batch", 1},
                       {"steps", 20},
                       {"precision", precision},
                       {"eval_every", 0},
                       {"eval_batches", 1},
                       {"log_every", 100}});
    j["io"].update({{"run_dir", (dir / run_name).string()}, {"save_every", 0}, {"sample_prompt", ""}});
    return parse_config(j.dump(), "tiny+" + precision + ".json", dir.path());
  }

  TrainResult run(const Config& c, Backend* backend) {
    std::ostringstream log;
    TrainOptions o;
    o.log = &log;
    o.backend = backend;
    return train(c, o);
  }
};

TEST_P(CudaTrainSteps, TracksCpuLossCurve) {
  const std::string precision = GetParam();
  const Config on_cpu = tiny_config(precision, "cpu"), on_cuda = tiny_config(precision, "cuda");
  CpuBackend cpu(2);
  cuda_emu::CudaBackend cuda(0);
  // The CPU run prepares the tokenizer and shards; the CUDA run finds them up to date.
  const TrainResult r_cpu = run(on_cpu, &cpu);
  const TrainResult r_cuda = run(on_cuda, &cuda);
  ASSERT_EQ(r_cpu.steps_done, 20);
  ASSERT_EQ(r_cuda.steps_done, 20);
  EXPECT_EQ(r_cuda.skipped_steps, r_cpu.skipped_steps);

  const std::vector<StepRecord> want = step_records(on_cpu.io.run_dir), got = step_records(on_cuda.io.run_dir);
  ASSERT_EQ(want.size(), 20u);
  ASSERT_EQ(got.size(), want.size());
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::abs(got[i].loss - want[i].loss) / want[i].loss;
    EXPECT_LE(e, 0.01) << "step " << i + 1 << ": cuda loss " << got[i].loss << ", cpu " << want[i].loss;
    EXPECT_EQ(got[i].applied, want[i].applied) << "step " << i + 1 << ": the loss scaler decided differently";
    EXPECT_EQ(got[i].loss_scale, want[i].loss_scale) << "step " << i + 1;
    if (e >= worst) worst = e, worst_at = i + 1;
  }
  // The run learned something, so the comparison is of a moving curve, not of a flat one.
  EXPECT_LT(want.back().loss, want.front().loss - 0.5) << "the CPU run did not learn";
  ASSERT_TRUE(r_cpu.last_val_loss && r_cuda.last_val_loss);
  const double val_err = std::abs(*r_cuda.last_val_loss - *r_cpu.last_val_loss) / *r_cpu.last_val_loss;
  EXPECT_LE(val_err, 0.01) << "val loss: cuda " << *r_cuda.last_val_loss << ", cpu " << *r_cpu.last_val_loss;
  std::printf(
      "%s: loss %.4f -> %.4f; worst per-step loss deviation %.2e (step %zu), final val loss deviation %.2e; "
      "skipped steps %lld; cpu %.1f s, cuda (emulated) %.1f s\n",
      precision.c_str(), want.front().loss, want.back().loss, worst, worst_at, val_err,
      static_cast<long long>(r_cpu.skipped_steps), r_cpu.seconds, r_cuda.seconds);
}

INSTANTIATE_TEST_SUITE_P(Precisions, CudaTrainSteps, ::testing::Values("fp32", "bf16", "fp16"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace llm::test
