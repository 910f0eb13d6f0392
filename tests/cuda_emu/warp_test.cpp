// Warp shuffles, votes and block reductions in divergent code, against plain CPU references
// written from the CUDA programming guide's definitions. Under the emulator in CI; the same
// tests run on a GPU when present (test_cuda_gpu), which checks the emulator's semantics.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "cuda_test_util.h"
#include "harness_kernels.cuh"
#include "llm/dtype.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace harness = ::llm::LLM_CUDA_NS::harness;
using harness::Shuffle;

// What lane `lane` receives, per the programming guide's description of each shuffle.
int shuffle_reference(const std::vector<int>& in, Shuffle mode, int lane, int param, int width) {
  const int segment = lane / width * width;
  switch (mode) {
    case Shuffle::Idx: return in[static_cast<size_t>(segment + param % width)];
    case Shuffle::Up:
      return lane % width >= param ? in[static_cast<size_t>(lane - param)] : in[static_cast<size_t>(lane)];
    case Shuffle::Down:
      return lane % width + param < width ? in[static_cast<size_t>(lane + param)] : in[static_cast<size_t>(lane)];
    case Shuffle::Xor: {
      const int j = lane ^ param;  // later segments are out of reach: own value
      return j < segment + width ? in[static_cast<size_t>(j)] : in[static_cast<size_t>(lane)];
    }
  }
  return 0;
}

TEST(CudaWarp, ShufflesWithEveryWidthMatchTheGuide) {
  LLM_REQUIRE_CUDA_DEVICE();
  std::vector<int> in(32);
  for (int i = 0; i < 32; ++i) in[static_cast<size_t>(i)] = 1000 + i * 7;
  DeviceBuffer<int> din(in), dout(32);
  for (const Shuffle mode : {Shuffle::Idx, Shuffle::Up, Shuffle::Down, Shuffle::Xor}) {
    for (const int width : {1, 2, 4, 8, 16, 32}) {
      const int max_param = mode == Shuffle::Idx ? 64 : 32;
      for (int param = 0; param < max_param; ++param) {
        harness::shuffle(din.get(), dout.get(), mode, param, width);
        const std::vector<int> out = dout.download();
        for (int lane = 0; lane < 32; ++lane) {
          ASSERT_EQ(out[static_cast<size_t>(lane)], shuffle_reference(in, mode, lane, param, width))
              << "mode " << static_cast<int>(mode) << " width " << width << " param " << param << " lane " << lane;
        }
      }
    }
  }
}

TEST(CudaWarp, VotesInDivergentBranchesSeeOnlyTheirLanes) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  DeviceBuffer<int> dpred(32);
  DeviceBuffer<unsigned> dout(96);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int> pred(32);
    const int density = trial % 4;  // all false, sparse, dense, all true
    for (auto& p : pred) p = density == 0 ? 0 : density == 3 ? 1 : static_cast<int>(g() % (density == 1 ? 5 : 2)) == 0;
    dpred.upload(pred);
    harness::divergent_votes(dpred.get(), dout.get());
    const std::vector<unsigned> out = dout.download();
    for (int parity = 0; parity < 2; ++parity) {
      unsigned ballot = 0;
      for (int l = parity; l < 32; l += 2) ballot |= (pred[static_cast<size_t>(l)] ? 1u : 0u) << l;
      const unsigned mask = parity == 0 ? 0x55555555u : 0xaaaaaaaau;
      for (int l = parity; l < 32; l += 2) {
        const auto at = static_cast<size_t>(3 * l);
        EXPECT_EQ(out[at], ballot) << "lane " << l;
        EXPECT_EQ(out[at + 1], ballot != 0 ? 1u : 0u) << "lane " << l;
        EXPECT_EQ(out[at + 2], ballot == mask ? 1u : 0u) << "lane " << l;
      }
    }
  }
}

TEST(CudaWarp, ShufflesInDivergentBranchesAreExact) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  std::vector<float> in(32);
  for (auto& v : in) v = static_cast<float>(static_cast<int>(g() % 201) - 100);  // exact in any order
  DeviceBuffer<float> din(in), dout(32);
  harness::divergent_shuffles(din.get(), dout.get());
  const std::vector<float> out = dout.download();
  float low = 0;
  for (int l = 0; l < 16; ++l) low += in[static_cast<size_t>(l)];
  float prefix = 0;
  for (int l = 0; l < 32; ++l) {
    if (l >= 16) prefix += in[static_cast<size_t>(l)];
    EXPECT_EQ(out[static_cast<size_t>(l)], l < 16 ? low : prefix) << "lane " << l;
  }
}

TEST(CudaWarp, BlockReductionWithOnlyWarpZeroInTheSecondStage) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  for (const int threads : {64, 128, 256, 512, 1024}) {
    std::vector<float> in(static_cast<size_t>(threads));
    for (auto& v : in) v = static_cast<float>(static_cast<int>(g() % 2001) - 1000);
    DeviceBuffer<float> din(in), dout(1);
    harness::block_reduce_warp0(din.get(), dout.get(), threads);
    double want = 0;
    for (const float v : in) want += v;
    EXPECT_EQ(dout.download()[0], static_cast<float>(want)) << threads << " threads";
  }
}

TEST(CudaWarp, SyncthreadsCountAndOr) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  for (const int threads : {32, 100, 1024}) {
    for (int density = 0; density < 3; ++density) {
      std::vector<int> in(static_cast<size_t>(threads));
      for (auto& v : in) v = density == 0 ? 0 : density == 2 ? 1 : static_cast<int>(g() % 2);
      DeviceBuffer<int> din(in), dout(3);
      harness::syncthreads_votes(din.get(), dout.get(), threads);
      const std::vector<int> out = dout.download();
      const int count = static_cast<int>(std::count(in.begin(), in.end(), 1));
      EXPECT_EQ(out[0], count);
      EXPECT_EQ(out[1], count == threads ? 1 : 0);
      EXPECT_EQ(out[2], count > 0 ? 1 : 0);
    }
  }
}

TEST(CudaWarp, MatchAnyGroupsEqualKeys) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  std::vector<int> key(32);
  for (auto& k : key) k = static_cast<int>(g() % 4);
  DeviceBuffer<int> dkey(key);
  DeviceBuffer<unsigned> dout(32);
  harness::match_any(dkey.get(), dout.get());
  const std::vector<unsigned> out = dout.download();
  for (int l = 0; l < 32; ++l) {
    unsigned want = 0;
    for (int k = 0; k < 32; ++k) want |= (key[static_cast<size_t>(k)] == key[static_cast<size_t>(l)] ? 1u : 0u) << k;
    EXPECT_EQ(out[static_cast<size_t>(l)], want) << "lane " << l;
  }
}

TEST(CudaWarp, TensorCoreTileMatchesAPlainProduct) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  const int sm = cuda_device_sm();
  for (const bool bf16 : {true, false}) {
    // bf16 tensor cores need sm_80, f16 ones sm_75: a T4 or V100 would trap (and lose the context).
    if (sm < (bf16 ? 80 : 75)) {
      std::printf("[  SKIPPED ] %s mma: the device is sm_%d\n", bf16 ? "bf16" : "f16", sm);
      continue;
    }
    std::vector<float> a = uniform(g, 256, -1, 1), b = uniform(g, 128, -1, 1);
    const std::vector<float> c = uniform(g, 128, -1, 1);
    for (auto& v : a) v = bf16 ? round_to<llm::bf16>(v) : round_to<llm::f16>(v);
    for (auto& v : b) v = bf16 ? round_to<llm::bf16>(v) : round_to<llm::f16>(v);
    DeviceBuffer<float> da(a), db(b), dc(c), dd(128);
    harness::mma_tile(da.get(), db.get(), dc.get(), dd.get(), bf16);
    const std::vector<float> d = dd.download();
    for (int r = 0; r < 16; ++r) {
      for (int col = 0; col < 8; ++col) {
        double want = c[static_cast<size_t>(r * 8 + col)], mass = std::abs(want);
        for (int k = 0; k < 16; ++k) {
          const double p = double(a[static_cast<size_t>(r * 16 + k)]) * b[static_cast<size_t>(k * 8 + col)];
          want += p;
          mass += std::abs(p);
        }
        EXPECT_NEAR(d[static_cast<size_t>(r * 8 + col)], want, 1e-5 * mass + 1e-6)
            << (bf16 ? "bf16" : "f16") << " (" << r << ", " << col << ")";
      }
    }
  }
}

}  // namespace
}  // namespace llm::test
