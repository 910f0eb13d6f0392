// Scheduling orders and poisoned allocations (EmuSettings::schedule, ::poison) catch what thread
// order and zeroed memory hide: a planted missing __syncthreads and a planted read of device
// memory nobody wrote. Each planted bug passes unnoticed in the default mode (that is the
// blindness these modes remove) and is caught in the new ones; the correct kernel passes in all.
// Emulator only.
#include <cmath>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "harness_kernels.cuh"
#include "test_util.h"

namespace llm::test {
namespace {

namespace harness = ::llm::LLM_CUDA_NS::harness;
using Schedule = emu::EmuSettings::Schedule;

// How many of out[t] differ from in[t - 1] (out[0] from in[0]): the neighbour kernel's contract.
int wrong_neighbours(const std::vector<float>& in, const std::vector<float>& out) {
  int wrong = 0;
  for (size_t t = 0; t < in.size(); ++t) wrong += out[t] == in[t == 0 ? 0 : t - 1] ? 0 : 1;
  return wrong;
}

int run_neighbour(Schedule schedule, uint64_t seed, bool with_barrier, int threads) {
  const ScopedEmuSettings mode([&](emu::EmuSettings& s) {
    s.schedule = schedule;
    s.seed = seed;
  });
  auto g = rng();
  const std::vector<float> in = uniform(g, static_cast<size_t>(threads), 1, 2);
  DeviceBuffer<float> din(in), dout(static_cast<size_t>(threads));
  harness::shared_neighbour(din.get(), dout.get(), threads, with_barrier);
  return wrong_neighbours(in, dout.download());
}

TEST(CudaEmuSchedule, MissingSyncthreadsIsHiddenInThreadOrder) {
  // Thread t - 1 runs to completion before thread t starts: the race always "works".
  EXPECT_EQ(run_neighbour(Schedule::Order, 1, /*with_barrier=*/false, 256), 0);
}

TEST(CudaEmuSchedule, MissingSyncthreadsIsCaughtInReverseAndRandomOrder) {
  for (const int threads : {64, 256}) {
    // Highest thread first: every thread but 0 reads its neighbour's slot before it is written.
    EXPECT_EQ(run_neighbour(Schedule::Reverse, 1, false, threads), threads - 1) << threads << " threads";
    for (const uint64_t seed : {1u, 2u, 3u}) {
      EXPECT_GT(run_neighbour(Schedule::Random, seed, false, threads), 0) << threads << " threads, seed " << seed;
    }
  }
}

TEST(CudaEmuSchedule, WithTheBarrierEveryOrderIsRight) {
  for (const Schedule s : {Schedule::Order, Schedule::Reverse, Schedule::Random}) {
    for (const uint64_t seed : {1u, 7u}) {
      EXPECT_EQ(run_neighbour(s, seed, true, 256), 0) << "schedule " << static_cast<int>(s) << " seed " << seed;
    }
  }
}

TEST(CudaEmuSchedule, RandomOrderIsReproducibleFromItsSeed) {
  // The n-th launch after the settings are set interleaves the same way for the same seed, so a
  // failure seen in CI can be replayed with LLM_EMU_SCHEDULE=random:SEED.
  const auto stale_slots = [](uint64_t seed) {
    const ScopedEmuSettings mode([&](emu::EmuSettings& s) {
      s.schedule = Schedule::Random;
      s.seed = seed;
    });
    std::vector<float> in(256);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i + 1);
    DeviceBuffer<float> din(in), dout(256);
    harness::shared_neighbour(din.get(), dout.get(), 256, false);
    std::vector<int> stale;
    const std::vector<float> out = dout.download();
    for (size_t i = 0; i < out.size(); ++i) {
      if (std::isnan(out[i])) stale.push_back(static_cast<int>(i));  // read before its neighbour wrote
    }
    return stale;
  };
  const std::vector<int> a = stale_slots(42);
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(stale_slots(42), a);
  EXPECT_NE(stale_slots(43), a);
}

TEST(CudaEmuSchedule, SettingsParseAndRejectNamingTheVariable) {
  emu::EmuSettings s;
  emu::parse_emu_schedule("reverse", s);
  EXPECT_EQ(s.schedule, Schedule::Reverse);
  emu::parse_emu_schedule("random:12345", s);
  EXPECT_EQ(s.schedule, Schedule::Random);
  EXPECT_EQ(s.seed, 12345u);
  emu::parse_emu_schedule("order", s);
  EXPECT_EQ(s.schedule, Schedule::Order);
  for (const char* bad : {"", "random:", "random:x", "backwards", "random:99999999999999999999"}) {
    try {
      emu::parse_emu_schedule(bad, s);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("LLM_EMU_SCHEDULE=" + std::string(bad)), std::string::npos) << e.what();
    }
  }
}

// ---- poison ---------------------------------------------------------------------------------------

// The planted bug: n values summed, only n - 1 uploaded (an off-by-one in the host code).
float sum_with_one_unwritten(bool poison, float* expected) {
  const ScopedEmuSettings mode([&](emu::EmuSettings& s) { s.poison = poison; });
  auto g = rng();
  const int n = 100;
  const std::vector<float> host = uniform(g, n - 1, 1, 2);
  DeviceBuffer<float> buf(n), out(1);
  LLM_CUDA_CHECK(cudaMemcpy(buf.get(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
  harness::sum(buf.get(), n, out.get());
  double want = 0;
  for (const float v : host) want += v;
  *expected = static_cast<float>(want);
  return out.download()[0];
}

TEST(CudaEmuPoison, UninitialisedReadLooksRightWithoutPoisonAndIsNaNWithIt) {
  float want = 0;
  // The host allocator's fresh memory is zeros here, so the unwritten element adds nothing: the
  // bug is invisible. (Not guaranteed: a reused block could hold anything; skip if so.)
  const float plain = sum_with_one_unwritten(false, &want);
  if (!std::isnan(plain) && std::abs(plain - want) > 1e-3f * want) {
    GTEST_SKIP() << "fresh host memory was not zero here";
  }
  EXPECT_NEAR(plain, want, 1e-3f * want);
  EXPECT_TRUE(std::isnan(sum_with_one_unwritten(true, &want)));
}

TEST(CudaEmuPoison, FreshAllocationsReadAsNaNAndAllOnes) {
  const ScopedEmuSettings mode([](emu::EmuSettings& s) { s.poison = true; });
  for (const bool async : {false, true}) {
    void* p = nullptr;
    if (async) {
      LLM_CUDA_CHECK(cudaMallocAsync(&p, 64, nullptr));
    } else {
      LLM_CUDA_CHECK(cudaMalloc(&p, 64));
    }
    std::vector<unsigned char> bytes(64);
    LLM_CUDA_CHECK(cudaMemcpy(bytes.data(), p, 64, cudaMemcpyDeviceToHost));
    for (const unsigned char b : bytes) EXPECT_EQ(b, 0xff);
    LLM_CUDA_CHECK(cudaFree(p));
  }
}

}  // namespace
}  // namespace llm::test
