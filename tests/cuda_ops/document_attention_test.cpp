// Document masking on the CUDA backend (under the emulator in CI): attention_forward /
// attention_backward and rope with per-token positions against the CPU ops (themselves checked
// per document against float64 loops, tests/ops/document_attention_test.cpp), fp32 within 1e-5,
// f16/bf16 with the half tolerance. Documents cross the kernels' 16/32-row tiles, and rows begin
// with documents that mask whole key tiles.
#include "cuda_op_test.h"

namespace llm::test {
namespace {

struct DocCase {
  int64_t B, T, Hq, Hkv, D;
  DType dt;
};

// positions [B, T]: random document lengths, some longer than a tile.
std::vector<int32_t> random_positions(std::mt19937_64& g, int64_t B, int64_t T) {
  std::vector<int32_t> p;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < T;) {
      const int64_t len = std::min<int64_t>(T - s, 1 + int64_t(g() % 40));
      for (int64_t j = 0; j < len; ++j) p.push_back(int32_t(j));
      s += len;
    }
  }
  return p;
}

class CudaDocumentAttention : public CudaOpTest, public ::testing::WithParamInterface<DocCase> {};

TEST_P(CudaDocumentAttention, MatchesTheCpuOp) {
  const DocCase c = GetParam();
  const auto pos = random_positions(g, c.B, c.T);
  HostTensor P(DType::I32, {c.B, c.T}, pos);
  HostTensor Q(c.dt, {c.B, c.T, c.Hq, c.D}, randn(g, size_t(c.B * c.T * c.Hq * c.D))),
      K(c.dt, {c.B, c.T, c.Hkv, c.D}, randn(g, size_t(c.B * c.T * c.Hkv * c.D))),
      V(c.dt, {c.B, c.T, c.Hkv, c.D}, randn(g, size_t(c.B * c.T * c.Hkv * c.D))),
      R(c.dt, {c.B, c.T, c.Hq, c.D}, randn(g, size_t(c.B * c.T * c.Hq * c.D)));
  HostTensor O(c.dt, {c.B, c.T, c.Hq, c.D}), L(DType::F32, {c.B, c.Hq, c.T});
  HostTensor dQ(c.dt, {c.B, c.T, c.Hq, c.D}), dK(c.dt, {c.B, c.T, c.Hkv, c.D}), dV(c.dt, {c.B, c.T, c.Hkv, c.D});
  cpu.attention_forward(Q, K, V, O, L, P);
  cpu.attention_backward(R, Q, K, V, O, L, dQ, dK, dV, P);

  OwnedTensor q = to_device(Q), k = to_device(K), v = to_device(V), r = to_device(R), p = to_device(P);
  OwnedTensor o = make(c.dt, O.t()), l = make(DType::F32, L.t());
  OwnedTensor dq = make(c.dt, dQ.t()), dk = make(c.dt, dK.t()), dv = make(c.dt, dV.t());
  cuda.attention_forward(q, k, v, o, l, p);
  cuda.attention_backward(r, q, k, v, o, l, dq, dk, dv, p);
  if (c.dt == DType::F32) {
    expect_near_rel(values(o), O.values(), 1e-5, "out");
    expect_near_rel(values(l), L.values(), 1e-5, "lse");
    expect_near_rel(values(dq), dQ.values(), 1e-5, "dq");
    expect_near_rel(values(dk), dK.values(), 1e-5, "dk");
    expect_near_rel(values(dv), dV.values(), 1e-5, "dv");
  } else {
    expect_near_half(values(o), O.values(), "out");
    expect_near_rel(values(l), L.values(), 1e-2, "lse");
    expect_near_half(values(dq), dQ.values(), "dq");
    expect_near_half(values(dk), dK.values(), "dk");
    expect_near_half(values(dv), dV.values(), "dv");
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaDocumentAttention,
                         ::testing::Values(DocCase{2, 70, 4, 2, 6, DType::F32},    // odd head_dim, GQA 2
                                           DocCase{1, 97, 7, 1, 16, DType::F32},   // GQA 7 (split parts)
                                           DocCase{1, 45, 2, 1, 64, DType::BF16},  // would take tensor cores
                                           DocCase{1, 1, 2, 2, 8, DType::F16}));   // one token

TEST_F(CudaOpTest, RopeAtPerTokenPositionsMatchesTheCpuOp) {
  const int64_t B = 2, T = 37, H = 3, D = 10, half = D / 2;
  const auto pos = random_positions(g, B, T);
  std::vector<float> cs(size_t(T * half)), sn(size_t(T * half));
  for (size_t i = 0; i < cs.size(); ++i) cs[i] = std::cos(0.37f * float(i)), sn[i] = std::sin(0.37f * float(i));
  HostTensor X(DType::F32, {B, T, H, D}, randn(g, size_t(B * T * H * D))), C(DType::F32, {T, half}, cs),
      S(DType::F32, {T, half}, sn), P(DType::I32, {B, T}, pos);
  OwnedTensor x = to_device(X), c = to_device(C), s = to_device(S), p = to_device(P);
  cpu.rope(X, C, S, 0, false, P);
  cuda.rope(x, c, s, 0, false, p);
  expect_near_rel(values(x), X.values(), 1e-6, "rope");
  cpu.rope(X, C, S, 0, true, P);
  cuda.rope(x, c, s, 0, true, p);
  expect_near_rel(values(x), X.values(), 1e-6, "inverse rope");
}

}  // namespace
}  // namespace llm::test
