// BatchScheduler in process: a request beyond the free slots and the queue is refused at once,
// the admitted and queued ones still run to their end, and the freed capacity is taken again.
#include <gtest/gtest.h>

#include "gen/gen_test_util.h"
#include "serve/scheduler.h"
#include "test_util.h"

namespace llm::test {
namespace {

TEST(BatchScheduler, RefusesBeyondSlotsAndQueueThenServesWhatItTook) {
  auto g = rng();
  const ModelConfig cfg = small_gen_config(300, 256);
  CpuBackend cpu(1);
  InferenceOptions io;
  io.context = 256;
  io.slots = 1;
  InferenceModel model(cfg, peaked_weights(g, cfg), cpu, io);
  ByteTokenizer tok;
  serve::BatchScheduler scheduler(model, tok, /*max_queue=*/1);
  SamplingParams greedy;
  greedy.temperature = 0;
  GenerateOptions gen;
  gen.max_tokens = 250;  // long enough that the third submission finds slot and queue taken
  auto job = [&] { return std::make_shared<serve::GenJob>(std::vector<int32_t>{1, 2, 3}, greedy, gen, true); };
  const auto a = job(), b = job(), c = job();
  EXPECT_EQ(scheduler.submit(a), serve::BatchScheduler::Submit::Accepted);
  EXPECT_EQ(scheduler.submit(b), serve::BatchScheduler::Submit::Accepted);
  EXPECT_EQ(scheduler.submit(c), serve::BatchScheduler::Submit::QueueFull);
  for (const auto& j : {a, b}) {
    std::string text;
    while (!j->take(text, std::chrono::milliseconds(100))) {
    }
    EXPECT_EQ(j->completion_tokens(), 250);
    EXPECT_EQ(j->reason(), StopReason::MaxTokens);
    EXPECT_TRUE(j->error().empty()) << j->error();
  }
  EXPECT_EQ(scheduler.submit(c), serve::BatchScheduler::Submit::Accepted);
  scheduler.drain();
  EXPECT_EQ(scheduler.stats().active, 0);
  EXPECT_EQ(scheduler.submit(job()), serve::BatchScheduler::Submit::Draining);
}

}  // namespace
}  // namespace llm::test
