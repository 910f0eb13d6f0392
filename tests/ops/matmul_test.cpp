// matmul / bias_backward against float64 loops; the weight-gradient identity by finite differences.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

struct MatmulCase {
  int64_t M, N, K;
  bool ta, tb;
  DType in, out;
  bool bias;
  float beta;
};

class MatmulTest : public OpTest, public ::testing::WithParamInterface<MatmulCase> {};

TEST_P(MatmulTest, MatchesFloat64) {
  const MatmulCase c = GetParam();
  const auto a = rounded(randn(g, size_t(c.M * c.K)), c.in), b = rounded(randn(g, size_t(c.K * c.N)), c.in);
  const auto bias = rounded(randn(g, size_t(c.N)), c.in), c0 = rounded(randn(g, size_t(c.M * c.N)), c.out);
  HostTensor A(c.in, {c.ta ? c.K : c.M, c.ta ? c.M : c.K}, a), B(c.in, {c.tb ? c.N : c.K, c.tb ? c.K : c.N}, b);
  HostTensor Bias(c.in, {c.N}, bias), C(c.out, {c.M, c.N}, c0);
  cpu.matmul(A, c.ta, B, c.tb, C, 0.5f, c.beta, c.bias ? &Bias.t() : nullptr);
  ref::Vec want = ref::matmul(ref::to_d(a), c.ta, ref::to_d(b), c.tb, c.M, c.N, c.K);
  for (size_t i = 0; i < want.size(); ++i) {
    want[i] = 0.5 * want[i] + c.beta * c0[i] + (c.bias ? bias[i % size_t(c.N)] : 0.0);
  }
  // fp32 accumulation over K terms: error grows like sqrt(K) eps relative to the terms' scale.
  expect_close(C.values(), want, std::max(storage_tol(c.out), 2e-5), "c");
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulTest,
                         ::testing::Values(MatmulCase{1, 1, 1, false, true, DType::F32, DType::F32, false, 0.0f},
                                           MatmulCase{31, 33, 17, false, true, DType::F32, DType::F32, true, 0.0f},
                                           MatmulCase{1, 33, 17, false, false, DType::F32, DType::F32, true,
                                                      1.0f},  // decode rows
                                           MatmulCase{1, 4099, 65, false, true, DType::F32, DType::F32, false, 0.0f},
                                           MatmulCase{33, 31, 65, true, false, DType::F32, DType::F32, false, 1.0f},
                                           MatmulCase{7, 129, 33, true, true, DType::F32, DType::F32, true, 1.0f},
                                           MatmulCase{17, 9, 4099, false, false, DType::F32, DType::F32, false, 0.0f},
                                           MatmulCase{31, 33, 17, false, true, DType::BF16, DType::BF16, true, 0.0f},
                                           MatmulCase{31, 33, 17, true, false, DType::BF16, DType::F32, false, 1.0f},
                                           MatmulCase{19, 23, 29, false, true, DType::F16, DType::F16, true, 1.0f},
                                           // a few rows against half-precision weights: the in-place decode path
                                           MatmulCase{1, 4099, 65, false, true, DType::BF16, DType::BF16, true, 0.0f},
                                           MatmulCase{3, 33, 31, false, true, DType::BF16, DType::F32, false, 1.0f},
                                           MatmulCase{8, 129, 17, false, true, DType::F16, DType::F16, true, 1.0f}));

TEST_F(OpTest, MatmulReadsStridedRows) {
  // A column block [N, 5] of a wider [N, 12] buffer, as the fused q/k/v buffer is read.
  const int64_t N = 9, W = 12, K = 5, O = 7;
  const auto full = randn(g, size_t(N * W)), b = randn(g, size_t(O * K));
  HostTensor Full(DType::F32, {N, W}, full), B(DType::F32, {O, K}, b), C(DType::F32, {N, O});
  const Tensor a = Full.t().slice(1, 3, 3 + K);
  cpu.matmul(a, false, B, true, C, 1.0f, 0.0f, nullptr);
  ref::Vec ad(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) ad[size_t(n * K + k)] = full[size_t(n * W + 3 + k)];
  expect_close(C.values(), ref::matmul(ad, false, ref::to_d(b), true, N, O, K), 2e-5, "c");
}

TEST_F(OpTest, MatmulRejectsInnerMismatch) {
  HostTensor A(DType::F32, {4, 5}), B(DType::F32, {6, 3}), C(DType::F32, {4, 3});
  EXPECT_THROW(
      {
        try {
          cpu.matmul(A, false, B, false, C, 1.0f, 0.0f, nullptr);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("matmul: inner dimensions differ"), std::string::npos);
          throw;
        }
      },
      Error);
}

TEST_F(OpTest, LinearBackwardMatchesFiniteDifferences) {
  // y = x W^T + b; with L = sum(r * y): dx = r W, dW += r^T x, db += colsum(r)
  const int64_t N = 6, In = 11, Out = 7;
  const auto x = randn(g, size_t(N * In)), w = randn(g, size_t(Out * In)), b = randn(g, size_t(Out));
  const auto r = randn(g, size_t(N * Out)), dw0 = randn(g, size_t(Out * In)), db0 = randn(g, size_t(Out));
  HostTensor X(DType::F32, {N, In}, x), Wt(DType::F32, {Out, In}, w), R(DType::F32, {N, Out});
  HostTensor DX(DType::F32, {N, In}), DW(DType::F32, {Out, In}, dw0), DB(DType::F32, {Out}, db0);
  R.set(r);
  cpu.matmul(R, false, Wt, false, DX, 1.0f, 0.0f, nullptr);
  cpu.matmul(R, true, X, false, DW, 1.0f, 1.0f, nullptr);
  cpu.bias_backward(R, DB);
  const ref::Vec rd = ref::to_d(r), xd = ref::to_d(x), wd = ref::to_d(w), bd = ref::to_d(b);
  auto f = [&](const ref::Vec& xv, const ref::Vec& wv, const ref::Vec& bv) {
    return ref::dot(rd, ref::matmul(xv, false, wv, true, N, Out, In, &bv));
  };
  const auto gx = ref::finite_diff([&](const ref::Vec& v) { return f(v, wd, bd); }, xd);
  auto gw = ref::finite_diff([&](const ref::Vec& v) { return f(xd, v, bd); }, wd);
  auto gb = ref::finite_diff([&](const ref::Vec& v) { return f(xd, wd, v); }, bd);
  for (size_t i = 0; i < gw.size(); ++i) gw[i] += dw0[i];
  for (size_t i = 0; i < gb.size(); ++i) gb[i] += db0[i];
  expect_close(DX.values(), gx, 1e-4, "dx");
  expect_close(DW.values(), gw, 1e-4, "dW");
  expect_close(DB.values(), gb, 1e-4, "db");
}

}  // namespace
}  // namespace llm::test
