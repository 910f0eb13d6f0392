// quantize / quant_matmul / quant_embedding: the storage layout against hand-computed examples,
// the round trip within half a step, the product against a float64 dequantize-then-multiply
// reference, and every kernel (portable, AVX2, AVX-512, whichever this CPU runs) bit for bit
// against the others.
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "backend/cpu/quant_kernels.h"
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

// Host storage for a QuantizedMatrix, with a decoder written from the layout in backend.h.
class QMat {
 public:
  QMat(QuantKind kind, int64_t rows, int64_t cols, int64_t group)
      : data_(static_cast<size_t>(rows * (kind == QuantKind::Int4 ? cols / 2 : cols)) + 64),
        scales_(static_cast<size_t>(rows * (cols / group)) + 16) {
    m.kind = kind;
    m.rows = rows;
    m.cols = cols;
    m.group = group;
    m.data = Tensor(data_.data(), kind == QuantKind::Int4 ? DType::U8 : DType::I8,
                    {rows, kind == QuantKind::Int4 ? cols / 2 : cols});
    m.scales = Tensor(scales_.data(), DType::F32, {rows, cols / group});
  }
  QMat(const QMat&) = delete;
  QMat& operator=(const QMat&) = delete;

  int q(int64_t r, int64_t c) const {
    if (m.kind == QuantKind::Int8) return static_cast<int8_t>(data_[size_t(r * m.cols + c)]);
    const uint8_t b = data_[size_t(r * (m.cols / 2) + c / 2)];
    return (c % 2 == 0 ? (b & 15) : (b >> 4)) - 8;
  }
  float scale(int64_t r, int64_t c) const { return scales_[size_t(r * (m.cols / m.group) + c / m.group)]; }
  uint8_t byte(size_t i) const { return data_[i]; }
  float scale_at(size_t i) const { return scales_[i]; }
  // The dequantized matrix in float64: q * scale, exactly.
  ref::Vec dequant() const {
    ref::Vec w(static_cast<size_t>(m.rows * m.cols));
    for (int64_t r = 0; r < m.rows; ++r)
      for (int64_t c = 0; c < m.cols; ++c) w[size_t(r * m.cols + c)] = double(q(r, c)) * double(scale(r, c));
    return w;
  }

  QuantizedMatrix m;

 private:
  std::vector<uint8_t> data_;
  std::vector<float> scales_;
};

std::vector<uint32_t> bits(const HostTensor& t) {
  std::vector<uint32_t> b(t.t().nbytes() / 4);
  std::memcpy(b.data(), t.t().data(), b.size() * 4);
  return b;
}

// ---- quantize: the layout, by hand -----------------------------------------------------------

TEST_F(OpTest, QuantizeInt8LayoutByHand) {
  // Row 0: max |w| 63.5 -> scale 0.5; w / scale = 2.5, -3.5, 127, 1 -> ties go to even: 2, -4.
  // Row 1: all zero -> scale 0, q 0. Every value is exact in f16 and bf16 too.
  const std::vector<float> w = {1.25f, -1.75f, 63.5f, 0.5f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
    HostTensor W(dt, {2, 4}, w);
    QMat Q(QuantKind::Int8, 2, 4, 4);
    cpu.quantize(W, Q.m);
    const std::vector<uint8_t> want = {2, uint8_t(-4), 127, 1, 0, 0, 0, 0};
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(Q.byte(i), want[i]) << "byte " << i << " from " << dtype_name(dt);
    EXPECT_EQ(Q.scale_at(0), 0.5f);
    EXPECT_EQ(Q.scale_at(1), 0.0f);
  }
}

TEST_F(OpTest, QuantizeInt4LayoutByHand) {
  // Group 0: max |w| 1.75 -> scale 0.25; q = 7, -1.5 -> -2, 0.5 -> 0, -7; stored q + 8 = 15, 6, 8, 1,
  // column 2j in the low nibble of byte j: 0x6F, 0x18. Group 1 is zero: scale 0, bytes 0x88.
  // Group 2: max 0.7 -> scale 0.7f / 7 == 0.1f; 0.35f / 0.1f is exactly 3.5 in fp32, a tie -> 4;
  // q = 4, -7, 0, 1 -> stored 12, 1, 8, 9 -> bytes 0x1C, 0x98.
  const std::vector<float> w = {1.75f, -0.375f, 0.125f, -1.75f, 0, 0, 0, 0, 0.35f, -0.7f, 0.0f, 0.1f};
  HostTensor W(DType::F32, {1, 12}, w);
  QMat Q(QuantKind::Int4, 1, 12, 4);
  cpu.quantize(W, Q.m);
  const std::vector<uint8_t> want = {0x6F, 0x18, 0x88, 0x88, 0x1C, 0x98};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(Q.byte(i), want[i]) << "byte " << i;
  EXPECT_EQ(Q.scale_at(0), 0.25f);
  EXPECT_EQ(Q.scale_at(1), 0.0f);
  EXPECT_EQ(Q.scale_at(2), 0.1f);
}

// ---- quantize: the round trip ------------------------------------------------------------------

struct QuantCase {
  QuantKind kind;
  int64_t rows, cols, group;
};

void check_round_trip(const std::vector<float>& w, const QMat& Q, const char* what) {
  const QuantizedMatrix& m = Q.m;
  const float qmax = m.kind == QuantKind::Int4 ? 7.0f : 127.0f;
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t g = 0; g < m.cols / m.group; ++g) {
      float amax = 0;
      for (int64_t c = g * m.group; c < (g + 1) * m.group; ++c)
        amax = std::max(amax, std::fabs(w[size_t(r * m.cols + c)]));
      const float s = Q.scale(r, g * m.group);
      ASSERT_EQ(s, amax / qmax) << what << ": scale of row " << r << " group " << g;
      for (int64_t c = g * m.group; c < (g + 1) * m.group; ++c) {
        const int q = Q.q(r, c);
        ASSERT_LE(std::abs(q), int(qmax)) << what;
        const double err = std::abs(double(q) * s - double(w[size_t(r * m.cols + c)]));
        // Half a step, plus the rounding of w / scale in fp32 (half an ulp of qmax).
        ASSERT_LE(err, double(s) * (0.5 + double(qmax) * 0x1p-24))
            << what << ": row " << r << " col " << c << " q " << q;
      }
    }
  }
}

TEST_F(OpTest, QuantizeRoundTripIsWithinHalfAStep) {
  for (const QuantCase c : {QuantCase{QuantKind::Int8, 33, 896, 896}, QuantCase{QuantKind::Int8, 7, 64, 32},
                            QuantCase{QuantKind::Int4, 31, 896, 32}, QuantCase{QuantKind::Int4, 9, 4864, 64},
                            QuantCase{QuantKind::Int4, 5, 12, 2}}) {
    for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
      auto w = rounded(randn(g, size_t(c.rows * c.cols), 0.05f), dt);
      for (int64_t i = 0; i < c.cols; ++i) w[size_t(i)] = 0.0f;  // a zero row
      HostTensor W(dt, {c.rows, c.cols}, w);
      QMat Q(c.kind, c.rows, c.cols, c.group);
      cpu.quantize(W, Q.m);
      check_round_trip(w, Q, dtype_name(dt).data());
    }
  }
}

// quant_embedding returns float(q) * scale, rounded once into the output dtype.
TEST_F(OpTest, QuantEmbeddingDequantizesSelectedRows) {
  for (const QuantCase c : {QuantCase{QuantKind::Int8, 37, 96, 96}, QuantCase{QuantKind::Int4, 37, 128, 32}}) {
    const auto w = randn(g, size_t(c.rows * c.cols));
    HostTensor W(DType::F32, {c.rows, c.cols}, w);
    QMat Q(c.kind, c.rows, c.cols, c.group);
    cpu.quantize(W, Q.m);
    const std::vector<int32_t> ids = {0, 36, 5, 5, 17};
    const int64_t N = int64_t(ids.size());
    for (DType dt : {DType::F32, DType::BF16}) {
      HostTensor Ids(DType::I32, {N}, ids), Out(dt, {N, c.cols});
      cpu.quant_embedding(Ids, Q.m, Out);
      std::vector<float> want(static_cast<size_t>(N * c.cols));
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < c.cols; ++k)
          want[size_t(n * c.cols + k)] = float(Q.q(ids[size_t(n)], k)) * Q.scale(ids[size_t(n)], k);
      expect_close(Out.values(), ref::to_d(rounded(want, dt)), 0.0, "out");
    }
  }
}

// ---- quant_matmul ----------------------------------------------------------------------------

struct MatmulCase {
  QuantKind kind;
  int64_t rows, cols, group, N;
  DType x, y;
  bool bias;
};

class QuantMatmulTest : public OpTest, public ::testing::WithParamInterface<MatmulCase> {};

// Every kernel this CPU runs is compared with the float64 reference and, bit for bit, with the
// portable kernel.
TEST_P(QuantMatmulTest, EveryKernelMatchesFloat64AndEachOther) {
  const MatmulCase c = GetParam();
  const auto w = randn(g, size_t(c.rows * c.cols), 0.05f);
  const auto x = rounded(randn(g, size_t(c.N * c.cols)), c.x), b = rounded(randn(g, size_t(c.rows)), c.x);
  HostTensor W(DType::F32, {c.rows, c.cols}, w), X(c.x, {c.N, c.cols}, x), Bias(c.x, {c.rows}, b);
  QMat Q(c.kind, c.rows, c.cols, c.group);
  cpu.quantize(W, Q.m);

  const ref::Vec wd = Q.dequant();
  ref::Vec want(static_cast<size_t>(c.N * c.rows));
  for (int64_t n = 0; n < c.N; ++n) {
    for (int64_t r = 0; r < c.rows; ++r) {
      double s = c.bias ? double(b[size_t(r)]) : 0.0;
      for (int64_t k = 0; k < c.cols; ++k) s += double(x[size_t(n * c.cols + k)]) * wd[size_t(r * c.cols + k)];
      want[size_t(n * c.rows + r)] = s;
    }
  }
  std::vector<uint32_t> first;
  for (cpu::QuantIsa isa : cpu::quant_isas_supported()) {
    SCOPED_TRACE(cpu::quant_isa_name(isa));
    HostTensor Y(c.y, {c.N, c.rows});
    cpu::quant_matmul_isa(X, Q.m, Y, c.bias ? &Bias.t() : nullptr, isa);
    // fp32 accumulation of dequantized weights: 1e-5 of the output's scale (the quantization
    // error itself is not measured here: the reference multiplies the same q * scale).
    expect_close(Y.values(), want, std::max(storage_tol(c.y), 1e-5), "y");
    const auto got = bits(Y);
    if (first.empty()) {
      first = got;
    } else {
      EXPECT_TRUE(got == first) << "differs from the " << cpu::quant_isa_name(cpu::QuantIsa::Portable) << " kernel";
    }
  }
}

constexpr QuantKind I8 = QuantKind::Int8, I4 = QuantKind::Int4;
INSTANTIATE_TEST_SUITE_P(Shapes, QuantMatmulTest,
                         ::testing::Values(
                             // int8, one scale per row (group == cols)
                             MatmulCase{I8, 1, 64, 64, 1, DType::F32, DType::F32, false},
                             MatmulCase{I8, 31, 896, 896, 3, DType::F32, DType::F32, true},
                             MatmulCase{I8, 33, 4864, 4864, 17, DType::F32, DType::F32, false},
                             MatmulCase{I8, 4099, 896, 896, 1, DType::F32, DType::F32, true},
                             MatmulCase{I8, 4099, 64, 64, 17, DType::BF16, DType::F32, false},
                             MatmulCase{I8, 33, 896, 896, 5, DType::F16, DType::F16, true},
                             // int4, groups of 32 and 64
                             MatmulCase{I4, 1, 64, 32, 17, DType::F32, DType::F32, true},
                             MatmulCase{I4, 33, 896, 32, 1, DType::F32, DType::F32, false},
                             MatmulCase{I4, 31, 4864, 32, 3, DType::F32, DType::F32, false},
                             MatmulCase{I4, 4099, 896, 64, 17, DType::F32, DType::F32, false},
                             MatmulCase{I4, 1, 4864, 64, 1, DType::F32, DType::F32, true},
                             MatmulCase{I4, 33, 4864, 64, 17, DType::BF16, DType::BF16, true},
                             MatmulCase{I4, 4099, 64, 64, 3, DType::F32, DType::F32, false},
                             // more tokens than one block of the prefill kernels, columns not a multiple of its blocks
                             MatmulCase{I8, 67, 896, 896, 50, DType::F32, DType::F32, true},
                             MatmulCase{I4, 70, 1056, 32, 31, DType::F32, DType::F32, false},
                             // groups the vector kernels leave to the portable one: same function, same bits
                             MatmulCase{I8, 5, 100, 100, 1, DType::F32, DType::F32, false},
                             MatmulCase{I8, 9, 96, 48, 7, DType::F32, DType::F32, true},
                             MatmulCase{I4, 7, 80, 2, 3, DType::F32, DType::F32, false},
                             MatmulCase{I4, 6, 112, 16, 9, DType::F32, DType::F32, true}));

// QuantizedMatrix::int8_activations through the op (bias, bf16 in and out): below 4 tokens the
// exact path, bit for bit; from 4 the int8 path (checked against float64 in int8_dot_test.cpp),
// within the activations' rounding of the exact product and not equal to it.
TEST_F(OpTest, QuantMatmulInt8ActivationsFromFourTokens) {
  for (const QuantCase c : {QuantCase{I8, 70, 896, 64}, QuantCase{I4, 33, 4864, 32}}) {
    HostTensor W(DType::F32, {c.rows, c.cols}, randn(g, size_t(c.rows * c.cols), 0.05f));
    QMat Q(c.kind, c.rows, c.cols, c.group);
    cpu.quantize(W, Q.m);
    HostTensor Bias(DType::BF16, {c.rows}, rounded(randn(g, size_t(c.rows)), DType::BF16));
    for (const int64_t N : {int64_t{3}, int64_t{9}}) {
      HostTensor X(DType::BF16, {N, c.cols}, rounded(randn(g, size_t(N * c.cols)), DType::BF16));
      std::vector<uint32_t> out[2];
      std::vector<float> vals[2];
      for (const bool int8 : {false, true}) {
        Q.m.int8_activations = int8;
        HostTensor Y(DType::F32, {N, c.rows});
        cpu.quant_matmul(X, Q.m, Y, &Bias.t());
        out[int8] = bits(Y);
        vals[int8] = Y.values();
      }
      if (N < 4) {
        EXPECT_TRUE(out[0] == out[1]) << "below 4 tokens the flag changes nothing";
      } else {
        EXPECT_FALSE(out[0] == out[1]) << "the int8 path was not taken";
        EXPECT_LE(norm_rel_err(vals[1], vals[0]), 2e-2) << "int8 activations against the exact product";
      }
    }
    Q.m.int8_activations = false;
  }
}

// Token n's result does not depend on the rest of the batch (decode and prefill agree bit for
// bit) nor on the thread count.
TEST_F(OpTest, QuantMatmulIsBatchAndThreadInvariant) {
  for (const QuantCase c : {QuantCase{I8, 203, 896, 896}, QuantCase{I4, 203, 896, 64}}) {
    const int64_t N = 17;
    HostTensor W(DType::F32, {c.rows, c.cols}, randn(g, size_t(c.rows * c.cols)));
    const auto x = randn(g, size_t(N * c.cols));
    HostTensor X(DType::F32, {N, c.cols}, x), Y(DType::F32, {N, c.rows});
    QMat Q(c.kind, c.rows, c.cols, c.group);
    cpu.quantize(W, Q.m);
    for (cpu::QuantIsa isa : cpu::quant_isas_supported()) {
      SCOPED_TRACE(cpu::quant_isa_name(isa));
      cpu::quant_matmul_isa(X, Q.m, Y, nullptr, isa);
      const auto all = bits(Y);
      for (int64_t n : {int64_t{0}, int64_t{5}, N - 1}) {
        HostTensor X1(DType::F32, {1, c.cols},
                      std::vector<float>(x.begin() + n * c.cols, x.begin() + (n + 1) * c.cols));
        HostTensor Y1(DType::F32, {1, c.rows});
        cpu::quant_matmul_isa(X1, Q.m, Y1, nullptr, isa);
        EXPECT_TRUE(std::equal(all.begin() + n * c.rows, all.begin() + (n + 1) * c.rows, bits(Y1).begin()))
            << "token " << n;
      }
      for (int threads : {1, 3}) {
        CpuBackend other(threads);
        HostTensor Yt(DType::F32, {N, c.rows});
        cpu::quant_matmul_isa(X, Q.m, Yt, nullptr, isa);
        EXPECT_TRUE(bits(Yt) == all) << threads << " threads";
      }
      CpuBackend restore(0);
    }
  }
}

// x may be a column block of a wider buffer, y a column block too (dense rows, strided).
TEST_F(OpTest, QuantMatmulReadsStridedRows) {
  const int64_t N = 5, rows = 40, cols = 128, W0 = 3, Wx = cols + 9, Wy = rows + 6;
  const auto w = randn(g, size_t(rows * cols)), full = randn(g, size_t(N * Wx));
  HostTensor W(DType::F32, {rows, cols}, w), Xfull(DType::F32, {N, Wx}, full), Yfull(DType::F32, {N, Wy});
  QMat Q(I4, rows, cols, 32);
  cpu.quantize(W, Q.m);
  cpu.quant_matmul(Xfull.t().slice(1, W0, W0 + cols), Q.m, Yfull.t().slice(1, 2, 2 + rows), nullptr);
  const ref::Vec wd = Q.dequant();
  ref::Vec want(static_cast<size_t>(N * rows)), got(want.size());
  const auto yv = Yfull.values();
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t r = 0; r < rows; ++r) {
      double s = 0;
      for (int64_t k = 0; k < cols; ++k) s += double(full[size_t(n * Wx + W0 + k)]) * wd[size_t(r * cols + k)];
      want[size_t(n * rows + r)] = s;
      got[size_t(n * rows + r)] = yv[size_t(n * Wy + 2 + r)];
    }
  }
  expect_close(got, want, 1e-5, "y");
}

// LLM_CPU_KERNELS picks the kernel of the backend op; all give the same bits.
TEST_F(OpTest, QuantMatmulKernelChoiceFromEnvironment) {
  const int64_t N = 2, rows = 21, cols = 256;
  HostTensor W(DType::F32, {rows, cols}, randn(g, size_t(rows * cols))),
      X(DType::F32, {N, cols}, randn(g, size_t(N * cols)));
  QMat Q(I4, rows, cols, 64);
  cpu.quantize(W, Q.m);
  const char* old = std::getenv("LLM_CPU_KERNELS");
  const std::string saved = old != nullptr ? old : "";
  std::vector<uint32_t> first;
  for (cpu::QuantIsa isa : cpu::quant_isas_supported()) {
    setenv("LLM_CPU_KERNELS", cpu::quant_isa_name(isa), 1);
    EXPECT_EQ(cpu::quant_isa_from_env("quant_matmul"), isa);
    HostTensor Y(DType::F32, {N, rows});
    cpu.quant_matmul(X, Q.m, Y, nullptr);
    if (first.empty()) first = bits(Y);
    EXPECT_TRUE(bits(Y) == first) << cpu::quant_isa_name(isa);
  }
  setenv("LLM_CPU_KERNELS", "sse9", 1);
  HostTensor Y(DType::F32, {N, rows});
  expect_error([&] { cpu.quant_matmul(X, Q.m, Y, nullptr); },
               "quant_matmul: LLM_CPU_KERNELS=sse9 is not one of portable, avx2, avx512, auto");
  if (old != nullptr) {
    setenv("LLM_CPU_KERNELS", saved.c_str(), 1);
  } else {
    unsetenv("LLM_CPU_KERNELS");
  }
}

// ---- bad input ---------------------------------------------------------------------------------

TEST_F(OpTest, QuantOpsRejectBadInput) {
  HostTensor W(DType::F32, {4, 64}, randn(g, 256)), X(DType::F32, {2, 64}), Y(DType::F32, {2, 4});
  {
    QMat Q(I8, 4, 64, 48);
    expect_error([&] { cpu.quantize(W, Q.m); }, "quantize: group 48 must be positive and divide cols 64");
  }
  {
    QMat Q(I4, 4, 64, 32);
    Q.m.group = 1;
    expect_error([&] { cpu.quantize(W, Q.m); }, "quantize: int4 needs an even group (two columns per byte), got 1");
    Q.m.group = 32;
    Q.m.data = Tensor(Q.m.data.data(), DType::I8, {4, 32});
    expect_error([&] { cpu.quantize(W, Q.m); }, "quantize: the quantized data is i8, expected u8");
  }
  {
    QMat Q(I8, 4, 64, 64);
    HostTensor Bad(DType::F32, {4, 64}, randn(g, 256));
    Bad.t().ptr<float>()[2 * 64 + 7] = INFINITY;
    expect_error([&] { cpu.quantize(Bad, Q.m); }, "quantize: row 2 of w holds a non-finite value (inf or nan)");
    Bad.t().ptr<float>()[2 * 64 + 7] = 0.0f;
    Bad.t().ptr<float>()[3 * 64 + 1] = NAN;
    expect_error([&] { cpu.quantize(Bad, Q.m); }, "quantize: row 3 of w holds a non-finite value (inf or nan)");
    cpu.quantize(W, Q.m);
    HostTensor X2(DType::F32, {2, 63});
    expect_error([&] { cpu.quant_matmul(X2, Q.m, Y, nullptr); },
                 "quant_matmul: x is [2, 63] f32, expected [N, 64] (the quantized matrix has 64 columns)");
    HostTensor Y2(DType::F32, {2, 5});
    expect_error([&] { cpu.quant_matmul(X, Q.m, Y2, nullptr); }, "quant_matmul: y is [2, 5] f32, expected [2, 4]");
    HostTensor B(DType::F32, {3});
    expect_error([&] { cpu.quant_matmul(X, Q.m, Y, &B.t()); }, "quant_matmul: bias is [3] f32, expected [4]");
    HostTensor Ids(DType::I32, {2}, std::vector<int32_t>{1, 4}), Out(DType::F32, {2, 64});
    expect_error([&] { cpu.quant_embedding(Ids, Q.m, Out); },
                 "quant_embedding: token id 4 at position 1 is outside the vocabulary [0, 4)");
  }
}

}  // namespace
}  // namespace llm::test
