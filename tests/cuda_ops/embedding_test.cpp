// embedding_forward / embedding_backward on the CUDA backend against the CPU ops: each dtype,
// widths around the 8-element chunk, many repeated ids (the backward's runs), token counts past
// the 2048-key shared-memory tile of the sort (global merge steps), bit-for-bit equality of the
// backward (same order of additions), and the id range check.
#include <cstring>

#include "pair_util.h"

namespace llm::test {
namespace {

using CudaEmbedding = CudaPairTest;

std::vector<int32_t> random_ids(std::mt19937_64& g, int64_t n, int64_t vocab) {
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& i : ids) i = d(g);
  return ids;
}

TEST_F(CudaEmbedding, ForwardMatchesCpu) {
  for (DType tt : float_dtypes()) {
    for (DType ot : float_dtypes()) {
      for (int64_t C : {1, 33, 64}) {
        const int64_t V = 50, N = 100;
        const std::vector<int32_t> idv = random_ids(g, N, V);
        HostTensor ids(DType::I32, {N}, idv);
        OwnedTensor dids = to_device(ids);
        Pair table = rand_pair(tt, {V, C}), out = rand_pair(ot, {N, C});
        cpu.embedding_forward(ids, table.h, out.h);
        cuda.embedding_forward(dids, table.d, out.d);
        expect_equal(out, cat("embedding_forward ", dtype_name(tt), " -> ", dtype_name(ot), " C ", C));
      }
    }
  }
}

TEST_F(CudaEmbedding, BackwardMatchesCpuBitwise) {
  for (DType dt : float_dtypes()) {
    for (auto [V, N, C] :
         {std::tuple<int64_t, int64_t, int64_t>{7, 300, 33}, {1000, 1, 64}, {40, 3000, 9}, {5000, 2100, 8}}) {
      const std::vector<int32_t> idv = random_ids(g, N, V);
      HostTensor ids(DType::I32, {N}, idv);
      OwnedTensor dids = to_device(ids);
      Pair dout = rand_pair(dt, {N, C}), dtable = rand_pair(DType::F32, {V, C});
      cpu.embedding_backward(ids, dout.h, dtable.h);
      cuda.embedding_backward(dids, dout.d, dtable.d);
      // Each row adds its tokens in token order on both backends: the same bits.
      expect_equal(dtable, cat("embedding_backward ", dtype_name(dt), " V ", V, " N ", N, " C ", C));
    }
  }
}

// ZeRO-2's row buckets: a range of rows gets the CPU's bits, other ids are skipped.
TEST_F(CudaEmbedding, BackwardRowsMatchCpuBitwise) {
  const int64_t V = 1000, N = 2100, C = 33;
  HostTensor ids(DType::I32, {N}, random_ids(g, N, V));
  OwnedTensor dids = to_device(ids);
  Pair dout = rand_pair(DType::BF16, {N, C});
  for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{0, 1}, {1, 313}, {313, 999}, {999, 1000}}) {
    Pair rows = rand_pair(DType::F32, {r1 - r0, C});
    cpu.embedding_backward_rows(ids, dout.h, rows.h, r0, V);
    cuda.embedding_backward_rows(dids, dout.d, rows.d, r0, V);
    expect_equal(rows, cat("embedding_backward rows [", r0, ", ", r1, ")"));
  }
}

TEST_F(CudaEmbedding, BackwardStridedDout) {
  // dout as columns [2, 2 + C) of [N, C + 4]: unaligned rows.
  const int64_t V = 11, N = 77, C = 20;
  HostTensor ids(DType::I32, {N}, random_ids(g, N, V));
  OwnedTensor dids = to_device(ids);
  Pair dout = rand_pair(DType::BF16, {N, C + 4}), dtable = rand_pair(DType::F32, {V, C});
  cpu.embedding_backward(ids, dout.h.t().slice(1, 2, 2 + C), dtable.h);
  cuda.embedding_backward(dids, dout.d.t().slice(1, 2, 2 + C), dtable.d);
  expect_equal(dtable, "strided dout");
}

TEST_F(CudaEmbedding, IdsOutsideTheVocabulary) {
  const int64_t V = 50, N = 10, C = 8;
  std::vector<int32_t> idv = random_ids(g, N, V);
  idv[3] = 57;
  idv[7] = -1;
  HostTensor ids(DType::I32, {N}, idv);
  OwnedTensor dids = to_device(ids);
  Pair table = rand_pair(DType::F32, {V, C}), out = rand_pair(DType::F32, {N, C});
  const std::vector<float> before = values(out.d);
  const std::string msg = "token id 57 at position 3 is outside the vocabulary [0, 50)";
  expect_error([&] { cpu.embedding_forward(ids, table.h, out.h); }, "embedding_forward: ", msg);
  expect_error([&] { cuda.embedding_forward(dids, table.d, out.d); }, "embedding_forward: ", msg);
  EXPECT_EQ(values(out.d), before);  // checked before anything is written
  Pair dtable = rand_pair(DType::F32, {V, C});
  const std::vector<float> dbefore = values(dtable.d);
  expect_error([&] { cuda.embedding_backward(dids, out.d, dtable.d); }, "embedding_backward: ", msg);
  EXPECT_EQ(values(dtable.d), dbefore);
  OwnedTensor f_ids = dev.tensor(DType::F32, {N});
  expect_error([&] { cuda.embedding_forward(f_ids, table.d, out.d); }, "embedding_forward: ", "ids");
  expect_error([&] { cuda.embedding_backward(dids, out.d, table.d.t().slice(1, 0, 4)); },
               "embedding_backward: ", "dtable");
}

}  // namespace
}  // namespace llm::test
