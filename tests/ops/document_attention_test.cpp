// Document masking (packed sequences): attention_forward / attention_backward and rope with
// per-token positions. A row of several documents must give, for each document, what the document
// gives alone: the forward and rope against float64 loops run per document, the gradients against
// the plain causal op (itself checked by finite differences) run per document.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

// Random document lengths filling rows of T tokens; positions [B, T] restart at each document.
struct Packing {
  std::vector<int32_t> positions;
  std::vector<std::vector<std::pair<int64_t, int64_t>>> docs;  // per row: [start, end)
};
Packing random_packing(std::mt19937_64& g, int64_t B, int64_t T) {
  Packing p;
  p.docs.resize(size_t(B));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < T;) {
      const int64_t len = std::min<int64_t>(T - s, 1 + int64_t(g() % uint64_t(T / 2 + 1)));
      p.docs[size_t(b)].push_back({s, s + len});
      for (int64_t j = 0; j < len; ++j) p.positions.push_back(int32_t(j));
      s += len;
    }
  }
  return p;
}

// Tokens [s, e) of row b of x [B, T, H, D] as a [1, e - s, H, D] vector, and back.
template <class V>
V rows_of(const V& x, int64_t T, int64_t H, int64_t D, int64_t b, int64_t s, int64_t e) {
  const auto from = (b * T + s) * H * D, to = (b * T + e) * H * D;
  return V(x.begin() + from, x.begin() + to);
}
template <class V, class W>
void put_rows(V& x, const W& part, int64_t T, int64_t H, int64_t D, int64_t b, int64_t s) {
  for (size_t i = 0; i < part.size(); ++i) x[size_t((b * T + s) * H * D) + i] = part[i];
}

struct DocCase {
  int64_t B, T, Hq, Hkv, D;
};

class DocumentAttentionTest : public OpTest, public ::testing::WithParamInterface<DocCase> {};

TEST_P(DocumentAttentionTest, EachDocumentAttendsOnlyToItself) {
  const DocCase c = GetParam();
  const Packing pk = random_packing(g, c.B, c.T);
  const auto q = randn(g, size_t(c.B * c.T * c.Hq * c.D));
  const auto k = randn(g, size_t(c.B * c.T * c.Hkv * c.D));
  const auto v = randn(g, size_t(c.B * c.T * c.Hkv * c.D));
  const auto r = randn(g, q.size());  // upstream gradient
  HostTensor Q(DType::F32, {c.B, c.T, c.Hq, c.D}, q), K(DType::F32, {c.B, c.T, c.Hkv, c.D}, k),
      V(DType::F32, {c.B, c.T, c.Hkv, c.D}, v), R(DType::F32, {c.B, c.T, c.Hq, c.D}, r);
  HostTensor O(DType::F32, {c.B, c.T, c.Hq, c.D}), L(DType::F32, {c.B, c.Hq, c.T});
  HostTensor P(DType::I32, {c.B, c.T}, pk.positions);
  cpu.attention_forward(Q, K, V, O, L, P);
  HostTensor dQ(DType::F32, {c.B, c.T, c.Hq, c.D}), dK(DType::F32, {c.B, c.T, c.Hkv, c.D}),
      dV(DType::F32, {c.B, c.T, c.Hkv, c.D});
  cpu.attention_backward(R, Q, K, V, O, L, dQ, dK, dV, P);

  ref::Vec want_o(q.size()), want_lse(size_t(c.B * c.Hq * c.T));
  std::vector<float> want_dq(q.size()), want_dk(k.size()), want_dv(v.size());
  for (int64_t b = 0; b < c.B; ++b) {
    for (const auto& [s, e] : pk.docs[size_t(b)]) {
      const int64_t n = e - s;
      const auto qs = rows_of(q, c.T, c.Hq, c.D, b, s, e), ks = rows_of(k, c.T, c.Hkv, c.D, b, s, e),
                 vs = rows_of(v, c.T, c.Hkv, c.D, b, s, e), rs = rows_of(r, c.T, c.Hq, c.D, b, s, e);
      ref::Vec lse;
      put_rows(want_o, ref::attention(ref::to_d(qs), ref::to_d(ks), ref::to_d(vs), 1, n, n, c.Hq, c.Hkv, c.D, &lse),
               c.T, c.Hq, c.D, b, s);
      for (int64_t h = 0; h < c.Hq; ++h)
        for (int64_t t = 0; t < n; ++t) want_lse[size_t((b * c.Hq + h) * c.T + s + t)] = lse[size_t(h * n + t)];
      // The same document alone through the plain causal op, forward and backward.
      HostTensor q1(DType::F32, {1, n, c.Hq, c.D}, qs), k1(DType::F32, {1, n, c.Hkv, c.D}, ks),
          v1(DType::F32, {1, n, c.Hkv, c.D}, vs), r1(DType::F32, {1, n, c.Hq, c.D}, rs);
      HostTensor o1(DType::F32, {1, n, c.Hq, c.D}), l1(DType::F32, {1, c.Hq, n});
      HostTensor dq1(DType::F32, {1, n, c.Hq, c.D}), dk1(DType::F32, {1, n, c.Hkv, c.D}),
          dv1(DType::F32, {1, n, c.Hkv, c.D});
      cpu.attention_forward(q1, k1, v1, o1, l1);
      cpu.attention_backward(r1, q1, k1, v1, o1, l1, dq1, dk1, dv1);
      put_rows(want_dq, dq1.values(), c.T, c.Hq, c.D, b, s);
      put_rows(want_dk, dk1.values(), c.T, c.Hkv, c.D, b, s);
      put_rows(want_dv, dv1.values(), c.T, c.Hkv, c.D, b, s);
    }
  }
  expect_close(O.values(), want_o, 1e-5, "out");
  expect_close(L.values(), want_lse, 1e-5, "lse");
  expect_close(dQ.values(), ref::to_d(want_dq), 1e-5, "dq");
  expect_close(dK.values(), ref::to_d(want_dk), 1e-5, "dk");
  expect_close(dV.values(), ref::to_d(want_dv), 1e-5, "dv");
}

INSTANTIATE_TEST_SUITE_P(Shapes, DocumentAttentionTest,
                         ::testing::Values(DocCase{2, 41, 4, 2, 6},    // odd head_dim, GQA 2
                                           DocCase{1, 300, 7, 1, 16},  // documents across query blocks, GQA 7
                                           DocCase{3, 9, 2, 2, 2}));   // tiny

TEST_F(OpTest, RopeAtPerTokenPositionsEqualsEachDocumentFromZero) {
  const int64_t B = 2, T = 29, H = 3, D = 10, half = D / 2;
  const double theta = 10000.0;
  const Packing pk = random_packing(g, B, T);
  const auto x = randn(g, size_t(B * T * H * D));
  std::vector<float> cs(size_t(T * half)), sn(size_t(T * half));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double ang = double(t) * std::pow(theta, -2.0 * double(i) / double(D));
      cs[size_t(t * half + i)] = float(std::cos(ang));
      sn[size_t(t * half + i)] = float(std::sin(ang));
    }
  HostTensor X(DType::F32, {B, T, H, D}, x), C(DType::F32, {T, half}, cs), S(DType::F32, {T, half}, sn);
  HostTensor P(DType::I32, {B, T}, pk.positions);
  cpu.rope(X, C, S, 0, false, P);
  ref::Vec want(x.size());
  for (int64_t b = 0; b < B; ++b)
    for (const auto& [s, e] : pk.docs[size_t(b)])
      put_rows(want, ref::rope(ref::to_d(rows_of(x, T, H, D, b, s, e)), 1, e - s, H, D, 0, theta), T, H, D, b, s);
  expect_close(X.values(), want, 1e-5, "rope");
  cpu.rope(X, C, S, 0, true, P);  // the inverse restores x
  expect_close(X.values(), ref::to_d(x), 1e-5, "inverse");
}

TEST_F(OpTest, DocumentPositionsAreChecked) {
  HostTensor Q(DType::F32, {1, 4, 2, 2}), K(DType::F32, {1, 4, 1, 2}), O(DType::F32, {1, 4, 2, 2});
  HostTensor L(DType::F32, {1, 2, 4});
  HostTensor bad_shape(DType::I32, {1, 3}, std::vector<int32_t>{0, 1, 2});
  try {
    cpu.attention_forward(Q, K, K, O, L, bad_shape);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("attention_forward: positions"), std::string::npos) << e.what();
  }
  HostTensor Kc(DType::F32, {1, 6, 1, 2}), P(DType::I32, {1, 4}, std::vector<int32_t>{0, 1, 0, 1});
  try {
    cpu.attention_forward(Q, Kc, Kc, O, L, P);  // queries after a cache: no document masking
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("as many queries as keys"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llm::test
