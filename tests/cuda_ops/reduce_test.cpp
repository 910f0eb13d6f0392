// sum / sum_squares on the CUDA backend against the CPU ops (double accumulation on both): each
// dtype, sizes from 1 to a million, unaligned starts, within 1e-6 relative; bitwise the same on
// repeated calls; non-finite inputs give non-finite sums; squares beyond fp32's range stay finite.
#include <cmath>
#include <limits>

#include "pair_util.h"

namespace llm::test {
namespace {

using CudaReduce = CudaPairTest;

TEST_F(CudaReduce, MatchesCpu) {
  for (DType dt : float_dtypes()) {
    for (int64_t n : {1, 31, 33, 4099, (1 << 20) + 3}) {
      for (int64_t off : {0, 1}) {
        // A positive mean, so the sum is not a cancellation near zero.
        Pair x = pair(dt, {n + 1}, uniform(g, size_t(n + 1), -0.5f, 1.5f));
        const Tensor hv = x.h.t().range(off, n), dv = x.d.t().range(off, n);
        const std::string what = cat(dtype_name(dt), " n ", n, " offset ", off);
        const double s = cpu.sum(hv), gs = cuda.sum(dv);
        EXPECT_LE(std::abs(gs - s), 1e-6 * std::abs(s)) << "sum " << what << ": " << gs << " vs " << s;
        const double q = cpu.sum_squares(hv), gq = cuda.sum_squares(dv);
        EXPECT_LE(std::abs(gq - q), 1e-6 * std::abs(q)) << "sum_squares " << what << ": " << gq << " vs " << q;
        EXPECT_EQ(std::bit_cast<uint64_t>(cuda.sum_squares(dv)), std::bit_cast<uint64_t>(gq)) << "repeat " << what;
      }
    }
  }
}

TEST_F(CudaReduce, NonFiniteAndLarge) {
  const int64_t n = 5000;
  std::vector<float> v = uniform(g, size_t(n), -1.0f, 1.0f);
  v[4321] = std::numeric_limits<float>::infinity();
  Pair x = pair(DType::F32, {n}, v);
  EXPECT_FALSE(std::isfinite(cuda.sum(x.d)));
  EXPECT_FALSE(std::isfinite(cuda.sum_squares(x.d)));
  v[4321] = std::numeric_limits<float>::quiet_NaN();
  Pair y = pair(DType::BF16, {n}, v);
  EXPECT_TRUE(std::isnan(cuda.sum(y.d)));
  EXPECT_TRUE(std::isnan(cuda.sum_squares(y.d)));
  // 3e20^2 = 9e40 overflows fp32 but not the CPU's double: the kernel redoes that chunk in double.
  v[4321] = 3e20f;
  Pair z = pair(DType::F32, {n}, v);
  const double want = cpu.sum_squares(z.h), got = cuda.sum_squares(z.d);
  EXPECT_TRUE(std::isfinite(got));
  EXPECT_LE(std::abs(got - want), 1e-6 * want);
}

TEST_F(CudaReduce, BadInputs) {
  OwnedTensor i = dev.tensor(DType::I32, {10}), m = dev.tensor(DType::F32, {4, 6});
  expect_error([&] { cuda.sum(i); }, "sum: ", "must be a contiguous float tensor");
  expect_error([&] { cuda.sum_squares(m.t().slice(1, 0, 5)); }, "sum_squares: ", "must be a contiguous float tensor");
  EXPECT_EQ(cuda.sum(m.t().range(0, 0)), 0.0);
}

}  // namespace
}  // namespace llm::test
