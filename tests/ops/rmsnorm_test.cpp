// rmsnorm_forward / add_rmsnorm_forward / rmsnorm_backward against float64 loops and finite differences.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

class RmsnormTest : public OpTest, public ::testing::WithParamInterface<std::tuple<int64_t, int64_t, DType>> {};

TEST_P(RmsnormTest, ForwardMatchesFloat64) {
  const auto [N, C, dt] = GetParam();
  const auto x = rounded(randn(g, size_t(N * C), 2.0f), dt);
  const auto w = rounded(uniform(g, size_t(C), 0.5f, 1.5f), dt);
  HostTensor X(dt, {N, C}, x), W(dt, {C}, w), Y(dt, {N, C}), R(DType::F32, {N});
  cpu.rmsnorm_forward(X, W, 1e-6f, Y, R);
  ref::Vec rstd;
  const auto want = ref::rmsnorm(ref::to_d(x), ref::to_d(w), N, C, 1e-6, &rstd);
  expect_close(Y.values(), want, storage_tol(dt), "y");
  expect_close(R.values(), rstd, 1e-5, "rstd");
}

TEST_P(RmsnormTest, FusedAddMatchesFloat64) {
  const auto [N, C, dt] = GetParam();
  const auto a = rounded(randn(g, size_t(N * C)), dt), b = rounded(randn(g, size_t(N * C)), dt);
  const auto w = rounded(uniform(g, size_t(C), 0.5f, 1.5f), dt);
  HostTensor A(dt, {N, C}, a), B(dt, {N, C}, b), W(dt, {C}, w), S(dt, {N, C}), Y(dt, {N, C}), R(DType::F32, {N});
  cpu.add_rmsnorm_forward(A, B, W, 1e-5f, S, Y, R);
  ref::Vec s(a.size());
  for (size_t i = 0; i < s.size(); ++i) s[i] = double(a[i]) + double(b[i]);
  expect_close(S.values(), s, storage_tol(dt), "sum");
  // The norm is of the stored (rounded) sum.
  const auto want = ref::rmsnorm(ref::to_d(S.values()), ref::to_d(w), N, C, 1e-5);
  expect_close(Y.values(), want, storage_tol(dt), "y");
}

INSTANTIATE_TEST_SUITE_P(Sizes, RmsnormTest,
                         ::testing::Values(std::tuple{int64_t(1), int64_t(1), DType::F32},
                                           std::tuple{int64_t(7), int64_t(31), DType::F32},
                                           std::tuple{int64_t(33), int64_t(896), DType::F32},
                                           std::tuple{int64_t(5), int64_t(4099), DType::F32},
                                           std::tuple{int64_t(9), int64_t(33), DType::BF16},
                                           std::tuple{int64_t(9), int64_t(65), DType::F16}));

TEST_F(OpTest, RmsnormBackwardMatchesFiniteDifferences) {
  for (auto [N, C] : {std::pair<int64_t, int64_t>{3, 7}, {5, 33}, {2, 130}}) {
    const auto x = randn(g, size_t(N * C)), w = uniform(g, size_t(C), 0.5f, 1.5f), r = randn(g, size_t(N * C));
    const auto dx0 = randn(g, size_t(N * C)), dw0 = randn(g, size_t(C));
    HostTensor X(DType::F32, {N, C}, x), W(DType::F32, {C}, w), Y(DType::F32, {N, C}), R(DType::F32, {N});
    HostTensor DY(DType::F32, {N, C}, r), DX(DType::F32, {N, C}, dx0), DW(DType::F32, {C}, dw0);
    cpu.rmsnorm_forward(X, W, 1e-5f, Y, R);
    cpu.rmsnorm_backward(DY, X, W, R, DX, DW, /*accumulate_dx=*/true);
    const ref::Vec rd = ref::to_d(r), xd = ref::to_d(x), wd = ref::to_d(w);
    auto gx = ref::finite_diff([&](const ref::Vec& v) { return ref::dot(rd, ref::rmsnorm(v, wd, N, C, 1e-5)); }, xd);
    auto gw = ref::finite_diff([&](const ref::Vec& v) { return ref::dot(rd, ref::rmsnorm(xd, v, N, C, 1e-5)); }, wd);
    for (size_t i = 0; i < gx.size(); ++i) gx[i] += dx0[i];  // accumulate_dx adds to what was there
    for (size_t i = 0; i < gw.size(); ++i) gw[i] += dw0[i];  // dw always accumulates
    expect_close(DX.values(), gx, 1e-4, "dx");
    expect_close(DW.values(), gw, 1e-4, "dw");
    // Without accumulation dx is overwritten.
    HostTensor DX2(DType::F32, {N, C}, dx0), DW2(DType::F32, {C}, std::vector<float>(size_t(C), 0.0f));
    cpu.rmsnorm_backward(DY, X, W, R, DX2, DW2, false);
    for (size_t i = 0; i < gx.size(); ++i) gx[i] -= dx0[i];
    expect_close(DX2.values(), gx, 1e-4, "dx (overwrite)");
  }
}

TEST_F(OpTest, RmsnormRejectsMismatchedShapes) {
  HostTensor X(DType::F32, {4, 8}), W(DType::F32, {7}), Y(DType::F32, {4, 8}), R(DType::F32, {4});
  try {
    cpu.rmsnorm_forward(X, W, 1e-6f, Y, R);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rmsnorm_forward: w is [7] f32, expected [8]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llm::test
