// cross_entropy (fused output layer + loss) against float64 logits and finite differences,
// with chunking forced small so chunk boundaries are crossed.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

std::vector<int32_t> random_targets(std::mt19937_64& g, int64_t N, int64_t V, bool with_ignored) {
  std::uniform_int_distribution<int32_t> id(0, int32_t(V - 1));
  std::vector<int32_t> t(static_cast<size_t>(N));
  for (auto& x : t) x = id(g);
  if (with_ignored && N > 2) t[1] = -100;
  return t;
}

TEST_F(OpTest, CrossEntropyLossMatchesFloat64) {
  for (int64_t chunk : {0, 1, 7}) {
    for (DType dt : {DType::F32, DType::BF16}) {
      const int64_t N = 23, C = 33, V = 4099;
      const auto h = rounded(randn(g, size_t(N * C)), dt), w = rounded(randn(g, size_t(V * C), 0.3f), dt);
      const auto tg = random_targets(g, N, V, true);
      HostTensor H(dt, {N, C}, h), W(dt, {V, C}, w), T(DType::I32, {N}, tg), L(DType::F32, {N});
      cpu.cross_entropy(H, W, T, L, Tensor(), Tensor(), 1.0f, chunk);
      expect_close(L.values(), ref::cross_entropy(ref::to_d(h), ref::to_d(w), tg, N, C, V), 1e-5, "loss");
      EXPECT_EQ(L.values()[1], 0.0f) << "ignored target";
    }
  }
}

TEST_F(OpTest, CrossEntropyGradientsMatchFiniteDifferences) {
  const int64_t N = 9, C = 6, V = 13;
  const int64_t chunk = 4;  // chunks of 4, 4, 1
  const auto h = randn(g, size_t(N * C)), w = randn(g, size_t(V * C));
  const auto tg = random_targets(g, N, V, true);
  const auto dw0 = randn(g, size_t(V * C));
  const float scale = 0.37f;
  HostTensor H(DType::F32, {N, C}, h), W(DType::F32, {V, C}, w), T(DType::I32, {N}, tg), L(DType::F32, {N});
  HostTensor DH(DType::F32, {N, C}), DW(DType::F32, {V, C}, dw0);
  cpu.cross_entropy(H, W, T, L, DH, DW, scale, chunk);
  auto total = [&](const ref::Vec& hv, const ref::Vec& wv) {
    double s = 0;
    for (double l : ref::cross_entropy(hv, wv, tg, N, C, V)) s += l;
    return scale * s;
  };
  const ref::Vec hd = ref::to_d(h), wd = ref::to_d(w);
  const auto gh = ref::finite_diff([&](const ref::Vec& x) { return total(x, wd); }, hd);
  auto gw = ref::finite_diff([&](const ref::Vec& x) { return total(hd, x); }, wd);
  for (size_t i = 0; i < gw.size(); ++i) gw[i] += dw0[i];
  expect_close(DH.values(), gh, 1e-4, "dh");
  expect_close(DW.values(), gw, 1e-4, "dw");
}

TEST_F(OpTest, CrossEntropyRejectsTargetOutsideVocabulary) {
  HostTensor H(DType::F32, {2, 4}), W(DType::F32, {5, 4}), T(DType::I32, {2}, std::vector<int32_t>{0, 5});
  HostTensor L(DType::F32, {2});
  try {
    cpu.cross_entropy(H, W, T, L, Tensor(), Tensor(), 1.0f, 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cross_entropy: target 5 at position 1 is outside the vocabulary [0, 5)"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace llm::test
