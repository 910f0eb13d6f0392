// quant_matmul and quant_embedding on ggml block formats on the CPU (ggml_kernels.h). The block
// decoders follow ggml's dequantize_row_* (ggml-quants.c) operation for operation; the loops are
// written so that the compiler vectorises them, in one clone per instruction set (LLM_CPU_CLONES:
// baseline, AVX2, AVX-512), picked at run time.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "backend/cpu/cpu_util.h"
#include "backend/cpu/ggml_kernels.h"
#include "llm/dtype.h"

namespace llm::cpu {

namespace {

constexpr int kQK = 32;    // q8_0, q4_0, q5_0 block
constexpr int kQKK = 256;  // q4_K, q6_K super-block
// Tokens from which a tile of rows is decoded once and multiplied by sgemm.
constexpr int64_t kTileMinTokens = 4;
constexpr int64_t kTileRows = 64;
// Floats of decoded weights per group of rows in the decode path (32 KiB: stays in L1/L2).
constexpr int64_t kDecodeGroupFloats = 8192;

LLM_CPU_CLONES void decode_q8_0(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 34) {
    const float d = ggml_f16_at(y);
    for (int j = 0; j < kQK; ++j) x[j] = static_cast<float>(static_cast<int8_t>(y[2 + j])) * d;
  }
}

LLM_CPU_CLONES void decode_q4_0(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 18) {
    const float d = ggml_f16_at(y);
    for (int j = 0; j < kQK / 2; ++j) {
      x[j] = static_cast<float>((y[2 + j] & 0x0F) - 8) * d;
      x[j + kQK / 2] = static_cast<float>((y[2 + j] >> 4) - 8) * d;
    }
  }
}

LLM_CPU_CLONES void decode_q5_0(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 22) {
    const float d = ggml_f16_at(y);
    uint32_t qh;
    std::memcpy(&qh, y + 2, 4);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint32_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
      x[j] = static_cast<float>(static_cast<int>((y[6 + j] & 0x0Fu) | h0) - 16) * d;
      x[j + kQK / 2] = static_cast<float>(static_cast<int>((y[6 + j] >> 4) | h1) - 16) * d;
    }
  }
}

// block_q4_K: d (f16) at 0, dmin (f16) at 2, scales[12] at 4, qs[128] at 16.
LLM_CPU_CLONES void decode_q4_K(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, y += 144) {
    const float d = ggml_f16_at(y), min = ggml_f16_at(y + 2);
    const uint8_t* q = y + 16;
    for (int j = 0, is = 0; j < kQKK; j += 64, q += 32, is += 2, x += 64) {
      int s, m;
      ggml_scale_min_k4(is, y + 4, s, m);
      const float d1 = d * static_cast<float>(s), m1 = min * static_cast<float>(m);
      ggml_scale_min_k4(is + 1, y + 4, s, m);
      const float d2 = d * static_cast<float>(s), m2 = min * static_cast<float>(m);
      for (int l = 0; l < 32; ++l) x[l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) x[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// block_q6_K: ql[128] at 0, qh[64] at 128, scales[16] (int8) at 192, d (f16) at 208.
LLM_CPU_CLONES void decode_q6_K(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, y += 210) {
    const float d = ggml_f16_at(y + 208);
    const uint8_t* ql = y;
    const uint8_t* qh = y + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(y + 192);
    for (int n = 0; n < kQKK; n += 128, x += 128, ql += 64, qh += 32, sc += 8) {
      for (int h = 0; h < 2; ++h) {  // l in [16h, 16h + 16) share the scales sc[h + 2k]
        const float s0 = d * static_cast<float>(sc[h]), s1 = d * static_cast<float>(sc[h + 2]);
        const float s2 = d * static_cast<float>(sc[h + 4]), s3 = d * static_cast<float>(sc[h + 6]);
        for (int l = 16 * h; l < 16 * h + 16; ++l) {
          const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
          const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
          const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
          const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
          x[l] = s0 * static_cast<float>(q1);
          x[l + 32] = s1 * static_cast<float>(q2);
          x[l + 64] = s2 * static_cast<float>(q3);
          x[l + 96] = s3 * static_cast<float>(q4);
        }
      }
    }
  }
}

// y[r * ldy] = dot(w row r, x) + bias[r] for the R rows of a decoded group (one dispatch per group).
LLM_CPU_CLONES void dot_rows(const float* w, int64_t R, int64_t cols, const float* x, const float* bias, float* y,
                             int64_t ldy) {
  for (int64_t r = 0; r < R; ++r) {
    float acc[16] = {};
    const float* a = w + r * cols;
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
      for (int k = 0; k < 16; ++k) acc[k] += a[c + k] * x[c + k];
    }
    float s = 0.0f;
    for (int k = 0; k < 16; ++k) s += acc[k];
    for (; c < cols; ++c) s += a[c] * x[c];
    y[r * ldy] = s + (bias != nullptr ? bias[r] : 0.0f);
  }
}

int64_t ld_of(const Tensor& t, int64_t dense) { return t.size(0) > 1 ? t.stride(0) : dense; }

// y[n, r] += bias[r] (an empty bias adds nothing).
void add_bias(const std::vector<float>& bias, int64_t N, int64_t rows, float* y, int64_t ldy) {
  if (bias.empty()) return;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t r = 0; r < rows; ++r) y[n * ldy + r] += bias[static_cast<size_t>(r)];
  }
}

}  // namespace

void ggml_decode_row(GgmlType t, const uint8_t* row, int64_t n, float* out) {
  switch (t) {
    case GgmlType::F32: std::memcpy(out, row, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16: return to_f32(row, DType::F16, out, n);
    case GgmlType::BF16: return to_f32(row, DType::BF16, out, n);
    case GgmlType::Q8_0: return decode_q8_0(row, n / kQK, out);
    case GgmlType::Q4_0: return decode_q4_0(row, n / kQK, out);
    case GgmlType::Q5_0: return decode_q5_0(row, n / kQK, out);
    case GgmlType::Q4_K: return decode_q4_K(row, n / kQKK, out);
    case GgmlType::Q6_K: return decode_q6_K(row, n / kQKK, out);
  }
}

void ggml_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias, Int8DotIsa isa) {
  const int64_t N = x.size(0), rows = w.rows, cols = w.cols;
  if (N == 0 || rows == 0) return;
  const uint8_t* const data = w.data.ptr<uint8_t>();
  const int64_t data_ld = ld_of(w.data, w.data.size(1));
  // x in fp32, dense rows.
  std::vector<float> xf(static_cast<size_t>(N * cols));
#pragma omp parallel for schedule(static) if (N * cols > 65536)
  for (int64_t n = 0; n < N; ++n) to_f32(at(x, n), x.dtype(), xf.data() + n * cols, cols);
  // The sums land in y itself when it is f32, else in fp32 scratch rounded at the end.
  const bool direct = y.dtype() == DType::F32;
  std::vector<float> ybuf(direct ? 0 : static_cast<size_t>(N * rows));
  float* const yf = direct ? y.ptr<float>() : ybuf.data();
  const int64_t ldy = direct ? ld_of(y, rows) : rows;
  std::vector<float> bf(static_cast<size_t>(bias != nullptr ? rows : 0));
  if (bias != nullptr) to_f32(bias->data(), bias->dtype(), bf.data(), rows);

  if (N < kTileMinTokens && isa == Int8DotIsa::Avx512Vnni && ggml_gemv_avx512_supports(w.ggml)) {
    // Decode straight from the blocks, 16 rows per task (ggml_gemv_avx512.cpp).
    const int64_t tasks = (rows + 15) / 16;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
    for (int64_t i = 0; i < tasks; ++i) {
      ggml_gemv_avx512(w.ggml, data, data_ld, 16 * i, std::min(rows, 16 * i + 16), cols, xf.data(), N, yf, ldy);
    }
    add_bias(bf, N, rows, yf, ldy);
  } else if (N < kTileMinTokens) {
    // Decode: groups of rows decoded into L1/L2-sized scratch and dotted with each token; the
    // groups are static, so each output is computed whole by one thread (thread-count
    // independent). The rows of a group are consecutive in memory: one decode call each.
    const int64_t group = std::max<int64_t>(1, std::min<int64_t>(kDecodeGroupFloats / cols, 64));
    const int64_t groups = (rows + group - 1) / group;
#pragma omp parallel if (rows * cols > 32768)
    {
      const std::unique_ptr<float[]> wg(new float[static_cast<size_t>(group * cols)]);
#pragma omp for schedule(static)
      for (int64_t gi = 0; gi < groups; ++gi) {
        const int64_t r0 = gi * group, nr = std::min(group, rows - r0);
        if (data_ld == static_cast<int64_t>(w.data.size(1))) {
          ggml_decode_row(w.ggml, data + r0 * data_ld, nr * cols, wg.get());
        } else {
          for (int64_t r = 0; r < nr; ++r)
            ggml_decode_row(w.ggml, data + (r0 + r) * data_ld, cols, wg.get() + r * cols);
        }
        for (int64_t n = 0; n < N; ++n) {
          dot_rows(wg.get(), nr, cols, xf.data() + n * cols, bias != nullptr ? bf.data() + r0 : nullptr,
                   yf + n * ldy + r0, 1);
        }
      }
    }
  } else if (N >= kInt8DotMinTokens && int8_dot_supports(w)) {
    // Prefill on integer dot products (int8_dot_kernels.h).
    int8_dot_matmul(xf.data(), N, w, yf, ldy, isa);
    add_bias(bf, N, rows, yf, ldy);
  } else {
    // Prefill: a tile of rows decoded to fp32 (in parallel), then one sgemm for all tokens.
    const int64_t tile = std::min(rows, kTileRows);
    std::vector<float> wt(static_cast<size_t>(tile * cols));
    for (int64_t r0 = 0; r0 < rows; r0 += tile) {
      const int64_t nr = std::min(tile, rows - r0);
#pragma omp parallel for schedule(static) if (nr * cols > 32768)
      for (int64_t r = 0; r < nr; ++r) ggml_decode_row(w.ggml, data + (r0 + r) * data_ld, cols, wt.data() + r * cols);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(N), static_cast<blasint>(nr),
                  static_cast<blasint>(cols), 1.0f, xf.data(), static_cast<blasint>(cols), wt.data(),
                  static_cast<blasint>(cols), 0.0f, yf + r0, static_cast<blasint>(ldy));
    }
    add_bias(bf, N, rows, yf, ldy);
  }
  if (!direct) {
    for (int64_t n = 0; n < N; ++n) from_f32(yf + n * rows, at(y, n), y.dtype(), rows);
  }
}

void ggml_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) {
  const int64_t N = ids.size(0), C = table.cols;
  const int32_t* id = ids.ptr<int32_t>();  // checked by the caller (quant.cpp)
  const uint8_t* const data = table.data.ptr<uint8_t>();
  const int64_t data_ld = ld_of(table.data, table.data.size(1));
  std::vector<float> row(static_cast<size_t>(C));
  for (int64_t n = 0; n < N; ++n) {
    ggml_decode_row(table.ggml, data + int64_t(id[n]) * data_ld, C, row.data());
    from_f32(row.data(), at(out, n), out.dtype(), C);
  }
}

}  // namespace llm::cpu
