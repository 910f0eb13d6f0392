// Atomics from many blocks at once (the emulator runs blocks on several OS threads).
#include <algorithm>
#include <vector>

#include "cuda_test_util.h"
#include "harness_kernels.cuh"
#include "test_util.h"

namespace llm::test {
namespace {

namespace harness = ::llm::LLM_CUDA_NS::harness;

TEST(CudaAtomics, ManyBlocksAgreeWithCpuCounts) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  for (const int blocks : {1, 7, 64}) {
    const size_t n = static_cast<size_t>(blocks) * 256;
    std::vector<int> v(n);
    for (auto& x : v) x = static_cast<int>(g() % 101);
    DeviceBuffer<int> dv(v), dcounters(3);
    DeviceBuffer<float> dfsum(1);
    DeviceBuffer<double> ddsum(1);
    dcounters.zero();
    dfsum.zero();
    ddsum.zero();
    harness::atomics(dv.get(), dcounters.get(), dfsum.get(), ddsum.get(), blocks);
    const std::vector<int> counters = dcounters.download();
    double sum = 0;
    for (const int x : v) sum += x;
    EXPECT_EQ(counters[0], static_cast<int>(n));
    EXPECT_EQ(counters[1], *std::max_element(v.begin(), v.end()));
    EXPECT_EQ(counters[2], static_cast<int>(n));
    EXPECT_EQ(dfsum.download()[0], static_cast<float>(sum));  // integers below 2^24: exact
    EXPECT_EQ(ddsum.download()[0], sum);
  }
}

}  // namespace
}  // namespace llm::test
