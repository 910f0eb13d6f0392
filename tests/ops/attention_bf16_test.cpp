// attention_forward / attention_backward at bf16 on the AVX512-BF16 kernels (attention_bf16.cpp;
// on CPUs without them both runs below take the widening path): the forward against float64, the gradients along random
// directions against float64 central differences, and every output against the widening fp32 path on the same inputs,
// with and without document positions, with q, k, v (and their gradients) as slices of one buffer.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

struct Bf16Case {
  int64_t B, Tq, Tk, Hq, Hkv, D;
  bool docs;  // document positions (then Tq == Tk)
};

// Random document lengths filling rows of T tokens: positions [B, T] restart at each document.
std::vector<int32_t> random_positions(std::mt19937_64& g, int64_t B, int64_t T) {
  std::vector<int32_t> p;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < T;) {
      const int64_t len = std::min<int64_t>(T - s, 1 + int64_t(g() % uint64_t(T / 2 + 1)));
      for (int64_t j = 0; j < len; ++j) p.push_back(int32_t(j));
      s += len;
    }
  }
  return p;
}

// q, k, v and the upstream gradient r as slices of one [B, T, Hq + 2 Hkv, D] bf16 buffer (the
// model's fused layout), and the three gradients as slices of another.
struct Fused {
  HostTensor qkv, r, dqkv;
  Tensor q, k, v, dq, dk, dv;
  Fused(const Bf16Case& c, const std::vector<float>& all, const std::vector<float>& rv)
      : qkv(DType::BF16, {c.B, c.Tq, c.Hq + 2 * c.Hkv, c.D}, all),
        r(DType::BF16, {c.B, c.Tq, c.Hq, c.D}, rv),
        dqkv(DType::BF16, {c.B, c.Tq, c.Hq + 2 * c.Hkv, c.D}) {
    const int64_t H = c.Hq + 2 * c.Hkv;
    q = qkv.t().slice(2, 0, c.Hq), k = qkv.t().slice(2, c.Hq, c.Hq + c.Hkv), v = qkv.t().slice(2, c.Hq + c.Hkv, H);
    dq = dqkv.t().slice(2, 0, c.Hq), dk = dqkv.t().slice(2, c.Hq, c.Hq + c.Hkv);
    dv = dqkv.t().slice(2, c.Hq + c.Hkv, H);
  }
};

// The dense values of a [B, T, H, D] slice.
std::vector<float> values_of(const Tensor& t) {
  std::vector<float> out;
  for (int64_t b = 0; b < t.size(0); ++b)
    for (int64_t s = 0; s < t.size(1); ++s)
      for (int64_t h = 0; h < t.size(2); ++h)
        for (int64_t d = 0; d < t.size(3); ++d) {
          const auto* p = t.ptr<uint16_t>() + b * t.stride(0) + s * t.stride(1) + h * t.stride(2) + d;
          out.push_back(bf16_bits_to_f32(*p));
        }
  return out;
}

class AttentionBf16Test : public OpTest, public ::testing::WithParamInterface<Bf16Case> {};
using AttentionBf16ForwardTest = AttentionBf16Test;

TEST_P(AttentionBf16ForwardTest, MatchesFloat64AndTheWideningPath) {
  const Bf16Case c = GetParam();
  const auto q = rounded(randn(g, size_t(c.B * c.Tq * c.Hq * c.D)), DType::BF16);
  const auto k = rounded(randn(g, size_t(c.B * c.Tk * c.Hkv * c.D)), DType::BF16);
  const auto v = rounded(randn(g, size_t(c.B * c.Tk * c.Hkv * c.D)), DType::BF16);
  HostTensor Q(DType::BF16, {c.B, c.Tq, c.Hq, c.D}, q), K(DType::BF16, {c.B, c.Tk, c.Hkv, c.D}, k),
      V(DType::BF16, {c.B, c.Tk, c.Hkv, c.D}, v);
  ref::Vec lse;
  const auto want = ref::attention(ref::to_d(q), ref::to_d(k), ref::to_d(v), c.B, c.Tq, c.Tk, c.Hq, c.Hkv, c.D, &lse);
  std::vector<float> out[2];
  for (const bool native : {true, false}) {
    SCOPED_TRACE(native ? "vdpbf16ps kernels" : "widened to fp32");
    cpu.set_onednn_bf16(native);
    HostTensor O(DType::BF16, {c.B, c.Tq, c.Hq, c.D}), L(DType::F32, {c.B, c.Hq, c.Tq});
    cpu.attention_forward(Q, K, V, O, L);
    out[native] = O.values();
    // bf16 output plus (native) bf16 probabilities: the CUDA tests' bounds for attention in
    // bf16, norm error 1e-2 and elements within 5e-2 of the rms.
    EXPECT_LE(norm_rel_err(out[native], want), 1e-2) << "out: norm-relative error";
    expect_close(out[native], want, 5e-2, "out");
    expect_close(L.values(), lse, 1e-5, "lse");
  }
  EXPECT_LE(norm_rel_err(out[1], out[0]), 6e-3) << "the two paths";
}

TEST_P(AttentionBf16Test, GradientsMatchFloat64DirectionsAndTheWideningPath) {
  const Bf16Case c = GetParam();
  const int64_t H = c.Hq + 2 * c.Hkv;
  const auto all = rounded(randn(g, size_t(c.B * c.Tq * H * c.D)), DType::BF16);
  const auto r = rounded(randn(g, size_t(c.B * c.Tq * c.Hq * c.D)), DType::BF16);
  const std::vector<int32_t> pos = c.docs ? random_positions(g, c.B, c.Tq) : std::vector<int32_t>{};
  HostTensor P(DType::I32, {c.B, c.Tq}, c.docs ? pos : std::vector<int32_t>(size_t(c.B * c.Tq)));
  const Tensor positions = c.docs ? P.t() : Tensor();
  std::vector<float> grads[2][3];
  for (const bool native : {true, false}) {
    cpu.set_onednn_bf16(native);
    Fused f(c, all, r);
    HostTensor O(DType::BF16, {c.B, c.Tq, c.Hq, c.D}), L(DType::F32, {c.B, c.Hq, c.Tq});
    cpu.attention_forward(f.q, f.k, f.v, O, L, positions);
    cpu.attention_backward(f.r, f.q, f.k, f.v, O, L, f.dq, f.dk, f.dv, positions);
    grads[native][0] = values_of(f.dq), grads[native][1] = values_of(f.dk), grads[native][2] = values_of(f.dv);
  }
  const char* names[3] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_LE(norm_rel_err(grads[1][i], grads[0][i]), 1e-2) << names[i] << ": the two paths";
  }
  if (c.docs) return;  // the float64 reference below has no documents; the widening path has
  // Along random directions against float64 central differences: measured at most 1.7e-4 of
  // the scale over these shapes.
  Fused f(c, all, r);
  ref::Vec x[3] = {ref::to_d(values_of(f.q)), ref::to_d(values_of(f.k)), ref::to_d(values_of(f.v))};
  const ref::Vec rd = ref::to_d(r);
  for (int which = 0; which < 3; ++which) {
    for (int trial = 0; trial < 2; ++trial) {
      const auto d = ref::attention_directional(x, rd, which, grads[1][which], randn(g, x[which].size()), c.B, c.Tq,
                                                c.Hq, c.Hkv, c.D);
      EXPECT_LE(std::abs(d.analytic - d.fd), 2e-3 * d.scale)
          << names[which] << ": analytic " << d.analytic << ", fd " << d.fd;
    }
  }
}

// Training shapes (Tq == Tk), for the forward and the gradients.
const auto kTrainingShapes =
    ::testing::Values(Bf16Case{2, 150, 150, 4, 2, 32, false},   // 3 query blocks, the last of 22
                      Bf16Case{1, 70, 70, 7, 1, 64, false},     // GQA 7
                      Bf16Case{3, 33, 33, 2, 2, 128, true},     // documents, D 128
                      Bf16Case{1, 129, 129, 14, 2, 64, true});  // Qwen2.5-0.5B's heads
INSTANTIATE_TEST_SUITE_P(Training, AttentionBf16Test, kTrainingShapes);
INSTANTIATE_TEST_SUITE_P(Training, AttentionBf16ForwardTest, kTrainingShapes);
// Prompts after a KV cache (Tq < Tk), forward only.
INSTANTIATE_TEST_SUITE_P(AfterACache, AttentionBf16ForwardTest,
                         ::testing::Values(Bf16Case{2, 31, 100, 6, 3, 8, false},
                                           Bf16Case{1, 65, 4099, 2, 1, 16, false}));

}  // namespace
}  // namespace llm::test
