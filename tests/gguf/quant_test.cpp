// ggml block formats against float64 evaluations of their formulas: the scale of each block, the
// level of each value (except within 1e-4 of a rounding tie, where float and double may differ),
// an independent decode of the packed bytes, and the dequantization error bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "llm/dtype.h"
#include "llm/ggml_quant.h"
#include "test_util.h"

namespace llm::test {
namespace {

double half(const uint8_t* p) { return f16_bits_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// Values with the features that matter: varied scales per block, an all-zero block, a block with
// one large outlier, negative and positive extremes.
std::vector<float> test_values(std::mt19937_64& g, int64_t n) {
  std::vector<float> x = randn(g, static_cast<size_t>(n), 1.0f);
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] *= static_cast<float>(std::exp((i / 256) % 7 - 3));
  for (int64_t i = 0; i < 32 && i < n; ++i) x[static_cast<size_t>(i)] = 0.0f;
  if (n > 300) x[300] = 40.0f;
  return x;
}

bool near_tie(double v) { return std::fabs(v - std::floor(v) - 0.5) < 1e-4; }

TEST(GgmlQuant, SizesAndBadLengths) {
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q8_0, 64), 68u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_0, 64), 36u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q5_0, 32), 22u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 512), 288u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q6_K, 256), 210u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::BF16, 3), 6u);
  EXPECT_THROW(ggml_row_bytes(GgmlType::Q8_0, 48), Error);
  EXPECT_THROW(ggml_row_bytes(GgmlType::Q4_K, 128), Error);
}

TEST(GgmlQuant, Q8_0MatchesTheFormula) {
  auto g = rng();
  const int64_t n = 32 * 64;
  const auto x = test_values(g, n);
  std::vector<uint8_t> q(ggml_row_bytes(GgmlType::Q8_0, n));
  ggml_quantize(GgmlType::Q8_0, x.data(), n, q.data());
  std::vector<float> y(static_cast<size_t>(n));
  ggml_dequantize(GgmlType::Q8_0, q.data(), n, y.data());
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x.data() + b * 32;
    const uint8_t* qb = q.data() + b * 34;
    double amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(double(xb[j])));
    const double d = amax / 127.0;
    ASSERT_EQ(half(qb), double(f16_bits_to_f32(f32_to_f16_bits(float(d))))) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      const int level = static_cast<int8_t>(qb[2 + j]);
      const double exact = d > 0 ? xb[j] / d : 0.0;
      if (!near_tie(exact)) {
        EXPECT_EQ(level, std::lround(exact)) << "block " << b << " value " << j;
      }
      const double err = std::fabs(double(y[size_t(b * 32 + j)]) - xb[j]);
      EXPECT_LE(err, 0.5 * d + 127 * std::fabs(half(qb) - d) + 1e-12) << "block " << b << " value " << j;
      EXPECT_EQ(double(y[size_t(b * 32 + j)]), double(float(level * half(qb))));
    }
  }
}

// Q4_0 and Q5_0: d = (the value of largest magnitude) / -2^(bits-1), level = floor(x/d + 2^(bits-1) + 0.5)
// capped at 2^bits - 1.
void check_signed_absmax(GgmlType t, int bits) {
  auto g = rng();
  const int64_t n = 32 * 64;
  const auto x = test_values(g, n);
  std::vector<uint8_t> q(ggml_row_bytes(t, n));
  ggml_quantize(t, x.data(), n, q.data());
  std::vector<float> y(static_cast<size_t>(n));
  ggml_dequantize(t, q.data(), n, y.data());
  const int half_range = 1 << (bits - 1), top = (1 << bits) - 1;
  const size_t bb = ggml_block_bytes(t);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float* xb = x.data() + b * 32;
    const uint8_t* qb = q.data() + b * bb;
    double amax = 0, max = 0;
    for (int j = 0; j < 32; ++j) {
      if (amax < std::fabs(double(xb[j]))) amax = std::fabs(double(xb[j])), max = xb[j];
    }
    const double d = max / -half_range;
    ASSERT_EQ(half(qb), double(f16_bits_to_f32(f32_to_f16_bits(float(d))))) << "block " << b;
    uint32_t qh = 0;
    if (bits == 5) std::memcpy(&qh, qb + 2, 4);
    const uint8_t* qs = qb + (bits == 5 ? 6 : 2);
    for (int j = 0; j < 32; ++j) {
      // independent unpacking: value j in the low nibble of byte j (j < 16) or the high nibble of byte j-16
      int level = j < 16 ? (qs[j] & 0x0F) : (qs[j - 16] >> 4);
      if (bits == 5) level |= static_cast<int>((qh >> j) & 1u) << 4;
      const double exact = d != 0 ? xb[j] / d + half_range + 0.5 : half_range + 0.5;
      if (!near_tie(exact - 0.5)) {
        EXPECT_EQ(level, std::min<int>(top, int(std::floor(exact)))) << "block " << b << " " << j;
      }
      EXPECT_EQ(double(y[size_t(b * 32 + j)]), double(float((level - half_range) * half(qb))));
      const double err = std::fabs(double(y[size_t(b * 32 + j)]) - xb[j]);
      EXPECT_LE(err, std::fabs(d) + half_range * std::fabs(half(qb) - d) + 1e-12);
      // Only the cap (values of the opposite sign to the extreme, at its magnitude) costs more than half a step.
      if (level < top) {
        EXPECT_LE(err, 0.5 * std::fabs(d) + half_range * std::fabs(half(qb) - d) + 1e-6 * amax);
      }
    }
  }
}

TEST(GgmlQuant, Q4_0MatchesTheFormula) { check_signed_absmax(GgmlType::Q4_0, 4); }
TEST(GgmlQuant, Q5_0MatchesTheFormula) { check_signed_absmax(GgmlType::Q5_0, 5); }

// Q4_K: the bytes decoded here from the layout (6-bit scales and mins packed in 12 bytes), in
// float64; the final levels are round((x + dmin*m)/(d*sc)) clamped to 0..15 for the stored scales.
TEST(GgmlQuant, Q4_KDecodesAndRoundsAsSpecified) {
  auto g = rng();
  const int64_t n = 256 * 16;
  const auto x = test_values(g, n);
  std::vector<uint8_t> q(ggml_row_bytes(GgmlType::Q4_K, n));
  ggml_quantize(GgmlType::Q4_K, x.data(), n, q.data());
  std::vector<float> y(static_cast<size_t>(n));
  ggml_dequantize(GgmlType::Q4_K, q.data(), n, y.data());
  double err2 = 0, x2 = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    const uint8_t* B = q.data() + b * 144;
    const double d = half(B), dmin = half(B + 2);
    const uint8_t* s = B + 4;
    for (int j = 0; j < 8; ++j) {
      const int sc = j < 4 ? (s[j] & 63) : ((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
      const int m = j < 4 ? (s[j + 4] & 63) : ((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
      for (int i = 0; i < 32; ++i) {
        const int64_t k = b * 256 + j * 32 + i;
        // value 64c + i in the low nibbles of qs[32c + i], value 64c + 32 + i in the high nibbles
        const int chunk = j / 2;
        const uint8_t byte = B[16 + 32 * chunk + i];
        const int level = j % 2 == 0 ? (byte & 0xF) : (byte >> 4);
        const double ref = d * sc * level - dmin * m;
        EXPECT_NEAR(y[size_t(k)], ref, 1e-6 * (std::fabs(ref) + d * sc + dmin * m)) << k;
        const double fd = double(float(float(d) * float(sc)));
        if (fd != 0) {
          const double exact = (double(x[size_t(k)]) + double(float(float(dmin) * float(m)))) / fd;
          if (!near_tie(exact)) {
            EXPECT_EQ(level, std::clamp<long>(std::lround(exact), 0, 15)) << k;
          }
        }
        err2 += (y[size_t(k)] - x[size_t(k)]) * double(y[size_t(k)] - x[size_t(k)]);
        x2 += double(x[size_t(k)]) * x[size_t(k)];
      }
    }
  }
  EXPECT_LT(std::sqrt(err2 / x2), 0.12) << "relative rms error of Q4_K";
  std::printf("Q4_K relative rms error %.4f\n", std::sqrt(err2 / x2));
}

// Q6_K: levels round(x/(d*sc)) clamped to -32..31, stored +32 as 4 low bits (ql) and 2 high bits (qh).
TEST(GgmlQuant, Q6_KDecodesAndRoundsAsSpecified) {
  auto g = rng();
  const int64_t n = 256 * 16;
  const auto x = test_values(g, n);
  std::vector<uint8_t> q(ggml_row_bytes(GgmlType::Q6_K, n));
  ggml_quantize(GgmlType::Q6_K, x.data(), n, q.data());
  std::vector<float> y(static_cast<size_t>(n));
  ggml_dequantize(GgmlType::Q6_K, q.data(), n, y.data());
  double err2 = 0, x2 = 0;
  for (int64_t b = 0; b < n / 256; ++b) {
    const uint8_t* B = q.data() + b * 210;
    const double d = half(B + 208);
    for (int i = 0; i < 256; ++i) {
      const int64_t k = b * 256 + i;
      const int half128 = i / 128, r = i % 128, quarter = r / 32, l = r % 32;
      const uint8_t lo = B[64 * half128 + l + (quarter % 2) * 32];
      const int low4 = quarter < 2 ? (lo & 0xF) : (lo >> 4);
      const int high2 = (B[128 + 32 * half128 + l] >> (2 * quarter)) & 3;
      const int level = (low4 | (high2 << 4)) - 32;
      const int sc = static_cast<int8_t>(B[192 + i / 16]);
      const double ref = d * sc * level;
      EXPECT_NEAR(y[size_t(k)], ref, 1e-6 * std::fabs(d * sc) * 32) << k;
      const double fd = double(float(float(d) * float(sc)));
      if (fd != 0) {
        const double exact = double(x[size_t(k)]) / fd;
        if (!near_tie(exact)) {
          EXPECT_EQ(level, std::clamp<long>(std::lround(exact), -32, 31)) << k;
        }
      }
      err2 += (y[size_t(k)] - x[size_t(k)]) * double(y[size_t(k)] - x[size_t(k)]);
      x2 += double(x[size_t(k)]) * x[size_t(k)];
    }
  }
  EXPECT_LT(std::sqrt(err2 / x2), 0.03) << "relative rms error of Q6_K";
  std::printf("Q6_K relative rms error %.4f\n", std::sqrt(err2 / x2));
}

TEST(GgmlQuant, HalfFormatsRoundToNearestEven) {
  const std::vector<float> x = {1.0f, -2.5f, 65504.0f, 1e-8f, 3.14159265f, 1.00048828125f /* f16 tie */};
  for (GgmlType t : {GgmlType::F16, GgmlType::BF16}) {
    std::vector<uint8_t> q(ggml_row_bytes(t, int64_t(x.size())));
    ggml_quantize(t, x.data(), int64_t(x.size()), q.data());
    for (size_t i = 0; i < x.size(); ++i) {
      const uint16_t bits = static_cast<uint16_t>(q[2 * i] | (q[2 * i + 1] << 8));
      EXPECT_EQ(bits, t == GgmlType::F16 ? f32_to_f16_bits(x[i]) : f32_to_bf16_bits(x[i]));
    }
  }
  // 1 + 2^-11 is halfway between two f16 values: ties go to the even one (1.0)
  EXPECT_EQ(f32_to_f16_bits(1.00048828125f), 0x3C00);
}

}  // namespace
}  // namespace llm::test
