// forward_batch through the emulated CudaBackend against the CPU: a batch that mixes prefill
// chunks and one-token decode rows (the server's continuous batching) over several KV-cache
// slots, each at its own position, gives the CPU's logits. The one-token rows take
// decode_attention, which reads each sequence's position from device memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "gen/gen_test_util.h"
#include "test_util.h"

namespace llm::test {
namespace {

TEST(CudaBatchForward, MixedPrefillAndDecodeRowsMatchTheCpu) {
  auto g = rng();
  const ModelConfig cfg = small_gen_config();
  const std::vector<float> w = peaked_weights(g, cfg);
  InferenceOptions io;
  io.context = 48;
  io.prefill_chunk = 16;
  io.slots = 3;
  CpuBackend cpu(1);
  cuda_emu::CudaBackend cuda(0);
  InferenceModel on_cpu(cfg, w, cpu, io), on_cuda(cfg, w, cuda, io);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(cfg.vocab_size - 1));
  auto tokens = [&](size_t n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = tok(g);
    return t;
  };
  // Steps: slot 0 prefills 5; slot 0 decodes while slot 1 prefills 7; all three at once (slot 2
  // prefills 3 beside two decode rows); then two steps of three decode rows.
  const std::vector<std::vector<std::pair<int64_t, std::vector<int32_t>>>> steps = {
      {{0, tokens(5)}},
      {{0, tokens(1)}, {1, tokens(7)}},
      {{0, tokens(1)}, {1, tokens(1)}, {2, tokens(3)}},
      {{2, tokens(1)}, {0, tokens(1)}, {1, tokens(1)}},
      {{1, tokens(1)}, {2, tokens(1)}, {0, tokens(1)}}};
  for (size_t s = 0; s < steps.size(); ++s) {
    std::vector<SeqTokens> batch;
    for (const auto& [slot, t] : steps[s]) batch.push_back(SeqTokens{slot, t});
    const std::vector<float> a = on_cuda.forward_batch(batch), b = on_cpu.forward_batch(batch);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_LT(max_diff_over_max(a, b), 1e-5) << "step " << s;
  }
  EXPECT_EQ(on_cuda.position(0), 5 + 4);
  EXPECT_EQ(on_cuda.position(1), 7 + 3);
  EXPECT_EQ(on_cuda.position(2), 3 + 2);
}

}  // namespace
}  // namespace llm::test
