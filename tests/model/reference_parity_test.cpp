// Model parity with the independent PyTorch implementation in tests/reference (float64):
// logits, loss and every parameter gradient, on a GQA-7 / head_dim-64 config like Qwen2.5-0.5B
// and on one with odd sizes and an untied head.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "backend/cpu/cpu_backend.h"
#include "io/io_test_util.h"
#include "llm/hf_weights.h"
#include "llm/safetensors.h"
#include "model/model_test_util.h"
#include "test_util.h"

namespace llm::test {
namespace {

void run_case(const ModelConfig& cfg, int64_t B, int64_t T, bool ignore_some) {
  auto g = rng();
  TempDir dir;
  const ParamTable table(cfg);
  const auto w = random_weights(g, table);
  const HostBatch batch = random_batch(g, B, T, cfg.vocab_size, ignore_some);
  write_model_safetensors(dir / "model.safetensors", table, w, DType::F32);
  write_hf_config(dir / "config.json", cfg, DType::F32);
  SafetensorsWriter bw;
  bw.add("input_ids", DType::I32, {B, T}, batch.ids.data());
  bw.add("targets", DType::I32, {B, T}, batch.targets.data());
  bw.write(dir / "batch.safetensors");

  const std::string cmd =
      cat(LLM_PYTHON, " ", LLM_SOURCE_DIR, "/tests/reference/qwen2_ref.py --model ", dir.path(), " --batch ",
          dir / "batch.safetensors", " --out ", dir / "ref.safetensors", " --dtype float64 --threads 1");
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const SafetensorsReader ref(dir / "ref.safetensors");

  CpuBackend cpu(2);
  ModelOptions o;
  o.max_batch = B;
  o.max_seq = T;
  Qwen2Model model(cfg, cpu, o);
  model.set_weights(w);

  // logits: elementwise, relative to max(|ref|, rms(ref))
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

  std::vector<float> grads(static_cast<size_t>(table.flat_size()));
  cpu.download(model.grads(), grads.data());
  double worst = 0;
  std::string worst_name;
  for (const ParamInfo& p : table.params()) {
    const auto want = ref.read_f32("grad." + p.name);
    const std::vector<float> got(grads.begin() + p.offset, grads.begin() + p.offset + p.numel);
    const double e = norm_rel_err(got, want);
    EXPECT_LE(e, 1e-4) << p.name;
    if (e > worst) worst = e, worst_name = p.name;
  }
  std::printf("parity: loss %.6f, logits max rel err %.2e, |loss - ref| %.2e, worst gradient %s %.2e\n", want_loss,
              le.err, std::abs(loss.mean() - want_loss), worst_name.c_str(), worst);
}

TEST(ReferenceParity, Gqa7HeadDim64) { run_case(gqa7_config(), 2, 40, false); }
TEST(ReferenceParity, OddSizesUntied) { run_case(odd_config(), 3, 17, true); }

}  // namespace
}  // namespace llm::test
