// fp16 generation on a model with Qwen2-like massive activations (tests/large_activation_model.h:
// two residual channels beyond 1e5) through the emulated CudaBackend, decode steps replayed from
// the recorded graph: the logits stay finite and track the CPU's fp32 ones, because the residual
// stream is f32 under f16 (residual_dtype); with the residual forced back to f16
// (InferenceOptions::narrow_residual, the path before the fix) the forward fails naming layer 0's
// down_proj output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "large_activation_model.h"
#include "llm/inference.h"

namespace llm::test {
namespace {

TEST(CudaLargeActivations, Fp16GenerationTracksCpuFp32AndTheF16ResidualFails) {
  const ModelConfig cfg = large_activation_config();
  std::mt19937_64 g(std::random_device{}());
  const std::vector<float> w = large_activation_weights(cfg, g());
  const LargeActivationBatch b = large_activation_batch(g, cfg, 1, 12);
  CpuBackend cpu(2);
  cuda_emu::CudaBackend cuda(0);
  InferenceOptions io;
  io.context = 32;
  io.prefill_chunk = 8;  // two chunks: the second reads the first's cache
  InferenceModel f32(cfg, w, cpu, io);
  io.dtype = DType::F16;
  InferenceModel f16(cfg, w, cuda, io);
  std::vector<float> a = f32.forward(b.ids), c = f16.forward(b.ids);
  for (int step = 0; step < 6; ++step) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_TRUE(std::isfinite(c[i])) << "step " << step;
      worst = std::max(worst, std::abs(double(a[i]) - double(c[i])));
    }
    EXPECT_LT(worst, 2e-2) << "step " << step;  // as on the CPU (tests/model/large_activation_test.cpp)
    const std::vector<int32_t> tok{static_cast<int32_t>(std::max_element(a.begin(), a.end()) - a.begin())};
    a = f32.forward(tok);
    c = f16.forward(tok);
  }
  EXPECT_GT(f16.graph_replays(), 0) << f16.graph_error();

  io.narrow_residual = true;
  InferenceModel narrow(cfg, w, cuda, io);
  try {
    narrow.forward(b.ids);
    FAIL() << "the f16 residual must overflow";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("layer 0 (model.layers.0) mlp.down_proj out"), std::string::npos) << msg;
  }
  // The overflowing step replays the recorded graph (the first step runs op by op, the second
  // records) and is re-run op by op to say where it broke.
  InferenceModel stepper(cfg, w, cuda, io);
  expect_sink_step_overflow_named(stepper);
  EXPECT_GT(stepper.graph_replays(), 0) << stepper.graph_error();
}

}  // namespace
}  // namespace llm::test
