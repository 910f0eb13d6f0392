// adamw against a float64 transcription of torch.optim.AdamW's update; sum / sum_squares; copy.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

TEST_F(OpTest, AdamwMatchesFloat64Update) {
  const int64_t P = 70001;
  auto p = randn(g, size_t(P)), gr = randn(g, size_t(P)), m = randn(g, size_t(P), 0.1f);
  auto v = uniform(g, size_t(P), 0.0f, 0.2f);
  HostTensor Pm(DType::F32, {P}, p), G(DType::F32, {P}, gr), M(DType::F32, {P}, m), Vv(DType::F32, {P}, v);
  HostTensor Comp(DType::BF16, {P});
  const AdamWSegment segs[] = {{0, 40000, 0.1f}, {40000, 30001, 0.0f}};
  AdamWHyper hp{3e-3f, 0.9f, 0.95f, 1e-8f, 7, 0.5f};
  cpu.adamw(Pm, G, M, Vv, Comp, segs, hp);
  ref::Vec wp(static_cast<size_t>(P)), wm(static_cast<size_t>(P)), wv(static_cast<size_t>(P));
  const double bc1 = 1 - std::pow(0.9, 7), bc2 = 1 - std::pow(0.95, 7);
  for (int64_t i = 0; i < P; ++i) {
    const double wd = i < 40000 ? 0.1 : 0.0, gi = 0.5 * gr[size_t(i)];
    wm[size_t(i)] = 0.9 * m[size_t(i)] + 0.1 * gi;
    wv[size_t(i)] = 0.95 * v[size_t(i)] + 0.05 * gi * gi;
    wp[size_t(i)] = p[size_t(i)] * (1 - double(hp.lr) * wd) -
                    double(hp.lr) / bc1 * wm[size_t(i)] / (std::sqrt(wv[size_t(i)] / bc2) + 1e-8);
  }
  expect_close(M.values(), wm, 1e-5, "m");
  expect_close(Vv.values(), wv, 1e-5, "v");
  expect_close(Pm.values(), wp, 1e-5, "param");
  expect_close(Comp.values(), ref::to_d(rounded(Pm.values(), DType::BF16)), 0.0, "compute copy");
}

TEST_F(OpTest, SumsAccumulateInDouble) {
  const int64_t n = 100003;
  const auto x = randn(g, size_t(n));
  HostTensor X(DType::F32, {n}, x);
  double s = 0, ss = 0;
  for (float v : x) {
    s += v;
    ss += double(v) * v;
  }
  EXPECT_NEAR(cpu.sum(X), s, 1e-9 * n);
  EXPECT_NEAR(cpu.sum_squares(X), ss, 1e-12 * ss);
  HostTensor Y(DType::F32, {3}, std::vector<float>{1.0f, INFINITY, 2.0f});
  EXPECT_FALSE(std::isfinite(cpu.sum_squares(Y)));
}

TEST_F(OpTest, CopyConvertsAndReadsStrides) {
  const int64_t R = 5, C = 12;
  const auto x = randn(g, size_t(R * C));
  HostTensor X(DType::F32, {R, C}, x), Y(DType::BF16, {R, 4});
  cpu.copy(X.t().slice(1, 8, 12), Y);
  ref::Vec want;
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 8; c < 12; ++c) want.push_back(rounded({x[size_t(r * C + c)]}, DType::BF16)[0]);
  expect_close(Y.values(), want, 0.0, "copy");
}

}  // namespace
}  // namespace llm::test
