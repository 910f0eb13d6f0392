// fp16 on a model with Qwen2-like massive activations (tests/large_activation_model.h: two
// residual channels beyond 1e5 for sink tokens) on the CPU backend: training and generation in
// f16 stay finite and track fp32 because the residual stream is f32 under f16 (residual_dtype);
// with the residual forced back to f16 (ModelOptions / InferenceOptions::narrow_residual, the
// path before the fix) the first loss and the logits are not finite, and the diagnosis names
// layer 0's down_proj output as where it broke.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "large_activation_model.h"
#include "llm/inference.h"

namespace llm::test {
namespace {

constexpr int64_t kB = 2, kT = 24;
constexpr int kSteps = 16;
constexpr float kLr = 0.05f, kLossScale = 1024.0f;
constexpr int kEarlySteps = 4;
constexpr double kEarlyTol = 1e-2, kRunTol = 1e-1;

ModelOptions options(DType dt, bool narrow = false) {
  ModelOptions o;
  o.compute_dtype = dt;
  o.max_batch = kB;
  o.max_seq = kT;
  o.narrow_residual = narrow;
  return o;
}

std::vector<LargeActivationBatch> batches(const ModelConfig& cfg, int n) {
  std::mt19937_64 g(std::random_device{}());
  std::vector<LargeActivationBatch> out;
  for (int i = 0; i < n; ++i) out.push_back(large_activation_batch(g, cfg, kB, kT));
  return out;
}

// Largest |value| per tensor name over a forward (fp32), residual-stream tensors apart.
TEST(LargeActivations, OnlyTheResidualStreamLeavesTheF16Range) {
  const ModelConfig cfg = large_activation_config();
  CpuBackend be(2);
  Qwen2Model m(cfg, be, options(DType::F32));
  m.set_weights(large_activation_weights(cfg, std::random_device{}()));
  const LargeActivationBatch b = batches(cfg, 1)[0];
  double residual = 0, rest = 0;
  std::string rest_name;
  m.probe_forward(b.view(), [&](int, const char* tensor, const Tensor& t) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    be.download(t, v.data());
    double top = 0;
    for (float x : v) top = std::max(top, double(std::abs(x)));
    const std::string name = tensor;
    const bool res = name == "embedding out" || name == "self_attn.o_proj out" || name == "mlp.down_proj out" ||
                     name == "residual after attention" || name == "layer output (residual)";
    if (res) {
      residual = std::max(residual, top);
    } else if (top > rest) {
      rest = top;
      rest_name = name;
    }
  });
  EXPECT_GT(residual, 1e5) << "the model must carry Qwen-like massive activations";
  EXPECT_LT(rest, 1e4) << rest_name << ": what stays in the compute dtype must be well inside f16's range";
}

TEST(LargeActivations, Fp16TrainingTracksFp32AndTheF16ResidualFails) {
  const ModelConfig cfg = large_activation_config();
  // Two batches in turn: the loss of each falls as they are learnt.
  const std::vector<LargeActivationBatch> two = batches(cfg, 2);
  std::vector<LargeActivationBatch> data;
  for (int s = 0; s < kSteps; ++s) data.push_back(two[size_t(s % 2)]);
  CpuBackend be(2);
  Qwen2Model m32(cfg, be, options(DType::F32)), m16(cfg, be, options(DType::F16));
  // The comparison means something only where fp32 training makes progress: about 3 draws in 100
  // of these weights (massive channels, clipped SGD) do not learn in 16 steps and drift instead,
  // and such a run amplifies rounding differences without bound. Fresh weights are drawn until
  // fp32 learns (the precondition, asserted below), then f16 is compared on them.
  std::vector<float> w;
  std::vector<double> l32;
  std::mt19937_64 g(std::random_device{}());
  for (int draw = 0; draw < 8; ++draw) {
    w = large_activation_weights(cfg, g());
    l32 = sgd_losses(be, m32, w, data, kLr, 1.0f);
    if (l32.size() == size_t(kSteps) && l32[kSteps - 2] + l32[kSteps - 1] < (l32[0] + l32[1]) * (1 - 1e-3)) break;
  }
  const std::vector<double> l16 = sgd_losses(be, m16, w, data, kLr, kLossScale);
  ASSERT_EQ(l16.size(), l32.size()) << "the f16 loss became non-finite";
  // f16 weights and activations (11-bit significands) against fp32: the first steps agree to
  // ~1e-5 relative; the runs then drift apart as training amplifies rounding differences, more in
  // some draws than others (600 draws: the first 4 steps at most 4e-3, the whole run median 4e-4,
  // 97th percentile 1.8e-2, worst 4.6e-2). So the first steps are held tighter than the whole
  // run; an f16 residual
  // that overflows gives a non-finite loss at step 0 (below), far outside either bound.
  double worst = 0, early = 0;
  for (int s = 0; s < kSteps; ++s) {
    ASSERT_TRUE(std::isfinite(l16[size_t(s)])) << "step " << s;
    const double rel = std::abs(l16[size_t(s)] - l32[size_t(s)]) / l32[size_t(s)];
    worst = std::max(worst, rel);
    if (s < kEarlySteps) early = std::max(early, rel);
  }
  std::printf(
      "f16 against fp32: worst relative loss difference %.2e over the first %d steps (tolerance %.0e), "
      "%.2e over all %d (tolerance %.0e)\n",
      early, kEarlySteps, kEarlyTol, worst, kSteps, kRunTol);
  EXPECT_LE(early, kEarlyTol);
  EXPECT_LE(worst, kRunTol);
  EXPECT_LT(l32[kSteps - 2] + l32[kSteps - 1], (l32[0] + l32[1]) * (1 - 1e-3))
      << "training must make progress for the comparison to mean something (no draw of 8 did)";

  // The path before the fix: the residual stream in f16 overflows in layer 0's down_proj.
  Qwen2Model narrow(cfg, be, options(DType::F16, true));
  narrow.set_weights(w);
  EXPECT_FALSE(std::isfinite(narrow.forward(data[0].view(), false).sum));
  const std::string why = narrow.diagnose_nonfinite(data[0].view());
  EXPECT_NE(why.find("layer 0 (model.layers.0) mlp.down_proj out"), std::string::npos) << why;
  EXPECT_NE(why.find("f16 holds |values| up to 65504"), std::string::npos) << why;
  EXPECT_NE(m16.diagnose_nonfinite(data[0].view()).find("every value"), std::string::npos);
}

// Greedy tokens of fp32 and f16 from the same prompt; the f16 logits within tol of fp32's.
TEST(LargeActivations, Fp16GenerationTracksFp32AndTheF16ResidualFails) {
  const ModelConfig cfg = large_activation_config();
  const std::vector<float> w = large_activation_weights(cfg, std::random_device{}());
  const LargeActivationBatch b = batches(cfg, 1)[0];
  const std::vector<int32_t> prompt(b.ids.begin(), b.ids.begin() + 12);
  CpuBackend be(2);
  InferenceOptions io;
  io.context = 32;
  io.prefill_chunk = 8;  // two chunks: the second reads the first's cache
  InferenceModel f32(cfg, w, be, io);
  io.dtype = DType::F16;
  InferenceModel f16(cfg, w, be, io);
  std::vector<float> a = f32.forward(prompt), c = f16.forward(prompt);
  for (int step = 0; step < 8; ++step) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_TRUE(std::isfinite(c[i])) << "step " << step;
      worst = std::max(worst, std::abs(double(a[i]) - double(c[i])));
    }
    EXPECT_LT(worst, 2e-2) << "step " << step;
    const auto next = static_cast<int32_t>(std::max_element(a.begin(), a.end()) - a.begin());
    const std::vector<int32_t> tok{next};
    a = f32.forward(tok);
    c = f16.forward(tok);
  }
  io.narrow_residual = true;
  InferenceModel narrow(cfg, w, be, io);
  try {
    narrow.forward(prompt);
    FAIL() << "the f16 residual must overflow";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("the logits are not finite (f16)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("layer 0 (model.layers.0) mlp.down_proj out"), std::string::npos) << msg;
  }
  InferenceModel stepper(cfg, w, be, io);
  expect_sink_step_overflow_named(stepper);
}

}  // namespace
}  // namespace llm::test
