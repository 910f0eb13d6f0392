// kernels/sample_reduce.cu against plain CPU loops: under the emulator in CI, on a GPU when present.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda_test_util.h"
#include "sample_reduce.cuh"
#include "test_util.h"

namespace llm::test {
namespace {

namespace kernels = ::llm::LLM_CUDA_NS;

// |got - want| within fp32 accumulation error of a sum whose terms have magnitude sum `mass`.
void expect_sum_near(double got, double want, double mass, const std::string& where) {
  EXPECT_LE(std::abs(got - want), 1e-5 * mass + 1e-6) << where << ": got " << got << ", want " << want;
}

TEST(CudaSampleReduce, BlockSumsMatchCpuLoop) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  for (const int64_t n : {int64_t{1}, int64_t{255}, int64_t{256}, int64_t{257}, int64_t{5000}, int64_t{100003}}) {
    for (const int blocks : {1, 3, 17}) {
      const std::vector<float> x = randn(g, static_cast<size_t>(n));
      DeviceBuffer<float> dx(x), dpartial(static_cast<size_t>(blocks));
      kernels::sample_block_sums(dx.get(), n, dpartial.get(), blocks, nullptr);
      const std::vector<float> partial = dpartial.download();
      std::vector<double> want(static_cast<size_t>(blocks), 0.0), mass(static_cast<size_t>(blocks), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const auto b = static_cast<size_t>((i / 256) % blocks);
        want[b] += x[static_cast<size_t>(i)];
        mass[b] += std::abs(x[static_cast<size_t>(i)]);
      }
      for (int b = 0; b < blocks; ++b) {
        const auto bi = static_cast<size_t>(b);
        expect_sum_near(partial[bi], want[bi], mass[bi], cat("n=", n, " blocks=", blocks, " block ", b));
      }
    }
  }
}

TEST(CudaSampleReduce, RowSumsWithDynamicSharedMemoryMatchCpuLoop) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  for (const int threads : {32, 64, 96, 256, 1024}) {
    for (const int cols : {1, 31, 33, 1000, 4099}) {
      const int rows = 5;
      const std::vector<float> x = randn(g, static_cast<size_t>(rows * cols));
      DeviceBuffer<float> dx(x), dout(static_cast<size_t>(rows));
      kernels::sample_row_sums(dx.get(), rows, cols, dout.get(), threads, nullptr);
      const std::vector<float> out = dout.download();
      for (int r = 0; r < rows; ++r) {
        double want = 0, mass = 0;
        for (int c = 0; c < cols; ++c) {
          want += x[static_cast<size_t>(r * cols + c)];
          mass += std::abs(x[static_cast<size_t>(r * cols + c)]);
        }
        expect_sum_near(out[static_cast<size_t>(r)], want, mass, cat("threads=", threads, " cols=", cols, " row ", r));
      }
    }
  }
}

TEST(CudaSampleReduce, BadThreadCountIsAnError) {
  LLM_REQUIRE_CUDA_DEVICE();
  DeviceBuffer<float> dx(64), dout(1);
  EXPECT_THROW(kernels::sample_row_sums(dx.get(), 1, 64, dout.get(), 48, nullptr), Error);
}

}  // namespace
}  // namespace llm::test
