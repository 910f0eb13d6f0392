// The int8 path of quantized matmul (backend/cpu/int8_dot_kernels.h) on ggml's Q8_0, Q5_0, Q4_0,
// Q4_K and Q6_K blocks: against a float64 product of the dequantized weights (the io module's port
// of ggml's dequantize_row_*; Q4_K's d s q - dmin m again here in float64, as fp32 rounds it) and
// the activations quantized by the rule the header states, written out here a second time; against the fp32 activations
// within the activation rounding error; every ISA path this CPU runs bit for bit equal to the portable one; awkward
// sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/int8_dot_kernels.h"
#include "llm/ggml_quant.h"
#include "test_util.h"

namespace llm::test {
namespace {

struct Case {
  GgmlType type;
  int64_t rows, cols, n;
};

struct Weights {
  std::vector<uint8_t> blocks;
  std::vector<float> scales;  // our Int8 / Int4 only
  std::vector<float> deq;
  std::vector<double> exact, size;  // the weights in float64, and the size of their terms
  QuantizedMatrix m;
};

// Q4_K in float64 from its fields (block_q4_K: d, dmin, 12 bytes of 6-bit scales and mins, 128
// bytes of nibbles): x = d s q - dmin m, whose fp32 dequantization rounds the difference; `size`
// gets |d s q| + |dmin m|, the scale of the kernel's two terms.
void q4_k_in_float64(const uint8_t* blocks, int64_t n, double* x, double* size) {
  for (int64_t sb = 0; sb < n / 256; ++sb) {
    const uint8_t* p = blocks + sb * 144;
    const auto f16 = [](const uint8_t* b) { return double(f16_bits_to_f32(uint16_t(b[0] | (b[1] << 8)))); };
    const double d = f16(p), dmin = f16(p + 2);
    const uint8_t* sc = p + 4;
    for (int j = 0; j < 8; ++j) {
      const int s = j < 4 ? sc[j] & 63 : (sc[j + 4] & 0xF) | ((sc[j - 4] >> 6) << 4);
      const int m = j < 4 ? sc[j + 4] & 63 : (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = p[16 + 32 * (j / 2) + l];
        const int q = j % 2 == 0 ? byte & 0xF : byte >> 4;
        const size_t at = size_t(sb * 256 + 32 * j + l);
        x[at] = d * s * q - dmin * m;
        size[at] = std::fabs(d * s * q) + std::fabs(dmin * m);
      }
    }
  }
}

Weights make_weights(GgmlType type, int64_t rows, int64_t cols, std::mt19937_64& g) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = nd(g) * 0.1f;
  Weights out;
  const size_t row_bytes = ggml_row_bytes(type, cols);
  out.blocks.resize(row_bytes * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) ggml_quantize(type, w.data() + r * cols, cols, out.blocks.data() + r * row_bytes);
  out.deq.resize(w.size());
  ggml_dequantize(type, out.blocks.data(), rows * cols, out.deq.data());
  out.exact.assign(out.deq.begin(), out.deq.end());  // exact in fp32 but for Q4_K
  out.size.resize(w.size());
  for (size_t i = 0; i < w.size(); ++i) out.size[i] = std::fabs(out.exact[i]);
  if (type == GgmlType::Q4_K) q4_k_in_float64(out.blocks.data(), rows * cols, out.exact.data(), out.size.data());
  out.m = QuantizedMatrix{QuantKind::Ggml,
                          rows,
                          cols,
                          ggml_block_elems(type),
                          Tensor(out.blocks.data(), DType::U8, {rows, static_cast<int64_t>(row_bytes)}),
                          Tensor(),
                          type};
  return out;
}

// The activation rule of int8_dot_kernels.h: per block of 32, d = amax / 127 (fp32) and
// q = round-half-even(x / d), clamped to +-127.
void quantize_acts(const std::vector<float>& x, std::vector<float>& q, std::vector<float>& d) {
  q.resize(x.size());
  d.resize(x.size() / 32);
  for (size_t b = 0; b < d.size(); ++b) {
    float amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
    d[b] = amax / 127.0f;
    for (size_t j = 0; j < 32; ++j) {
      const float v = d[b] == 0.0f ? 0.0f : std::nearbyint(x[32 * b + j] / d[b]);
      q[32 * b + j] = std::clamp(v, -127.0f, 127.0f);
    }
  }
}

std::vector<cpu::Int8DotIsa> isas() {
  std::vector<cpu::Int8DotIsa> v;
  for (auto isa : {cpu::Int8DotIsa::Portable, cpu::Int8DotIsa::Avx2, cpu::Int8DotIsa::Avx512Vnni}) {
    if (cpu::int8_dot_isa_supported(isa)) v.push_back(isa);
  }
  return v;
}

// Our Int8 / Int4 (backend.h) as the CPU backend quantizes them, asking for int8 activations; the
// weights in float64 are q * scale.
Weights make_own_weights(QuantKind kind, int64_t rows, int64_t cols, int64_t group, std::mt19937_64& g) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(rows * cols));
  for (float& v : w) v = nd(g) * 0.1f;
  const bool int4 = kind == QuantKind::Int4;
  Weights out;
  out.blocks.resize(static_cast<size_t>(rows * (int4 ? cols / 2 : cols)));
  out.scales.resize(static_cast<size_t>(rows * (cols / group)));
  out.m = QuantizedMatrix{kind,
                          rows,
                          cols,
                          group,
                          Tensor(out.blocks.data(), int4 ? DType::U8 : DType::I8, {rows, int4 ? cols / 2 : cols}),
                          Tensor(out.scales.data(), DType::F32, {rows, cols / group})};
  out.m.int8_activations = true;
  CpuBackend cpu(0);
  cpu.quantize(Tensor(w.data(), DType::F32, {rows, cols}), out.m);
  out.exact.resize(w.size());
  out.deq.resize(w.size());
  out.size.resize(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = static_cast<size_t>(r * cols + c);
      const int q = int4 ? ((out.blocks[static_cast<size_t>(r * cols / 2 + c / 2)] >> (4 * (c % 2))) & 15) - 8
                         : static_cast<int8_t>(out.blocks[i]);
      out.exact[i] = double(q) * double(out.scales[static_cast<size_t>(r * (cols / group) + c / group)]);
      out.deq[i] = static_cast<float>(out.exact[i]);
      out.size[i] = std::fabs(out.exact[i]);
    }
  }
  return out;
}

// The int8 path on w's rows against n tokens of fresh activations: every ISA path bit for bit equal
// to the portable one, and each result against the float64 product of the quantized operands
// (within fp32's rounding) and of the fp32 activations (within the activations' rounding).
void expect_float64_products(const Weights& w, int64_t rows, int64_t cols, int64_t n, std::mt19937_64& g) {
  const struct { int64_t rows, cols, n; } c{rows, cols, n};
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(c.n * c.cols));
  for (float& v : x) v = nd(g);
  // One block of zeros: its scale is 0 (no division by zero).
  std::fill(x.begin(), x.begin() + 32, 0.0f);
  std::vector<float> q, d;
  quantize_acts(x, q, d);
  const int64_t nb = c.cols / 32;

  // y is a column block of a wider buffer: ldy > rows, the columns around it untouched.
  const int64_t ldy = c.rows + 3;
  std::vector<float> y0;
  for (const cpu::Int8DotIsa isa : isas()) {
    std::vector<float> y(static_cast<size_t>(c.n * ldy), 7.0f);
    cpu::int8_dot_matmul(x.data(), c.n, w.m, y.data() + 1, ldy, isa);
    if (y0.empty()) {
      y0 = y;
    } else {
      ASSERT_EQ(0, std::memcmp(y.data(), y0.data(), y.size() * sizeof(float)))
          << cpu::int8_dot_isa_name(isa) << " differs from portable";
    }
  }
  double worst_exact = 0, worst_quant = 0;
  for (int64_t t = 0; t < c.n; ++t) {
    EXPECT_EQ(y0[size_t(t * ldy)], 7.0f);
    EXPECT_EQ(y0[size_t(t * ldy + c.rows + 1)], 7.0f);
    for (int64_t r = 0; r < c.rows; ++r) {
      double ref = 0, mag = 0, fp = 0, qerr = 0;
      for (int64_t k = 0; k < c.cols; ++k) {
        const double wk = w.exact[size_t(r * c.cols + k)], dx = d[size_t(t * nb + k / 32)];
        const double p = wk * double(q[size_t(t * c.cols + k)]) * dx;
        ref += p;
        mag += w.size[size_t(r * c.cols + k)] * std::fabs(double(q[size_t(t * c.cols + k)]) * dx);
        fp += wk * double(x[size_t(t * c.cols + k)]);
        qerr += std::fabs(wk) * dx * 0.5;  // |x - q * d| <= d / 2
      }
      const double y = y0[size_t(t * ldy + 1 + r)];
      // Exact integer block sums; fp32 rounds the scale products and each of the (at most 2 nb)
      // fma steps.
      worst_exact = std::max(worst_exact, std::fabs(y - ref) / (mag * 6e-8 * double(2 * nb + 2) + 1e-30));
      worst_quant = std::max(worst_quant, std::fabs(y - fp) / (qerr + mag * 6e-8 * double(2 * nb + 2) + 1e-30));
    }
  }
  EXPECT_LE(worst_exact, 1.0);
  EXPECT_LE(worst_quant, 1.0);
  // The rounding error is not negligible: the fp32 bound alone would fail (the test can fail).
  if (c.n * c.rows > 64) {
    EXPECT_GT(worst_quant, 0.01);
  }
}

class Int8Dot : public ::testing::TestWithParam<Case> {};

TEST_P(Int8Dot, EqualsTheFloat64ProductOfTheQuantizedOperandsOnEveryPath) {
  const Case c = GetParam();
  std::mt19937_64 g = rng();
  expect_float64_products(make_weights(c.type, c.rows, c.cols, g), c.rows, c.cols, c.n, g);
}

struct OwnCase {
  QuantKind kind;
  int64_t rows, cols, group, n;
};

class Int8DotOwnFormats : public ::testing::TestWithParam<OwnCase> {};

TEST_P(Int8DotOwnFormats, EqualsTheFloat64ProductOfTheQuantizedOperandsOnEveryPath) {
  const OwnCase c = GetParam();
  std::mt19937_64 g = rng();
  expect_float64_products(make_own_weights(c.kind, c.rows, c.cols, c.group, g), c.rows, c.cols, c.n, g);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Int8DotOwnFormats,
                         ::testing::Values(OwnCase{QuantKind::Int8, 31, 896, 896, 7},  // one scale per row
                                           OwnCase{QuantKind::Int8, 70, 4864, 64, 13},
                                           OwnCase{QuantKind::Int8, 4099, 64, 32, 4},
                                           OwnCase{QuantKind::Int4, 33, 896, 32, 64},
                                           OwnCase{QuantKind::Int4, 70, 4864, 64, 13},
                                           OwnCase{QuantKind::Int4, 4099, 32, 32, 5}),
                         [](const auto& p) {
                           return cat(p.param.kind == QuantKind::Int8 ? "int8_" : "int4_", p.param.rows, "x",
                                      p.param.cols, "_g", p.param.group, "_n", p.param.n);
                         });

INSTANTIATE_TEST_SUITE_P(Shapes, Int8Dot,
                         ::testing::Values(Case{GgmlType::Q8_0, 31, 64, 1}, Case{GgmlType::Q4_0, 31, 64, 7},
                                           Case{GgmlType::Q8_0, 33, 96, 64}, Case{GgmlType::Q4_0, 33, 256, 300},
                                           Case{GgmlType::Q8_0, 4099, 64, 7}, Case{GgmlType::Q4_0, 4099, 32, 64},
                                           Case{GgmlType::Q8_0, 70, 896, 13}, Case{GgmlType::Q4_0, 64, 896, 13},
                                           Case{GgmlType::Q5_0, 33, 96, 7}, Case{GgmlType::Q5_0, 70, 896, 64},
                                           Case{GgmlType::Q4_K, 31, 256, 7}, Case{GgmlType::Q4_K, 33, 512, 64},
                                           Case{GgmlType::Q4_K, 70, 4864, 13}, Case{GgmlType::Q6_K, 31, 256, 7},
                                           Case{GgmlType::Q6_K, 33, 768, 64}, Case{GgmlType::Q6_K, 70, 4864, 13}),
                         [](const auto& p) {
                           return cat(ggml_type_name(p.param.type), "_", p.param.rows, "x", p.param.cols, "_n",
                                      p.param.n);
                         });

// Rows of extreme blocks against activations of +-1 (every block quantizes to +-127 exactly, d =
// 1/127): every path equal to the float64 product of the dequantized weights (small integers
// times scales of 1, exact in fp32), within the rounding of d and the fp32 sums.
void expect_extremes_exact(GgmlType type, std::vector<uint8_t>& blocks, int64_t rows, int64_t cols,
                           std::mt19937_64& g) {
  const int64_t n = 9;
  const auto row_bytes = int64_t(ggml_row_bytes(type, cols));
  QuantizedMatrix m{
      QuantKind::Ggml, rows, cols, ggml_block_elems(type), Tensor(blocks.data(), DType::U8, {rows, row_bytes}),
      Tensor(),        type};
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (float& v : x) v = (g() & 1) != 0 ? 1.0f : -1.0f;
  std::vector<float> deq(static_cast<size_t>(rows * cols));
  ggml_dequantize(type, blocks.data(), rows * cols, deq.data());
  const double min_term = type == GgmlType::Q4_K ? 63.0 : 0.0;  // Q4_K: |d s q| + |dmin m|
  for (const cpu::Int8DotIsa isa : isas()) {
    std::vector<float> y(static_cast<size_t>(n * rows));
    cpu::int8_dot_matmul(x.data(), n, m, y.data(), rows, isa);
    for (int64_t t = 0; t < n; ++t) {
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (int64_t k = 0; k < cols; ++k) {
          ref += double(deq[size_t(r * cols + k)]) * x[size_t(t * cols + k)];
          mag += std::fabs(double(deq[size_t(r * cols + k)])) + min_term;
        }
        ASSERT_NEAR(y[size_t(t * rows + r)], ref, 1e-6 * mag + 1e-3)
            << ggml_type_name(type) << " " << cpu::int8_dot_isa_name(isa) << " t " << t << " r " << r;
      }
    }
  }
}

// Extreme bytes: Q8_0 weights of -128 and +127 against activations of +-127 (the most the AVX2
// pairs can hold without saturating), Q4_0 nibbles 0 and 15, Q5_0 levels 0 and 31.
TEST(Int8Dot, ExtremeValuesDoNotSaturateAnyPath) {
  for (const GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0}) {
    const int64_t rows = 20, cols = 128;
    const size_t row_bytes = ggml_row_bytes(type, cols), block = row_bytes / (cols / 32);
    std::vector<uint8_t> blocks(row_bytes * rows);
    std::mt19937_64 g = rng();
    for (size_t b = 0; b < blocks.size() / block; ++b) {
      uint8_t* p = blocks.data() + b * block;
      p[0] = 0x00;  // f16 scale 1.0
      p[1] = 0x3C;
      for (size_t j = 2; j < block; ++j) p[j] = (g() & 1) != 0 ? 0x80 : 0x7F;
      if (type != GgmlType::Q8_0) {  // Q5_0: the fifth bits (bytes 2-5) random too
        for (size_t j = 2; j < block; ++j) p[j] = (g() & 1) != 0 ? 0x00 : 0xFF;
      }
    }
    expect_extremes_exact(type, blocks, rows, cols, g);
  }
}

// The k-quants at their extremes: every byte of a block 0x00 or 0xFF (Q4_K nibbles 0 and 15 with
// 6-bit scales and mins of 0 or 63, Q6_K levels 0 and 63 with scales 0 and -1), d and dmin 1 (the
// AVX2 kernel sums Q6_K pairs of up to 2 * 63 * 127 in int16 for two steps).
TEST(Int8Dot, KQuantExtremesDoNotSaturateAnyPath) {
  for (const GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    const int64_t rows = 20, cols = 512;
    const size_t row_bytes = ggml_row_bytes(type, cols), block = row_bytes / (cols / 256);
    std::vector<uint8_t> blocks(row_bytes * rows);
    std::mt19937_64 g = rng();
    for (uint8_t& b : blocks) b = (g() & 1) != 0 ? 0x00 : 0xFF;
    for (size_t b = 0; b < blocks.size() / block; ++b) {
      uint8_t* p = blocks.data() + b * block;
      for (uint8_t* f : type == GgmlType::Q4_K ? std::vector<uint8_t*>{p, p + 2} : std::vector<uint8_t*>{p + 208}) {
        f[0] = 0x00;  // f16 1.0
        f[1] = 0x3C;
      }
    }
    expect_extremes_exact(type, blocks, rows, cols, g);
  }
}

// A token holding an inf or a nan gets nan outputs, as the fp32 product would; the others are
// unaffected.
TEST(Int8Dot, NonFiniteActivationsGiveNanForThatTokenOnly) {
  std::mt19937_64 g = rng();
  const Weights w = make_weights(GgmlType::Q4_0, 17, 64, g);
  std::vector<float> x(3 * 64);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(g);
  x[64 + 40] = std::numeric_limits<float>::infinity();
  for (const cpu::Int8DotIsa isa : isas()) {
    std::vector<float> y(3 * 17);
    cpu::int8_dot_matmul(x.data(), 3, w.m, y.data(), 17, isa);
    for (int64_t r = 0; r < 17; ++r) {
      EXPECT_TRUE(std::isfinite(y[size_t(r)]));
      EXPECT_TRUE(std::isnan(y[size_t(17 + r)])) << cpu::int8_dot_isa_name(isa);
      EXPECT_TRUE(std::isfinite(y[size_t(34 + r)]));
    }
  }
}

// Each output is computed whole by the thread that owns its panel of rows: 1, 2 or 3 threads
// give the same bits.
TEST(Int8Dot, ResultDoesNotDependOnTheThreadCount) {
  std::mt19937_64 g = rng();
  const Weights w = make_weights(GgmlType::Q8_0, 203, 256, g);
  std::vector<float> x(17 * 256);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (float& v : x) v = nd(g);
  for (const cpu::Int8DotIsa isa : isas()) {
    std::vector<float> first;
    for (const int threads : {2, 1, 3}) {
      CpuBackend cpu(threads);  // sets the OpenMP team size
      std::vector<float> y(17 * 203);
      cpu::int8_dot_matmul(x.data(), 17, w.m, y.data(), 203, isa);
      if (first.empty()) first = y;
      EXPECT_EQ(0, std::memcmp(y.data(), first.data(), y.size() * sizeof(float)))
          << cpu::int8_dot_isa_name(isa) << " " << threads << " threads";
    }
  }
}

}  // namespace
}  // namespace llm::test
