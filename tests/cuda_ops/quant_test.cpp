// quantize / quant_matmul / quant_embedding on the CUDA backend (under the emulator in CI) against
// the CPU op. quantize and quant_embedding must give the CPU's bytes exactly (same rounding
// rules); quant_matmul sums the same dequantized products in another order, so it is compared at
// 1e-5 relative (fp32 outputs). The cases cover every kernel path (gemv with each lane-group
// width, tiled, generic), int8 per-row and grouped scales, int4 g32/g64 and odd groups, x and y
// in each float dtype, bias, strided and unaligned operands.
#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "cuda_op_test.h"
#include "quant.cuh"

namespace llm::test {
namespace {

int64_t row_bytes(QuantKind k, int64_t cols) { return k == QuantKind::Int4 ? cols / 2 : cols; }
DType data_dtype(QuantKind k) { return k == QuantKind::Int4 ? DType::U8 : DType::I8; }

// A QuantizedMatrix in host memory (filled by the CPU op).
struct HostQuant {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  QuantizedMatrix m;
  HostQuant(QuantKind kind, int64_t rows, int64_t cols, int64_t group)
      : data(static_cast<size_t>(rows * row_bytes(kind, cols)) + 16),
        scales(static_cast<size_t>(rows * (cols / group)) + 4) {
    m.kind = kind;
    m.rows = rows;
    m.cols = cols;
    m.group = group;
    m.data = Tensor(data.data(), data_dtype(kind), {rows, row_bytes(kind, cols)});
    m.scales = Tensor(scales.data(), DType::F32, {rows, cols / group});
  }
};

// The same matrix on the device; the data rows `pad` bytes apart beyond their length.
struct DevQuant {
  OwnedTensor data, scales;
  QuantizedMatrix m;
};

class CudaQuant : public CudaOpTest {
 protected:
  DevQuant upload(const HostQuant& h, int64_t pad = 0) {
    const int64_t rows = h.m.rows, rb = row_bytes(h.m.kind, h.m.cols), ld = rb + pad;
    DevQuant d;
    std::vector<uint8_t> padded(static_cast<size_t>(rows * ld) + 1, 0xEE);
    for (int64_t r = 0; r < rows; ++r) std::memcpy(&padded[size_t(r * ld)], &h.data[size_t(r * rb)], size_t(rb));
    d.data = dev.tensor(data_dtype(h.m.kind), {rows, ld});
    if (rows * ld > 0) cuda.upload(d.data, padded.data());
    d.scales = dev.tensor(DType::F32, {rows, h.m.cols / h.m.group});
    if (rows > 0) cuda.upload(d.scales, h.scales.data());
    d.m = h.m;
    d.m.data = d.data.t().slice(1, 0, rb);
    d.m.scales = d.scales.t();
    return d;
  }
  DevQuant empty_device(QuantKind kind, int64_t rows, int64_t cols, int64_t group) {
    DevQuant d;
    d.data = dev.tensor(data_dtype(kind), {rows, row_bytes(kind, cols)});
    d.scales = dev.tensor(DType::F32, {rows, cols / group});
    d.m.kind = kind;
    d.m.rows = rows;
    d.m.cols = cols;
    d.m.group = group;
    d.m.data = d.data.t();
    d.m.scales = d.scales.t();
    return d;
  }
  std::vector<uint8_t> bytes(const Tensor& t) {
    std::vector<uint8_t> b(t.nbytes());
    if (!b.empty()) cuda.download(t, b.data());
    return b;
  }
  // Weights with the cases quantize must get exactly right: a zero group, a group whose
  // amax / qmax underflows to 0, one where it is subnormal and inexact, halfway ties.
  std::vector<float> weights(int64_t rows, int64_t cols, int64_t group, float qmax) {
    std::vector<float> w = randn(g, size_t(rows * cols));
    if (rows < 3 || cols < 2 * group) return w;
    for (int64_t c = 0; c < group; ++c) {
      w[size_t(c)] = 0.0f;                                                   // row 0, group 0: zeros
      w[size_t(cols + c)] = (c % 2 ? -1.0f : 1.0f) * 1e-45f * float(c % 3);  // row 1: denormals
      w[size_t(cols + group + c)] = float(c % 5) * 3e-43f;                   // row 1, group 1
      // row 2, group 0: max qmax so scale is 1, and values on .5 steps (ties to even)
      w[size_t(2 * cols + c)] = c == 0 ? qmax : std::fmod(float(c) * 0.5f, qmax) - 0.5f * qmax;
    }
    return w;
  }
};

// ---- quantize -----------------------------------------------------------------------------------
TEST_F(CudaQuant, QuantizeMatchesCpuBitwise) {
  struct Case {
    QuantKind kind;
    int64_t rows, cols, group;
  };
  const Case cases[] = {{QuantKind::Int8, 33, 192, 192}, {QuantKind::Int8, 31, 192, 32},
                        {QuantKind::Int8, 3, 192, 6},    {QuantKind::Int8, 1, 4099, 4099},
                        {QuantKind::Int4, 33, 192, 32},  {QuantKind::Int4, 31, 192, 64},
                        {QuantKind::Int4, 5, 192, 2},    {QuantKind::Int4, 4, 198, 6}};
  for (const Case& c : cases) {
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
      SCOPED_TRACE(cat(c.kind == QuantKind::Int4 ? "int4" : "int8", " ", c.rows, "x", c.cols, " group ", c.group, " ",
                       dtype_name(dt)));
      HostTensor W(dt, {c.rows, c.cols}, weights(c.rows, c.cols, c.group, c.kind == QuantKind::Int4 ? 7.0f : 127.0f));
      HostQuant want(c.kind, c.rows, c.cols, c.group);
      cpu.quantize(W, want.m);
      OwnedTensor w = to_device(W);
      DevQuant got = empty_device(c.kind, c.rows, c.cols, c.group);
      cuda.quantize(w, got.m);
      const std::vector<uint8_t> data = bytes(got.m.data), scales = bytes(got.m.scales);
      EXPECT_EQ(std::memcmp(data.data(), want.data.data(), data.size()), 0) << "data bytes";
      EXPECT_EQ(std::memcmp(scales.data(), want.scales.data(), scales.size()), 0) << "scale bits";
    }
  }
}

TEST_F(CudaQuant, QuantizeReadsStridedRows) {
  const int64_t rows = 7, cols = 64, ld = 80;
  HostTensor Wb(DType::BF16, {rows, ld}, randn(g, size_t(rows * ld)));
  HostQuant want(QuantKind::Int4, rows, cols, 32);
  cpu.quantize(Wb.t().slice(1, 0, cols), want.m);
  OwnedTensor wb = to_device(Wb);
  DevQuant got = empty_device(QuantKind::Int4, rows, cols, 32);
  cuda.quantize(wb.t().slice(1, 0, cols), got.m);
  const std::vector<uint8_t> data = bytes(got.m.data), scales = bytes(got.m.scales);
  EXPECT_EQ(std::memcmp(data.data(), want.data.data(), data.size()), 0);
  EXPECT_EQ(std::memcmp(scales.data(), want.scales.data(), scales.size()), 0);
}

TEST_F(CudaQuant, QuantizeReportsTheFirstNonFiniteRow) {
  const int64_t rows = 6, cols = 64;
  std::vector<float> v = randn(g, size_t(rows * cols));
  v[size_t(4 * cols + 9)] = std::numeric_limits<float>::quiet_NaN();
  v[size_t(3 * cols + 40)] = std::numeric_limits<float>::infinity();
  HostTensor W(DType::F32, {rows, cols}, v);
  OwnedTensor w = to_device(W);
  DevQuant got = empty_device(QuantKind::Int8, rows, cols, 32);
  try {
    cuda.quantize(w, got.m);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("quantize: row 3 of w holds a non-finite value (inf or nan)"),
              std::string::npos)
        << e.what();
  }
}

// ---- quant_matmul --------------------------------------------------------------------------------
struct MmCase {
  QuantKind kind;
  int64_t rows, cols, group, N;
  DType x_type, y_type;
  bool bias;
  int64_t data_pad = 0;  // bytes between data rows beyond their length
  int64_t x_offset = 0;  // x starts this many elements into a wider buffer (misaligned)
};

std::string name_of(const MmCase& c) {
  return cat(c.kind == QuantKind::Int4 ? "int4" : "int8", " ", c.rows, "x", c.cols, " g", c.group, " N", c.N, " x ",
             dtype_name(c.x_type), " y ", dtype_name(c.y_type), c.bias ? " bias" : "", " pad ", c.data_pad, " xoff ",
             c.x_offset);
}

TEST_F(CudaQuant, QuantMatmulMatchesCpu) {
  using K = QuantKind;
  const DType F32 = DType::F32, F16 = DType::F16, BF16 = DType::BF16;
  const MmCase cases[] = {
      // gemv (N <= 16): lane groups of 8 (12 chunks), 64 (128 chunks), 128, 256 lanes
      {K::Int8, 33, 192, 192, 1, F32, F32, false},
      {K::Int8, 31, 192, 32, 2, BF16, F32, true},
      {K::Int8, 1, 192, 64, 3, F16, BF16, false},
      {K::Int8, 37, 2048, 2048, 1, F32, F32, true},
      {K::Int8, 9, 4096, 256, 5, BF16, F32, false},
      {K::Int8, 5, 8192, 8192, 1, F32, F32, false},
      {K::Int4, 33, 192, 32, 1, F32, F32, false},
      {K::Int4, 67, 256, 64, 4, BF16, BF16, true},
      {K::Int4, 3, 4096, 64, 16, F16, F32, false},
      {K::Int8, 33, 192, 16, 1, F32, F32, false, 16},  // strided but aligned data rows
      // tiled (larger N, or x misaligned)
      {K::Int8, 67, 192, 192, 70, F32, F32, true},
      {K::Int4, 33, 96, 32, 17, BF16, F16, false},
      {K::Int4, 65, 64, 64, 65, F16, F32, true},
      {K::Int8, 31, 48, 16, 2, F32, F32, false, 0, 1},  // 48 columns: a half-empty tile; x misaligned
      // generic (odd groups, unaligned data rows, cols not a multiple of a chunk)
      {K::Int8, 33, 192, 6, 3, F32, F32, true},
      {K::Int4, 31, 198, 6, 20, BF16, F32, false},
      {K::Int8, 17, 200, 200, 1, F16, F32, false},
      {K::Int8, 33, 192, 192, 2, F32, F32, false, 8},
  };
  std::set<std::string> paths;
  for (const MmCase& c : cases) {
    SCOPED_TRACE(name_of(c));
    const float qmax = c.kind == K::Int4 ? 7.0f : 127.0f;
    HostTensor W(DType::F32, {c.rows, c.cols}, weights(c.rows, c.cols, c.group, qmax));
    HostQuant q(c.kind, c.rows, c.cols, c.group);
    cpu.quantize(W, q.m);
    const DevQuant dq = upload(q, c.data_pad);
    const int64_t xw = c.cols + c.x_offset;
    HostTensor Xb(c.x_type, {c.N, xw}, randn(g, size_t(c.N * xw)));
    HostTensor B(c.x_type, {c.rows}, randn(g, size_t(c.rows)));
    HostTensor Y(c.y_type, {c.N, c.rows});
    const Tensor xh = Xb.t().slice(1, c.x_offset, xw);
    cpu.quant_matmul(xh, q.m, Y, c.bias ? &B.t() : nullptr);
    OwnedTensor xb = to_device(Xb), b = to_device(B), y = dev.tensor(c.y_type, {c.N, c.rows});
    const Tensor xd = xb.t().slice(1, c.x_offset, xw);
    const LLM_CUDA_NS::QuantDev view{c.kind == K::Int4,
                                     c.rows,
                                     c.cols,
                                     c.group,
                                     dq.m.data.ptr<uint8_t>(),
                                     dq.m.data.size(0) > 1 ? dq.m.data.stride(0) : dq.m.data.size(1),
                                     dq.m.scales.ptr<float>(),
                                     c.cols / c.group};
    paths.insert(
        LLM_CUDA_NS::quant_matmul_path(view, {xd.data(), c.x_type, xd.size(0) > 1 ? xd.stride(0) : c.cols}, c.N));
    cuda.quant_matmul(xd, dq.m, y, c.bias ? &b.t() : nullptr);
    expect_near_rel(values(y), Y.values(), c.y_type == F32 ? 1e-5 : 1e-2, "y");
  }
  EXPECT_EQ(paths, (std::set<std::string>{"gemv", "tiled", "generic"}));
}

// A prefill of N tokens and N single-token calls agree to fp32 rounding (different kernels).
TEST_F(CudaQuant, QuantMatmulPrefillMatchesDecode) {
  const int64_t rows = 40, cols = 256, N = 20;
  HostTensor W(DType::F32, {rows, cols}, randn(g, size_t(rows * cols)));
  HostQuant q(QuantKind::Int4, rows, cols, 32);
  cpu.quantize(W, q.m);
  const DevQuant dq = upload(q);
  HostTensor X(DType::F32, {N, cols}, randn(g, size_t(N * cols)));
  OwnedTensor x = to_device(X), y = dev.tensor(DType::F32, {N, rows}), y1 = dev.tensor(DType::F32, {N, rows});
  cuda.quant_matmul(x, dq.m, y, nullptr);
  for (int64_t n = 0; n < N; ++n) cuda.quant_matmul(x.t().slice(0, n, n + 1), dq.m, y1.t().slice(0, n, n + 1), nullptr);
  expect_near_rel(values(y1), values(y), 1e-5, "decode vs prefill");
}

TEST_F(CudaQuant, QuantMatmulChecksArguments) {
  HostQuant q(QuantKind::Int8, 4, 64, 64);
  const DevQuant dq = upload(q);
  OwnedTensor x = dev.tensor(DType::F32, {2, 63}), y = dev.tensor(DType::F32, {2, 4});
  try {
    cuda.quant_matmul(x, dq.m, y, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "quant_matmul: x is [2, 63] f32, expected [N, 64] (the quantized matrix has 64 columns)"),
              std::string::npos)
        << e.what();
  }
  QuantizedMatrix bad = dq.m;
  bad.group = 30;
  OwnedTensor x64 = dev.tensor(DType::F32, {2, 64});
  EXPECT_THROW(cuda.quant_matmul(x64, bad, y, nullptr), Error);
}

// ---- quant_embedding --------------------------------------------------------------------------------
TEST_F(CudaQuant, QuantEmbeddingMatchesCpuBitwise) {
  struct Case {
    QuantKind kind;
    int64_t rows, cols, group;
  };
  const Case cases[] = {{QuantKind::Int8, 33, 192, 192},
                        {QuantKind::Int8, 31, 66, 6},
                        {QuantKind::Int4, 33, 192, 32},
                        {QuantKind::Int4, 17, 4098, 2}};
  for (const Case& c : cases) {
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
      SCOPED_TRACE(cat(c.kind == QuantKind::Int4 ? "int4" : "int8", " ", c.rows, "x", c.cols, " group ", c.group, " ",
                       dtype_name(dt)));
      HostTensor W(DType::F32, {c.rows, c.cols}, randn(g, size_t(c.rows * c.cols)));
      HostQuant q(c.kind, c.rows, c.cols, c.group);
      cpu.quantize(W, q.m);
      const DevQuant dq = upload(q, c.kind == QuantKind::Int8 ? 3 : 0);
      std::uniform_int_distribution<int32_t> id(0, int32_t(c.rows - 1));
      std::vector<int32_t> ids(33);
      for (auto& v : ids) v = id(g);
      ids[5] = ids[6];               // a repeated id
      ids[7] = int32_t(c.rows - 1);  // the last row
      const int64_t N = int64_t(ids.size());
      HostTensor I(DType::I32, {N}, ids), O(dt, {N, c.cols});
      cpu.quant_embedding(I, q.m, O);
      OwnedTensor i = to_device(I), o = dev.tensor(dt, {N, c.cols});
      cuda.quant_embedding(i, dq.m, o);
      const std::vector<uint8_t> got = bytes(o);
      EXPECT_EQ(std::memcmp(got.data(), O.t().data(), got.size()), 0);
    }
  }
}

TEST_F(CudaQuant, QuantEmbeddingRejectsIdsOutsideTheTable) {
  HostQuant q(QuantKind::Int4, 33, 64, 32);
  const DevQuant dq = upload(q);
  for (const auto& [ids, want] :
       {std::pair{std::vector<int32_t>{0, 5, 40, 33},
                  "quant_embedding: token id 40 at position 2 is outside the vocabulary [0, 33)"},
        std::pair{std::vector<int32_t>{-1, 5},
                  "quant_embedding: token id -1 at position 0 is outside the vocabulary [0, 33)"}}) {
    HostTensor I(DType::I32, {int64_t(ids.size())}, ids);
    OwnedTensor i = to_device(I), o = dev.tensor(DType::F32, {int64_t(ids.size()), 64});
    try {
      cuda.quant_embedding(i, dq.m, o);
      ADD_FAILURE() << "no error for " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace llm::test
