// The fiber switch itself, and what the emulator costs: the numbers docs/cuda-emulation.md quotes
// are printed by these tests (CudaEmuPerf.*). Emulator only.
#include <time.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "cuda_test_util.h"
#include "emu/fiber.h"
#include "harness_kernels.cuh"
#include "test_util.h"

namespace llm::test {
namespace {

namespace harness = ::llm::LLM_CUDA_NS::harness;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// CPU time of the calling thread: what a switch costs, whatever else the machine is doing.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct PingPong {
  emu::FiberContext main, fiber;
  long count = 0, rounds = 0;
};

void ping_pong_entry(void* p) {
  auto* pp = static_cast<PingPong*>(p);
  while (pp->count < pp->rounds) {
    ++pp->count;
    emu::fiber_switch(pp->fiber, pp->main);
  }
  emu::fiber_switch(pp->fiber, pp->main, /*from_finished=*/true);
}

TEST(CudaEmuFiber, SwitchesBackAndForthAndMeasuresTheCost) {
  PingPong pp;
  pp.rounds = 2'000'000;
  emu::fiber_init_thread_context(pp.main);
  const emu::FiberStack stack(64 * 1024);
  emu::fiber_prepare(pp.fiber, stack, &ping_pong_entry, &pp);
  const double t0 = thread_cpu_seconds();
  for (long i = 0; i <= pp.rounds; ++i) emu::fiber_switch(pp.main, pp.fiber);
  const double ns = (thread_cpu_seconds() - t0) * 1e9 / (2.0 * static_cast<double>(pp.rounds));
  EXPECT_EQ(pp.count, pp.rounds);
  std::printf("[perf] fiber switch: %.1f ns\n", ns);
  RecordProperty("fiber_switch_ns", static_cast<int>(ns * 10));
  EXPECT_LT(ns, emu::asan_enabled() ? 5000.0 : 500.0);
}

TEST(CudaEmuPerf, EmulatedKernelThroughput) {
  const int blocks = 1024, threads = 256;
  harness::empty_kernel(4, threads);  // warm the worker threads and their stacks
  auto t0 = Clock::now();
  harness::empty_kernel(blocks, threads);
  const double empty_s = seconds_since(t0);
  const int syncs = 16;
  DeviceBuffer<int> out(static_cast<size_t>(blocks));
  t0 = Clock::now();
  harness::sync_kernel(blocks, threads, syncs, out.get());
  const double sync_s = seconds_since(t0);
  EXPECT_EQ(out.download()[7], syncs);
  std::vector<float> in(static_cast<size_t>(threads), 1.0f);
  DeviceBuffer<float> din(in), dsum(1);
  const int reps = 200;
  t0 = Clock::now();
  for (int i = 0; i < reps; ++i) harness::block_reduce_warp0(din.get(), dsum.get(), threads);
  const double reduce_s = seconds_since(t0);
  const double total = static_cast<double>(blocks) * threads;
  std::printf(
      "[perf] %u worker threads: empty kernel %.0f ns/thread, __syncthreads %.0f ns/thread/barrier, "
      "256-thread shuffle block reduction %.1f us/block\n",
      emu::emu_settings().worker_threads, empty_s * 1e9 / total, (sync_s - empty_s) * 1e9 / (total * syncs),
      reduce_s * 1e6 / reps);
}

}  // namespace
}  // namespace llm::test
