// Decode on ggml blocks straight from the blocks (ggml_gemv_avx512.cpp) against the float64
// product of the dequantized weights (ggml_dequantize, the io module's port of ggml) within the
// error of an fp32 dot product, for 1 token and for several (block_tokens); quant_matmul with 1-3
// tokens taking that path; awkward sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/ggml_kernels.h"
#include "backend/cpu/int8_dot_kernels.h"
#include "llm/ggml_quant.h"
#include "test_util.h"

namespace llm::test {
namespace {

struct GemvCase {
  GgmlType type;
  int64_t rows, cols, n;
};

class GgmlGemv : public ::testing::TestWithParam<GemvCase> {};

TEST_P(GgmlGemv, EqualsTheFloat64ProductWithinFp32Rounding) {
  if (!cpu::int8_dot_isa_supported(cpu::Int8DotIsa::Avx512Vnni)) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  const auto [type, rows, cols, n] = GetParam();
  ASSERT_TRUE(cpu::ggml_gemv_avx512_supports(type));
  std::mt19937_64 g = rng();
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols)), x(static_cast<size_t>(n * cols));
  for (float& v : w) v = nd(g) * 0.1f;
  for (float& v : x) v = nd(g);
  const size_t row_bytes = ggml_row_bytes(type, cols);
  std::vector<uint8_t> blocks(row_bytes * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) ggml_quantize(type, w.data() + r * cols, cols, blocks.data() + r * row_bytes);
  std::vector<float> deq(w.size());
  ggml_dequantize(type, blocks.data(), rows * cols, deq.data());

  // y as a column block of a wider buffer: the columns around it stay untouched.
  const int64_t ldy = rows + 2;
  std::vector<float> y(static_cast<size_t>(n * ldy), 7.0f);
  cpu::ggml_gemv_avx512(type, blocks.data(), int64_t(row_bytes), 0, rows, cols, x.data(), n, y.data() + 1, ldy);
  double worst = 0;
  for (int64_t t = 0; t < n; ++t) {
    EXPECT_EQ(y[size_t(t * ldy)], 7.0f);
    EXPECT_EQ(y[size_t(t * ldy + rows + 1)], 7.0f);
    for (int64_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (int64_t k = 0; k < cols; ++k) {
        const double p = double(deq[size_t(r * cols + k)]) * x[size_t(t * cols + k)];
        ref += p;
        mag += std::fabs(p);
      }
      // One fma per block in each lane, then the 5-step tree: at most cols / 32 + 5 roundings.
      const double bound = mag * 6e-8 * double(cols / 32 + 5) + 1e-30;
      worst = std::max(worst, std::fabs(y[size_t(t * ldy + 1 + r)] - ref) / bound);
    }
  }
  EXPECT_LE(worst, 1.0);

  // quant_matmul with n < 4 tokens and a bias takes this path: the same sums plus the bias.
  if (n >= cpu::kInt8DotMinTokens) return;
  CpuBackend cpu;
  const QuantizedMatrix m{QuantKind::Ggml,
                          rows,
                          cols,
                          ggml_block_elems(type),
                          Tensor(blocks.data(), DType::U8, {rows, static_cast<int64_t>(row_bytes)}),
                          Tensor(),
                          type};
  std::vector<float> bias(static_cast<size_t>(rows)), out(static_cast<size_t>(n * rows));
  for (float& b : bias) b = nd(g);
  const Tensor bt(bias.data(), DType::F32, {rows});
  cpu.quant_matmul(Tensor(x.data(), DType::F32, {n, cols}), m, Tensor(out.data(), DType::F32, {n, rows}), &bt);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t r = 0; r < rows; ++r) {
      ASSERT_EQ(out[size_t(t * rows + r)], y[size_t(t * ldy + 1 + r)] + bias[size_t(r)]) << "t " << t << " r " << r;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GgmlGemv,
                         ::testing::Values(GemvCase{GgmlType::Q4_0, 1, 32, 1}, GemvCase{GgmlType::Q4_0, 31, 64, 1},
                                           GemvCase{GgmlType::Q4_0, 33, 896, 3}, GemvCase{GgmlType::Q4_0, 70, 4864, 2},
                                           GemvCase{GgmlType::Q4_0, 4099, 32, 1}, GemvCase{GgmlType::Q8_0, 3, 32, 1},
                                           GemvCase{GgmlType::Q8_0, 33, 896, 3}, GemvCase{GgmlType::Q8_0, 70, 4864, 1},
                                           // Many tokens (a direct call; quant_matmul takes the int8 path
                                           // from 4): chunks of 8 and a remainder.
                                           GemvCase{GgmlType::Q4_0, 31, 96, 8}, GemvCase{GgmlType::Q4_0, 17, 896, 19},
                                           GemvCase{GgmlType::Q8_0, 33, 64, 9}, GemvCase{GgmlType::Q8_0, 5, 4864, 5}),
                         [](const auto& p) {
                           return cat(ggml_type_name(p.param.type), "_", p.param.rows, "x", p.param.cols, "_n",
                                      p.param.n);
                         });

}  // namespace
}  // namespace llm::test
