// swiglu_forward / swiglu_backward against float64 and finite differences.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

TEST_F(OpTest, SwigluForwardMatchesFloat64) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (auto [N, I] : {std::pair<int64_t, int64_t>{1, 1}, {7, 33}, {31, 4099}}) {
      const auto gu = rounded(randn(g, size_t(N * 2 * I), 3.0f), dt);
      HostTensor GU(dt, {N, 2 * I}, gu), Out(dt, {N, I});
      cpu.swiglu_forward(GU, Out);
      expect_close(Out.values(), ref::swiglu(ref::to_d(gu), N, I), std::max(storage_tol(dt), 1e-5), "out");
    }
  }
}

TEST_F(OpTest, SwigluBackwardMatchesFiniteDifferences) {
  const int64_t N = 5, I = 13;
  const auto gu = randn(g, size_t(N * 2 * I), 3.0f), r = randn(g, size_t(N * I));
  HostTensor GU(DType::F32, {N, 2 * I}, gu), R(DType::F32, {N, I}, r), DGU(DType::F32, {N, 2 * I});
  cpu.swiglu_backward(R, GU, DGU);
  const ref::Vec rd = ref::to_d(r);
  expect_close(DGU.values(),
               ref::finite_diff([&](const ref::Vec& x) { return ref::dot(rd, ref::swiglu(x, N, I)); }, ref::to_d(gu)),
               1e-4, "dgate_up");
}

TEST_F(OpTest, SwigluRejectsOddWidth) {
  HostTensor GU(DType::F32, {2, 5}), Out(DType::F32, {2, 2});
  EXPECT_THROW(cpu.swiglu_forward(GU, Out), Error);
}

}  // namespace
}  // namespace llm::test
