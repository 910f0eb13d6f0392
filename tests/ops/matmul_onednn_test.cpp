// The matmuls oneDNN takes: bf16 x bf16 (native on CPUs with AVX512-BF16/AMX) and fp32 of many
// rows (oneDNN's sgemm on AVX-512 CPUs), each against a float64 product of the (rounded) inputs
// and against the OpenBLAS path it replaces, for every transposition, strided rows, beta
// accumulation into fp32 (weight gradients) and bias. On other CPUs both runs take the fallback.
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

struct OnednnCase {
  DType in;
  int64_t M, N, K;
  bool ta, tb;
  float beta;
  bool bias;
  DType out;
  int64_t pad;  // extra columns in each operand's buffer: rows lda = cols + pad apart
  float alpha = 0.75f;
};

// A [rows, cols] view into a [rows, cols + pad] buffer of fresh random values of dtype dt, and the
// values of the view (rounded to dt, row-major dense) for the reference.
struct Operand {
  HostTensor full;
  Tensor view;
  std::vector<float> values;
  Operand(std::mt19937_64& g, DType dt, int64_t rows, int64_t cols, int64_t pad)
      : full(dt, {rows, cols + pad}, rounded(randn(g, size_t(rows * (cols + pad))), dt)),
        view(full.t().slice(1, 0, cols)) {
    const std::vector<float> all = full.values();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) values.push_back(all[size_t(r * (cols + pad) + c)]);
  }
};

class MatmulOnednnTest : public OpTest, public ::testing::WithParamInterface<OnednnCase> {};

TEST_P(MatmulOnednnTest, OnednnAndFallbackMatchFloat64) {
  const OnednnCase c = GetParam();
  const Operand A(g, c.in, c.ta ? c.K : c.M, c.ta ? c.M : c.K, c.pad),
      B(g, c.in, c.tb ? c.N : c.K, c.tb ? c.K : c.N, c.pad);
  const auto bias = rounded(randn(g, size_t(c.N)), c.in), c0 = rounded(randn(g, size_t(c.M * c.N)), c.out);
  HostTensor Bias(c.in, {c.N}, bias);
  ref::Vec want = ref::matmul(ref::to_d(A.values), c.ta, ref::to_d(B.values), c.tb, c.M, c.N, c.K);
  for (size_t i = 0; i < want.size(); ++i) {
    want[i] = c.alpha * want[i] + c.beta * c0[i] + (c.bias ? bias[i % size_t(c.N)] : 0.0);
  }
  std::vector<float> got[2];
  for (int onednn = 0; onednn < 2; ++onednn) {
    cpu.set_onednn_bf16(onednn == 1);
    cpu.set_onednn_f32(onednn == 1);
    HostTensor C(c.out, {c.M, c.N}, c0);
    cpu.matmul(A.view, c.ta, B.view, c.tb, C, c.alpha, c.beta, c.bias ? &Bias.t() : nullptr);
    got[onednn] = C.values();
    expect_close(got[onednn], want, std::max(storage_tol(c.out), 2e-5), onednn ? "c (oneDNN)" : "c (fallback)");
  }
  // Both accumulate the same products in fp32, in different orders.
  expect_close(got[1], ref::to_d(got[0]), std::max(storage_tol(c.out), 2e-5), "oneDNN vs fallback");
}

// clang-format off
INSTANTIATE_TEST_SUITE_P(Shapes, MatmulOnednnTest, ::testing::Values(
    OnednnCase{DType::BF16, 31, 33, 17, false, true, 0.0f, true, DType::BF16, 0},      // linear forward, bf16 activations
    OnednnCase{DType::BF16, 33, 31, 65, false, false, 0.0f, false, DType::F32, 3},     // dx = dy W, strided rows
    OnednnCase{DType::BF16, 33, 31, 4099, true, false, 1.0f, false, DType::F32, 5},    // dW += dy^T x into fp32
    OnednnCase{DType::BF16, 17, 9, 4099, true, true, 0.5f, true, DType::F32, 1},
    OnednnCase{DType::BF16, 64, 129, 31, false, true, 1.0f, true, DType::BF16, 2},     // prefill rows, beta 1 in bf16
    OnednnCase{DType::BF16, 9, 4099, 33, false, true, 0.0f, false, DType::F32, 0},     // just past the decode GEMV
    OnednnCase{DType::BF16, 1, 33, 31, true, false, 0.0f, true, DType::F32, 0},       // one row, transposed a
    // 2-8 rows against bf16 weights (batched decode): oneDNN, not the GEMV, on native bf16
    OnednnCase{DType::BF16, 2, 4099, 33, false, true, 0.0f, true, DType::BF16, 1, 1.0f},
    OnednnCase{DType::BF16, 8, 65, 129, false, true, 0.0f, false, DType::F32, 0},      // the head's fp32 logits
    OnednnCase{DType::BF16, 5, 31, 17, false, true, 1.0f, false, DType::F32, 2},
    // bf16 out straight from oneDNN (no fp32 copy of c): with its bias (alpha 1), beta, transposes
    OnednnCase{DType::BF16, 33, 65, 31, false, true, 0.0f, true, DType::BF16, 2, 1.0f},
    OnednnCase{DType::BF16, 31, 17, 129, false, false, 0.0f, false, DType::BF16, 1},
    OnednnCase{DType::BF16, 65, 33, 17, true, true, 1.0f, false, DType::BF16, 3},
    OnednnCase{DType::BF16, 9, 31, 33, false, true, 0.5f, true, DType::BF16, 0, 1.0f},
    // fp32 from 256 rows: oneDNN's sgemm
    OnednnCase{DType::F32, 257, 33, 31, false, true, 0.0f, true, DType::F32, 3},
    OnednnCase{DType::F32, 256, 31, 4099, true, false, 1.0f, false, DType::F32, 1},
    OnednnCase{DType::F32, 300, 17, 33, true, true, 0.5f, true, DType::F32, 0},
    OnednnCase{DType::F32, 259, 65, 9, false, false, 1.0f, false, DType::F32, 2}));
// clang-format on

}  // namespace
}  // namespace llm::test
