// quant_matmul and quant_embedding on ggml block formats (QuantKind::Ggml) on the CPU, against a
// float64 product of the weights ggml_dequantize gives (the io module's port of ggml's
// dequantize_row_*, an implementation independent of the kernel's decoders), for every type, one
// token (decode) and many (prefill: the sgemm path, or for Q8_0 and Q4_0 the int8 path, whose
// activation rounding is added to the bound; tests/ops/int8_dot_test.cpp checks it exactly), awkward
// sizes, a bias, bf16 activations and a strided output (a column block of a fused buffer).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/int8_dot_kernels.h"
#include "llm/ggml_quant.h"
#include "test_util.h"

namespace llm::test {
namespace {

struct Case {
  GgmlType type;
  int64_t rows, cols;
};

class GgmlMatmul : public ::testing::TestWithParam<Case> {};

TEST_P(GgmlMatmul, EqualsTheFloat64ProductOfTheDequantizedWeights) {
  const Case c = GetParam();
  std::mt19937_64 g = rng();
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(c.rows * c.cols));
  for (float& v : w) v = nd(g) * 0.1f;
  const size_t row_bytes = ggml_row_bytes(c.type, c.cols);
  std::vector<uint8_t> blocks(row_bytes * static_cast<size_t>(c.rows));
  for (int64_t r = 0; r < c.rows; ++r)
    ggml_quantize(c.type, w.data() + r * c.cols, c.cols, blocks.data() + r * row_bytes);
  std::vector<float> deq(w.size());
  ggml_dequantize(c.type, blocks.data(), c.rows * c.cols, deq.data());
  QuantizedMatrix m{QuantKind::Ggml,
                    c.rows,
                    c.cols,
                    ggml_block_elems(c.type),
                    Tensor(blocks.data(), DType::U8, {c.rows, static_cast<int64_t>(row_bytes)}),
                    Tensor(),
                    c.type};
  std::vector<float> bias(static_cast<size_t>(c.rows));
  for (float& v : bias) v = nd(g);
  CpuBackend cpu(2);
  for (const int64_t N : {int64_t{1}, int64_t{3}, int64_t{33}}) {
    std::vector<float> x(static_cast<size_t>(N * c.cols));
    for (float& v : x) v = nd(g);
    // y is a column block [N, rows] of a wider buffer [N, rows + 5], as a fused q/k/v part is.
    const int64_t ld = c.rows + 5;
    std::vector<float> ybuf(static_cast<size_t>(N * ld), 7.0f);
    const Tensor yt = Tensor(ybuf.data(), DType::F32, {N, ld}).slice(1, 2, 2 + c.rows);
    const Tensor bt(bias.data(), DType::F32, {c.rows});
    cpu.quant_matmul(Tensor(x.data(), DType::F32, {N, c.cols}), m, yt, &bt);
    // The int8 path rounds each activation to a multiple of its block's amax / 127: at most half
    // of that per product (zero on the fp32 paths).
    const bool int8 = N >= cpu::kInt8DotMinTokens && cpu::int8_dot_supports(m);
    const auto quant_err = [&](const auto& xs, int64_t n, int64_t r) {
      double e = 0;
      for (int64_t k = 0; int8 && k < c.cols; k += 32) {
        double amax = 0;
        for (int64_t j = k; j < k + 32; ++j) amax = std::max(amax, std::fabs(double(xs(n * c.cols + j))));
        for (int64_t j = k; j < k + 32; ++j) e += std::fabs(double(deq[size_t(r * c.cols + j)])) * amax / 127 / 2;
      }
      return e;
    };
    const auto xf = [&](int64_t i) { return x[size_t(i)]; };
    double worst = 0;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t r = 0; r < c.rows; ++r) {
        double ref = bias[size_t(r)], mag = std::fabs(bias[size_t(r)]);
        for (int64_t k = 0; k < c.cols; ++k) {
          const double p = double(deq[size_t(r * c.cols + k)]) * double(x[size_t(n * c.cols + k)]);
          ref += p;
          mag += std::fabs(p);
        }
        // fp32 accumulation of cols products: at most about cols * 2^-24 of their magnitude
        // (Higham's bound), here with a margin of 3; a wrong weight costs a whole term.
        const double err =
            std::fabs(double(ybuf[size_t(n * ld + 2 + r)]) - ref) / (mag * 2e-7 * double(c.cols) + quant_err(xf, n, r));
        worst = std::max(worst, err);
      }
      EXPECT_EQ(ybuf[size_t(n * ld + 0)], 7.0f);  // the columns around the block are not written
      EXPECT_EQ(ybuf[size_t(n * ld + 1)], 7.0f);
      EXPECT_EQ(ybuf[size_t(n * ld + 2 + c.rows)], 7.0f);
    }
    EXPECT_LE(worst, 1.0) << ggml_type_name(c.type) << " N=" << N;

    // bf16 activations in and out: the same sums, rounded once to bf16 at the end.
    std::vector<uint16_t> xb(x.size()), yb(static_cast<size_t>(N * c.rows));
    for (size_t i = 0; i < x.size(); ++i) xb[i] = f32_to_bf16_bits(x[i]);
    cpu.quant_matmul(Tensor(xb.data(), DType::BF16, {N, c.cols}), m, Tensor(yb.data(), DType::BF16, {N, c.rows}),
                     nullptr);
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t r = 0; r < c.rows; r += 7) {
        double ref = 0, mag = 0;
        for (int64_t k = 0; k < c.cols; ++k) {
          const double p = double(deq[size_t(r * c.cols + k)]) * double(bf16_bits_to_f32(xb[size_t(n * c.cols + k)]));
          ref += p;
          mag += std::fabs(p);
        }
        const auto xbf = [&](int64_t i) { return bf16_bits_to_f32(xb[size_t(i)]); };
        EXPECT_NEAR(bf16_bits_to_f32(yb[size_t(n * c.rows + r)]), ref,
                    std::fabs(ref) / 128 + mag * 1e-5 + quant_err(xbf, n, r))
            << ggml_type_name(c.type) << " bf16 N=" << N << " row " << r;
      }
    }
  }

  // quant_embedding: exactly the dequantized rows.
  std::vector<int32_t> ids = {0, int32_t(c.rows - 1), int32_t(c.rows / 2), 0};
  std::vector<float> out(ids.size() * size_t(c.cols));
  cpu.quant_embedding(Tensor(ids.data(), DType::I32, {int64_t(ids.size())}), m,
                      Tensor(out.data(), DType::F32, {int64_t(ids.size()), c.cols}));
  for (size_t i = 0; i < ids.size(); ++i) {
    for (int64_t k = 0; k < c.cols; ++k) {
      ASSERT_EQ(out[i * size_t(c.cols) + size_t(k)], deq[size_t(ids[i]) * size_t(c.cols) + size_t(k)])
          << ggml_type_name(c.type) << " id " << ids[i] << " col " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Types, GgmlMatmul,
    ::testing::Values(Case{GgmlType::F32, 37, 45}, Case{GgmlType::F16, 37, 45}, Case{GgmlType::BF16, 29, 96},
                      Case{GgmlType::Q8_0, 37, 96}, Case{GgmlType::Q8_0, 130, 544}, Case{GgmlType::Q4_0, 37, 96},
                      Case{GgmlType::Q4_0, 70, 544}, Case{GgmlType::Q5_0, 37, 96}, Case{GgmlType::Q5_0, 70, 544},
                      Case{GgmlType::Q4_K, 37, 256}, Case{GgmlType::Q4_K, 70, 768}, Case{GgmlType::Q6_K, 37, 256},
                      Case{GgmlType::Q6_K, 70, 768}),
    [](const auto& p) { return cat(ggml_type_name(p.param.type), "_", p.param.rows, "x", p.param.cols); });

TEST(GgmlMatmul, BadMatricesAreRefused) {
  CpuBackend cpu(1);
  std::vector<uint8_t> blocks(34 * 4);
  std::vector<float> x(64), y(2);
  const Tensor xt(x.data(), DType::F32, {1, 64}), yt(y.data(), DType::F32, {1, 2});
  QuantizedMatrix m{QuantKind::Ggml, 2, 64, 32, Tensor(blocks.data(), DType::U8, {2, 68}), Tensor(), GgmlType::Q8_0};
  EXPECT_NO_THROW(cpu.quant_matmul(xt, m, yt, nullptr));
  QuantizedMatrix bad = m;
  bad.group = 16;
  EXPECT_THROW(cpu.quant_matmul(xt, bad, yt, nullptr), Error);
  bad = m;
  bad.data = Tensor(blocks.data(), DType::U8, {2, 64});  // not the q8_0 row size
  try {
    cpu.quant_matmul(xt, bad, yt, nullptr);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("quant_matmul"), std::string::npos) << e.what();
  }
  bad = m;
  bad.ggml = static_cast<GgmlType>(3);
  EXPECT_THROW(cpu.quant_matmul(xt, bad, yt, nullptr), Error);
  std::vector<float> w(128);
  EXPECT_THROW(cpu.quantize(Tensor(w.data(), DType::F32, {2, 64}), m), Error);
}

}  // namespace
}  // namespace llm::test
