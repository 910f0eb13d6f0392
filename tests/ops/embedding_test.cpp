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

// ZeRO-2's buckets: the rows of a range receive exactly what the whole-table op gives them
// (the same additions in the same order), other ids are skipped, and every id is still checked.
TEST_F(OpTest, EmbeddingBackwardRowsEqualTheWholeTable) {
  const int64_t V = 37, C = 33, N = 101;
  std::uniform_int_distribution<int32_t> id(0, int32_t(V - 1));
  std::vector<int32_t> ids(static_cast<size_t>(N));
  for (auto& i : ids) i = id(g);
  const auto r = randn(g, size_t(N * C)), d0 = randn(g, size_t(V * C));
  HostTensor Ids(DType::I32, {N}, ids), Dout(DType::F32, {N, C}, r), Whole(DType::F32, {V, C}, d0);
  cpu.embedding_backward(Ids, Dout, Whole);
  std::vector<float> ranged(d0);
  for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{0, 1}, {1, 17}, {17, 36}, {36, 37}}) {
    HostTensor Rows(DType::F32, {r1 - r0, C}, std::vector<float>(d0.begin() + r0 * C, d0.begin() + r1 * C));
    cpu.embedding_backward_rows(Ids, Dout, Rows, r0, V);
    const std::vector<float> got = Rows.values();
    std::copy(got.begin(), got.end(), ranged.begin() + r0 * C);
  }
  EXPECT_EQ(ranged, Whole.values());

  HostTensor Bad(DType::I32, {2}, std::vector<int32_t>{3, 40}), Rows(DType::F32, {4, C}), Two(DType::F32, {2, C});
  expect_error([&] { cpu.embedding_backward_rows(Bad, Two, Rows, 0, V); },
               "embedding_backward: token id 40 at position 1 is outside the vocabulary [0, 37)");
  expect_error([&] { cpu.embedding_backward_rows(Ids, Dout, Rows, 35, V); },
               "embedding_backward: rows [35, 39) are not rows of a table of 37");
}

TEST_F(OpTest, EmbeddingRejectsOutOfRangeIds) {
  HostTensor Ids(DType::I32, {3}, std::vector<int32_t>{1, 9, 2}), Table(DType::F32, {5, 4}), Out(DType::F32, {3, 4});
  expect_error([&] { cpu.embedding_forward(Ids, Table, Out); },
               "embedding_forward: token id 9 at position 1 is outside the vocabulary [0, 5)");
}

}  // namespace
}  // namespace llm::test
