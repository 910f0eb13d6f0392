// embedding_forward / embedding_backward against direct indexing and finite differences.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

TEST_F(OpTest, EmbeddingForwardGathersRows) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    const int64_t V = 37, C = 33, N = 29;
    std::uniform_int_distribution<int32_t> id(0, int32_t(V - 1));
    std::vector<int32_t> ids(static_cast<size_t>(N));
    for (auto& i : ids) i = id(g);
    const auto table = rounded(randn(g, size_t(V * C)), dt);
    HostTensor Ids(DType::I32, {N}, ids), Table(dt, {V, C}, table), Out(DType::F32, {N, C});
    cpu.embedding_forward(Ids, Table, Out);
    ref::Vec want(static_cast<size_t>(N * C));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) want[size_t(n * C + c)] = table[size_t(ids[size_t(n)] * C + c)];
    expect_close(Out.values(), want, 0.0, "out");
  }
}

TEST_F(OpTest, EmbeddingBackwardMatchesFiniteDifferences) {
  const int64_t V = 11, C = 70, N = 40;  // more tokens than rows: repeated ids accumulate
  std::uniform_int_distribution<int32_t> id(0, int32_t(V - 1));
  std::vector<int32_t> ids(static_cast<size_t>(N));
  for (auto& i : ids) i = id(g);
  const auto table = randn(g, size_t(V * C)), r = randn(g, size_t(N * C)), d0 = randn(g, size_t(V * C));
  HostTensor Ids(DType::I32, {N}, ids), Dout(DType::F32, {N, C}, r), Dt(DType::F32, {V, C}, d0);
  cpu.embedding_backward(Ids, Dout, Dt);
  const ref::Vec rd = ref::to_d(r);
  auto gt = ref::finite_diff(
      [&](const ref::Vec& t) {
        double s = 0;
        for (int64_t n = 0; n < N; ++n)
          for (int64_t c = 0; c < C; ++c) s += rd[size_t(n * C + c)] * t[size_t(ids[size_t(n)] * C + c)];
        return s;
      },
      ref::to_d(table));
  for (size_t i = 0; i < gt.size(); ++i) gt[i] += d0[i];
  expect_close(Dt.values(), gt, 1e-5, "dtable");
}

TEST_F(OpTest, EmbeddingRejectsOutOfRangeIds) {
  HostTensor Ids(DType::I32, {3}, std::vector<int32_t>{1, 9, 2}), Table(DType::F32, {5, 4}), Out(DType::F32, {3, 4});
  try {
    cpu.embedding_forward(Ids, Table, Out);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("embedding_forward: token id 9 at position 1 is outside the vocabulary [0, 5)"),
        std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace llm::test
