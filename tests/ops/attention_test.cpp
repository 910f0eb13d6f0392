// attention_forward / attention_backward: forward against a float64 loop; gradients by finite
// differences (every coordinate at small sizes, random directions across query blocks).
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

struct AttnCase {
  int64_t B, Tq, Tk, Hq, Hkv, D;
  DType dt;
};

class AttentionForwardTest : public OpTest, public ::testing::WithParamInterface<AttnCase> {};

TEST_P(AttentionForwardTest, MatchesFloat64) {
  const AttnCase c = GetParam();
  const auto q = rounded(randn(g, size_t(c.B * c.Tq * c.Hq * c.D)), c.dt);
  const auto k = rounded(randn(g, size_t(c.B * c.Tk * c.Hkv * c.D)), c.dt);
  const auto v = rounded(randn(g, size_t(c.B * c.Tk * c.Hkv * c.D)), c.dt);
  HostTensor Q(c.dt, {c.B, c.Tq, c.Hq, c.D}, q), K(c.dt, {c.B, c.Tk, c.Hkv, c.D}, k),
      V(c.dt, {c.B, c.Tk, c.Hkv, c.D}, v);
  ref::Vec lse;
  const auto want = ref::attention(ref::to_d(q), ref::to_d(k), ref::to_d(v), c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, &lse);
  // Both score-GEMM paths: oneDNN's sgemm (AVX-512 CPUs) and OpenBLAS's.
  for (bool onednn : {true, false}) {
    SCOPED_TRACE(onednn ? "oneDNN sgemm" : "OpenBLAS sgemm");
    cpu.set_onednn_f32(onednn);
    HostTensor O(c.dt, {c.B, c.Tq, c.Hq, c.D}), L(DType::F32, {c.B, c.Hq, c.Tq});
    cpu.attention_forward(Q, K, V, O, L);
    expect_close(O.values(), want, std::max(storage_tol(c.dt), 1e-5), "out");
    expect_close(L.values(), lse, 1e-5, "lse");
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionForwardTest,
                         ::testing::Values(AttnCase{1, 1, 1, 1, 1, 2, DType::F32},       // one token
                                           AttnCase{2, 17, 17, 7, 1, 64, DType::F32},    // GQA 7
                                           AttnCase{1, 300, 300, 4, 2, 16, DType::F32},  // several query blocks
                                           AttnCase{2, 3, 31, 6, 3, 8, DType::F32},      // queries after a cache
                                           AttnCase{1, 1, 129, 14, 2, 64, DType::F32},   // one decode step
                                           AttnCase{1, 33, 33, 2, 2, 128, DType::BF16},
                                           AttnCase{2, 31, 31, 4, 1, 64, DType::F16}));

TEST_F(OpTest, AttentionReadsFusedQkvBuffer) {
  // q, k, v as head slices of one [B, T, Hq + 2 Hkv, D] buffer, the model's layout.
  const int64_t B = 2, T = 13, Hq = 4, Hkv = 2, D = 8, H = Hq + 2 * Hkv;
  const auto all = randn(g, size_t(B * T * H * D));
  HostTensor QKV(DType::F32, {B, T, H, D}, all), O(DType::F32, {B, T, Hq, D}), L(DType::F32, {B, Hq, T});
  const Tensor q = QKV.t().slice(2, 0, Hq), k = QKV.t().slice(2, Hq, Hq + Hkv), v = QKV.t().slice(2, Hq + Hkv, H);
  cpu.attention_forward(q, k, v, O, L);
  ref::Vec qd, kd, vd;
  for (int64_t bt = 0; bt < B * T; ++bt)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t d = 0; d < D; ++d)
        (h < Hq ? qd : h < Hq + Hkv ? kd : vd).push_back(all[size_t((bt * H + h) * D + d)]);
  expect_close(O.values(), ref::attention(qd, kd, vd, B, T, T, Hq, Hkv, D), 1e-5, "out");
}

struct Grads {
  std::vector<float> dq, dk, dv;
};

Grads run_backward(CpuBackend& cpu, const std::vector<float>& q, const std::vector<float>& k,
                   const std::vector<float>& v, const std::vector<float>& r, int64_t B, int64_t T, int64_t Hq,
                   int64_t Hkv, int64_t D) {
  HostTensor Q(DType::F32, {B, T, Hq, D}, q), K(DType::F32, {B, T, Hkv, D}, k), V(DType::F32, {B, T, Hkv, D}, v);
  HostTensor O(DType::F32, {B, T, Hq, D}), L(DType::F32, {B, Hq, T}), R(DType::F32, {B, T, Hq, D}, r);
  HostTensor DQ(DType::F32, {B, T, Hq, D}), DK(DType::F32, {B, T, Hkv, D}), DV(DType::F32, {B, T, Hkv, D});
  cpu.attention_forward(Q, K, V, O, L);
  cpu.attention_backward(R, Q, K, V, O, L, DQ, DK, DV);
  return {DQ.values(), DK.values(), DV.values()};
}

TEST_F(OpTest, AttentionBackwardMatchesFiniteDifferences) {
  for (auto [B, T, Hq, Hkv, D] :
       {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 1, 2}, {2, 9, 4, 2, 8}, {1, 7, 7, 1, 6}}) {
    const auto q = randn(g, size_t(B * T * Hq * D)), k = randn(g, size_t(B * T * Hkv * D));
    const auto v = randn(g, size_t(B * T * Hkv * D)), r = randn(g, size_t(B * T * Hq * D));
    const Grads got = run_backward(cpu, q, k, v, r, B, T, Hq, Hkv, D);
    const ref::Vec qd = ref::to_d(q), kd = ref::to_d(k), vd = ref::to_d(v), rd = ref::to_d(r);
    auto f = [&](const ref::Vec& a, const ref::Vec& b, const ref::Vec& c) {
      return ref::dot(rd, ref::attention(a, b, c, B, T, T, Hq, Hkv, D));
    };
    // With one key, dq and dk are exactly zero and fp32 rounding leaves ~1e-8: judge every entry
    // against the O(1) scale of unit-normal inputs (floor 1e-3) rather than its own size.
    expect_close(got.dq, ref::finite_diff([&](const ref::Vec& x) { return f(x, kd, vd); }, qd), 1e-4, "dq", 1e-3);
    expect_close(got.dk, ref::finite_diff([&](const ref::Vec& x) { return f(qd, x, vd); }, kd), 1e-4, "dk", 1e-3);
    expect_close(got.dv, ref::finite_diff([&](const ref::Vec& x) { return f(qd, kd, x); }, vd), 1e-4, "dv", 1e-3);
  }
}

TEST_F(OpTest, AttentionBackwardAcrossQueryBlocksMatchesDirectionalDerivatives) {
  // T = 300 spans three query blocks; every coordinate would be too slow, so check the
  // derivative along random directions u: (f(x + h u) - f(x - h u)) / 2h = <grad, u>.
  const int64_t B = 1, T = 300, Hq = 4, Hkv = 2, D = 16;
  const auto q = randn(g, size_t(B * T * Hq * D)), k = randn(g, size_t(B * T * Hkv * D));
  const auto v = randn(g, size_t(B * T * Hkv * D)), r = randn(g, size_t(B * T * Hq * D));
  const ref::Vec rd = ref::to_d(r);
  ref::Vec x[3] = {ref::to_d(q), ref::to_d(k), ref::to_d(v)};
  // Both score-GEMM paths: oneDNN's sgemm (AVX-512 CPUs) and OpenBLAS's.
  for (const bool onednn : {true, false}) {
    SCOPED_TRACE(onednn ? "oneDNN sgemm" : "OpenBLAS sgemm");
    cpu.set_onednn_f32(onednn);
    const Grads got = run_backward(cpu, q, k, v, r, B, T, Hq, Hkv, D);
    const std::vector<float>* grads[3] = {&got.dq, &got.dk, &got.dv};
    for (int which = 0; which < 3; ++which) {
      for (int trial = 0; trial < 2; ++trial) {
        const auto d =
            ref::attention_directional(x, rd, which, *grads[which], randn(g, x[which].size()), B, T, Hq, Hkv, D);
        EXPECT_LE(std::abs(d.analytic - d.fd), 1e-4 * d.scale)
            << "input " << which << ": analytic " << d.analytic << ", fd " << d.fd;
      }
    }
  }
}

TEST_F(OpTest, AttentionRejectsIndivisibleHeads) {
  HostTensor Q(DType::F32, {1, 2, 3, 4}), K(DType::F32, {1, 2, 2, 4}), V(DType::F32, {1, 2, 2, 4});
  HostTensor O(DType::F32, {1, 2, 3, 4}), L(DType::F32, {1, 3, 2});
  try {
    cpu.attention_forward(Q, K, V, O, L);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention_forward: 3 query heads are not a multiple of 2 kv heads"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace llm::test
