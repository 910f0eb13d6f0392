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

// At bf16 (oneDNN's native kernels where the CPU has them) the dlogits are rounded to bf16 and
// the three GEMMs take bf16 operands, as on the GPU: the gradients still agree with float64 ones
// of the same (rounded) inputs within bf16's storage error, over several chunks and row blocks.
TEST_F(OpTest, CrossEntropyBf16GradientsMatchFloat64) {
  const int64_t N = 23, C = 33, V = 4099, chunk = 7;
  const auto h = rounded(randn(g, size_t(N * C)), DType::BF16), w = rounded(randn(g, size_t(V * C), 0.3f), DType::BF16);
  const auto tg = random_targets(g, N, V, true);
  const auto dw0 = randn(g, size_t(V * C), 1e-3f);
  const float scale = 0.61f;
  // float64: dlogits = scale (softmax - onehot); dh = dlogits w; dw = dw0 + dlogits^T h.
  const ref::Vec hd = ref::to_d(h), wd = ref::to_d(w);
  ref::Vec dl = ref::matmul(hd, false, wd, true, N, V, C);
  for (int64_t n = 0; n < N; ++n) {
    double* row = dl.data() + n * V;
    if (tg[size_t(n)] < 0) {
      std::fill(row, row + V, 0.0);
      continue;
    }
    const double mx = *std::max_element(row, row + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
    for (int64_t v = 0; v < V; ++v) row[v] = scale * std::exp(row[v] - mx) / sum;
    row[tg[size_t(n)]] -= scale;
  }
  const ref::Vec want_dh = ref::matmul(dl, false, wd, false, N, C, V);
  ref::Vec want_dw = ref::matmul(dl, true, hd, false, V, C, N);
  for (size_t i = 0; i < want_dw.size(); ++i) want_dw[i] += dw0[i];
  for (int64_t block : {int64_t(0), int64_t(1024)}) {
    HostTensor H(DType::BF16, {N, C}, h), W(DType::BF16, {V, C}, w), T(DType::I32, {N}, tg), L(DType::F32, {N});
    HostTensor DH(DType::BF16, {N, C}), DW(DType::F32, {V, C}, dw0);
    cpu.cross_entropy(H, W, T, L, DH, DW, scale, chunk, Tensor(), block);
    expect_close(L.values(), ref::cross_entropy(hd, wd, tg, N, C, V), 1e-5, "loss");
    expect_close(DH.values(), want_dh, 3e-2, "dh");
    expect_close(DW.values(), want_dw, 3e-2, "dw");
  }
}

// ZeRO-2's path: the forward keeps each row's (max, sum) and the output layer's dw is formed
// later in row ranges. The statistics agree with float64; the ranges' dw is the fused op's dw
// bitwise (same chunks, same GEMMs per element), so ZeRO-2 trains exactly as ZeRO-1.
TEST_F(OpTest, CrossEntropyStatsAndRowRangeDwEqualTheFusedOp) {
  // Blocks of 31 rows (OpenBLAS's GEMMs) and 1024 (oneDNN's, from 256 rows).
  for (const auto& [dt, block] :
       {std::pair<DType, int64_t>{DType::F32, 31}, {DType::BF16, 31}, {DType::F32, 1024}, {DType::BF16, 1024}}) {
    const int64_t N = 23, C = 33, V = 4099, chunk = 7;
    const auto h = rounded(randn(g, size_t(N * C)), dt), w = rounded(randn(g, size_t(V * C), 0.3f), dt);
    const auto tg = random_targets(g, N, V, true);
    const auto dw0 = randn(g, size_t(V * C));
    const float scale = 0.61f;
    HostTensor H(dt, {N, C}, h), W(dt, {V, C}, w), T(DType::I32, {N}, tg), L(DType::F32, {N});
    HostTensor DH(dt, {N, C}), DW(DType::F32, {V, C}, dw0), S(DType::F32, {N, 2});
    cpu.cross_entropy(H, W, T, L, DH, DW, scale, chunk, S, block);

    // The statistics: max_j l_j and sum_j exp(l_j - max) of float64 logits.
    const ref::Vec hd = ref::to_d(h), wd = ref::to_d(w);
    const std::vector<float> st = S.values();
    for (int64_t n = 0; n < N; ++n) {
      ref::Vec l(static_cast<size_t>(V));
      for (int64_t v = 0; v < V; ++v) {
        double d = 0;
        for (int64_t c = 0; c < C; ++c) d += hd[size_t(n * C + c)] * wd[size_t(v * C + c)];
        l[size_t(v)] = d;
      }
      const double mx = *std::max_element(l.begin(), l.end());
      double sum = 0;
      for (double x : l) sum += std::exp(x - mx);
      EXPECT_NEAR(st[size_t(2 * n)], mx, 1e-5 * std::max(1.0, std::abs(mx))) << dtype_name(dt) << " max of row " << n;
      EXPECT_NEAR(st[size_t(2 * n + 1)], sum, 1e-4 * sum) << dtype_name(dt) << " sum of row " << n;
    }

    // Ranges of whole blocks (one, many, the short end), each starting from the same dw0 rows.
    std::vector<float> ranged(dw0);
    const int64_t full = V / block * block;
    for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{0, block},
                                 {block, full / 2 / block * block},
                                 {full / 2 / block * block, full},
                                 {full, V}}) {
      const std::vector<float> part(dw0.begin() + r0 * C, dw0.begin() + r1 * C);
      HostTensor Wr(dt, {r1 - r0, C}, std::vector<float>(w.begin() + r0 * C, w.begin() + r1 * C));
      HostTensor DWr(DType::F32, {r1 - r0, C}, part);
      cpu.cross_entropy_dw(H, Wr, r0, T, S, DWr, scale, chunk, block);
      const std::vector<float> got = DWr.values();
      std::copy(got.begin(), got.end(), ranged.begin() + r0 * C);
    }
    const std::vector<float> fused = DW.values();
    int64_t differ = 0;
    for (size_t i = 0; i < fused.size(); ++i) differ += fused[i] != ranged[i];
    EXPECT_EQ(differ, 0) << dtype_name(dt) << ", blocks of " << block
                         << ": elements of the row ranges' dw that are not the fused dw bitwise";
  }
}

TEST_F(OpTest, CrossEntropyDwChecksItsArguments) {
  HostTensor H(DType::F32, {2, 4}), W(DType::F32, {5, 4}), T(DType::I32, {2}, std::vector<int32_t>{0, 1});
  HostTensor S(DType::F32, {2, 2}), DW(DType::F32, {5, 4}), Short(DType::F32, {2, 1});
  expect_error([&] { cpu.cross_entropy_dw(H, W, -1, T, S, DW, 1.0f, 0); },
               "cross_entropy_dw: row0 must be >= 0, got -1");
  expect_error([&] { cpu.cross_entropy_dw(H, W, 0, T, Short, DW, 1.0f, 0); }, "cross_entropy_dw: stats");
  expect_error([&] { cpu.cross_entropy_dw(H, W, 0, T, S, Short, 1.0f, 0); }, "cross_entropy_dw: dw_rows");
  expect_error([&] { cpu.cross_entropy_dw(H, W, 3, T, S, DW, 1.0f, 0, 2); },
               "cross_entropy_dw: row0 3 does not start a block of 2 rows");
}

TEST_F(OpTest, CrossEntropyRejectsTargetOutsideVocabulary) {
  HostTensor H(DType::F32, {2, 4}), W(DType::F32, {5, 4}), T(DType::I32, {2}, std::vector<int32_t>{0, 5});
  HostTensor L(DType::F32, {2});
  expect_error([&] { cpu.cross_entropy(H, W, T, L, Tensor(), Tensor(), 1.0f, 0); },
               "cross_entropy: target 5 at position 1 is outside the vocabulary [0, 5)");
}

}  // namespace
}  // namespace llm::test
