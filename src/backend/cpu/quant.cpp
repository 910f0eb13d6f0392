// quantize / quant_matmul / quant_embedding on the CPU: argument checks, threading and dtype
// conversion. The arithmetic of quant_matmul lives in the kernels (quant_kernels.h explains the
// fixed operation order that makes every kernel give the same bits).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <string_view>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/ggml_kernels.h"
#include "backend/cpu/int8_dot_kernels.h"
#include "backend/cpu/quant_kernels.h"
#include "backend/op_checks.h"

namespace llm {

namespace {

int64_t ld_of(const Tensor& t, int64_t dense) { return t.size(0) > 1 ? t.stride(0) : dense; }

// The raw bytes and scale rows of a checked QuantizedMatrix, as the kernels take them.
cpu::QuantArgs matrix_args(const QuantizedMatrix& w) {
  cpu::QuantArgs a;
  a.kind = w.kind;
  a.cols = w.cols;
  a.group = w.group;
  a.data = w.data.ptr<uint8_t>();
  a.data_ld = ld_of(w.data, w.data.size(1));
  a.scales = w.scales.ptr<float>();
  a.scales_ld = ld_of(w.scales, w.scales.size(1));
  return a;
}

// round-half-even(v) for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits, so the FPU's
// rounding (to nearest even) does the work; written out so the loop vectorises (nearbyint is a
// libm call at the baseline ISA). Needs ISO float semantics (no -ffast-math), as the build has.
inline float round_half_even(float v) {
  const float big = v + 12582912.0f;
  return big - 12582912.0f;
}

LLM_CPU_CLONES void quantize_group_i8(const float* w, int64_t n, float scale, int8_t* q) {
  for (int64_t c = 0; c < n; ++c) {
    const float r = std::clamp(round_half_even(w[c] / scale), -127.0f, 127.0f);
    q[c] = static_cast<int8_t>(r);
  }
}

LLM_CPU_CLONES void quantize_group_i4(const float* w, int64_t n, float scale, uint8_t* q) {
  for (int64_t j = 0; j < n / 2; ++j) {
    const float lo = std::clamp(round_half_even(w[2 * j] / scale), -7.0f, 7.0f);
    const float hi = std::clamp(round_half_even(w[2 * j + 1] / scale), -7.0f, 7.0f);
    q[j] = static_cast<uint8_t>((static_cast<int>(lo) + 8) | ((static_cast<int>(hi) + 8) << 4));
  }
}

// max |w| over a group, or nan when the group holds an inf or a nan (std::max would skip a nan).
float group_amax(const float* w, int64_t n) {
  float m = 0.0f;
  bool finite = true;
  for (int64_t c = 0; c < n; ++c) {
    const float a = std::fabs(w[c]);
    finite = finite && a <= std::numeric_limits<float>::max();
    m = std::max(m, a);
  }
  return finite ? m : std::numeric_limits<float>::quiet_NaN();
}

}  // namespace

void CpuBackend::do_quantize(const Tensor& w, const QuantizedMatrix& out) {
  const char* op = "quantize";
  const bool int4 = out.kind == QuantKind::Int4;
  const float qmax = int4 ? 7.0f : 127.0f;
  const int64_t rows = out.rows, cols = out.cols, group = out.group, groups = cols / group;
  uint8_t* const data = out.data.ptr<uint8_t>();
  float* const scales = out.scales.ptr<float>();
  const int64_t data_ld = ld_of(out.data, out.data.size(1)), scales_ld = ld_of(out.scales, groups);
  // A non-finite weight has no scale; the first one found (lowest row) is reported.
  int64_t bad_row = rows;
#pragma omp parallel if (rows * cols > 65536)
  {
    std::vector<float> row(static_cast<size_t>(cols));
#pragma omp for schedule(static) reduction(min : bad_row)
    for (int64_t r = 0; r < rows; ++r) {
      cpu::to_f32(cpu::at(w, r), w.dtype(), row.data(), cols);
      uint8_t* q = data + r * data_ld;
      float* s = scales + r * scales_ld;
      for (int64_t g = 0; g < groups; ++g) {
        const float* wg = row.data() + g * group;
        const float amax = group_amax(wg, group);
        if (!std::isfinite(amax)) {
          bad_row = std::min(bad_row, r);
          continue;
        }
        // A zero group (or one so small that amax / qmax underflows) has scale 0 and q = 0.
        const float scale = amax / qmax;
        s[g] = scale;
        if (int4) {
          if (scale == 0.0f) {
            std::memset(q + g * group / 2, 0x88, static_cast<size_t>(group / 2));
          } else {
            quantize_group_i4(wg, group, scale, q + g * group / 2);
          }
        } else {
          if (scale == 0.0f) {
            std::memset(q + g * group, 0, static_cast<size_t>(group));
          } else {
            quantize_group_i8(wg, group, scale, reinterpret_cast<int8_t*>(q + g * group));
          }
        }
      }
    }
  }
  LLM_CHECK(bad_row == rows, op, ": row ", bad_row, " of w holds a non-finite value (inf or nan)");
}

void CpuBackend::do_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) {
  cpu::check_ids_in_vocab(ids, table.rows, "quant_embedding");
  if (table.kind == QuantKind::Ggml) return cpu::ggml_quant_embedding(ids, table, out);
  const int64_t N = ids.size(0), C = table.cols;
  const int32_t* id = ids.ptr<int32_t>();
  const cpu::QuantArgs a = matrix_args(table);
  const bool int4 = table.kind == QuantKind::Int4;
#pragma omp parallel if (N * C > 65536)
  {
    std::vector<float> row(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const uint8_t* q = a.data + int64_t(id[n]) * a.data_ld;
      const float* s = a.scales + int64_t(id[n]) * a.scales_ld;
      // float(q) * scale, one rounding: the very weights quant_matmul multiplies with.
      for (int64_t c = 0; c < C; ++c) {
        const int v = int4 ? ((q[c / 2] >> (4 * (c % 2))) & 15) - 8 : static_cast<int8_t>(q[c]);
        row[static_cast<size_t>(c)] = static_cast<float>(v) * s[c / a.group];
      }
      cpu::from_f32(row.data(), cpu::at(out, n), out.dtype(), C);
    }
  }
}

void CpuBackend::do_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias) {
  cpu::quant_matmul_checked(x, w, y, bias, cpu::quant_isa_from_env("quant_matmul"));
}

namespace cpu {

const char* quant_isa_name(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::Portable: return "portable";
    case QuantIsa::Avx2: return "avx2";
    case QuantIsa::Avx512: return "avx512";
  }
  return "?";
}

bool quant_isa_supported(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::Portable: return true;
#if defined(__x86_64__)
    case QuantIsa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case QuantIsa::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    case QuantIsa::Avx2:
    case QuantIsa::Avx512: return false;
#endif
  }
  return false;
}

std::vector<QuantIsa> quant_isas_supported() {
  std::vector<QuantIsa> v;
  for (QuantIsa isa : {QuantIsa::Portable, QuantIsa::Avx2, QuantIsa::Avx512}) {
    if (quant_isa_supported(isa)) v.push_back(isa);
  }
  return v;
}

QuantIsa quant_isa_from_env(const char* op) {
  const char* env = std::getenv("LLM_CPU_KERNELS");
  const std::string_view v = env != nullptr ? env : "";
  if (v.empty() || v == "auto") return quant_isas_supported().back();
  for (QuantIsa isa : {QuantIsa::Portable, QuantIsa::Avx2, QuantIsa::Avx512}) {
    if (v == quant_isa_name(isa)) {
      LLM_CHECK(quant_isa_supported(isa), op, ": LLM_CPU_KERNELS=", v, " but this CPU cannot run the ", v, " kernels");
      return isa;
    }
  }
  fail(op, ": LLM_CPU_KERNELS=", v, " is not one of portable, avx2, avx512, auto");
}

QuantTilePlan quant_tile_plan(const QuantArgs& a) {
  QuantTilePlan p;
  const int64_t fit = (int64_t{256} << 10) / (std::max<int64_t>(a.cols, 1) * 4);
  p.tile_rows = std::clamp<int64_t>(fit / kQuantTileRows * kQuantTileRows, kQuantTileRows, 64);
  p.tokens = 4 * kQuantTokenPad;
  p.cols = 16 * kQuantChunk;
  return p;
}

int64_t quant_scratch_floats(const QuantArgs& a) {
  if (a.n < kQuantTileMinTokens) return a.cols;  // the portable kernel's row; decode needs no tile
  const QuantTilePlan p = quant_tile_plan(a);
  return p.tile_rows * a.cols + p.tile_rows * p.tokens * kQuantChunk + a.cols;
}

namespace {

// quant_matmul on the int8 path (int8_dot_kernels.h) for checked tensors and int8_dot_supports(w):
// x [N, cols] of any float dtype, y [N, rows] (+ bias [rows]).
void int8_dot_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias,
                           Int8DotIsa isa) {
  const int64_t N = x.size(0), rows = w.rows, cols = w.cols;
  std::vector<float> xf(static_cast<size_t>(N * cols));
#pragma omp parallel for schedule(static) if (N * cols > kParallelMinWork)
  for (int64_t n = 0; n < N; ++n) to_f32(at(x, n), x.dtype(), xf.data() + n * cols, cols);
  // The sums land in y itself when it is f32, else in fp32 scratch rounded at the end.
  const bool direct = y.dtype() == DType::F32;
  std::vector<float> ybuf(direct ? 0 : static_cast<size_t>(N * rows));
  float* const yf = direct ? y.ptr<float>() : ybuf.data();
  const int64_t ldy = direct && N > 1 ? y.stride(0) : rows;
  int8_dot_matmul(xf.data(), N, w, yf, ldy, isa);
  std::vector<float> bf(static_cast<size_t>(bias != nullptr ? rows : 0));
  if (bias != nullptr) to_f32(bias->data(), bias->dtype(), bf.data(), rows);
  for (int64_t n = 0; n < N; ++n) {
    float* yr = yf + n * ldy;
    for (int64_t r = 0; r < static_cast<int64_t>(bf.size()); ++r) yr[r] += bf[static_cast<size_t>(r)];
    if (!direct) from_f32(yr, at(y, n), y.dtype(), rows);
  }
}

}  // namespace

void quant_matmul_isa(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias, QuantIsa isa) {
  check_quant_matmul(x, w, y, bias);
  quant_matmul_checked(x, w, y, bias, isa);
}

void quant_matmul_checked(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias,
                          QuantIsa isa) {
  if (w.kind == QuantKind::Ggml) return ggml_quant_matmul(x, w, y, bias, int8_dot_isa_for(isa));
  const char* op = "quant_matmul";
  const int64_t N = x.size(0), rows = w.rows, cols = w.cols;
  LLM_CHECK(quant_isa_supported(isa), op, ": this CPU cannot run the ", quant_isa_name(isa), " kernels");
  if (N == 0 || rows == 0) return;
  // Asked for (QuantizedMatrix::int8_activations): int8 activations on integer dot products.
  if (N >= kInt8DotMinTokens && int8_dot_supports(w))
    return int8_dot_quant_matmul(x, w, y, bias, int8_dot_isa_for(isa));

  QuantArgs a = matrix_args(w);
  a.n = N;
  const bool tiled = N >= kQuantTileMinTokens;
  a.n_pad = tiled ? (N + kQuantTokenPad - 1) / kQuantTokenPad * kQuantTokenPad : N;
  // x in fp32 and position order (int4 chunks: even columns, then odd), padding rows zero.
  std::vector<float> xp(static_cast<size_t>(a.n_pad * cols), 0.0f);
  const bool int4 = w.kind == QuantKind::Int4;
#pragma omp parallel if (N * cols > 65536)
  {
    std::vector<float> row(static_cast<size_t>(cols));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      float* dst = xp.data() + n * cols;
      if (!int4) {
        to_f32(at(x, n), x.dtype(), dst, cols);
        continue;
      }
      to_f32(at(x, n), x.dtype(), row.data(), cols);
      for (int64_t c0 = 0; c0 < cols; c0 += kQuantChunk) {
        const int64_t half = std::min(kQuantChunk, cols - c0) / 2;
        for (int64_t j = 0; j < half; ++j) {
          dst[c0 + j] = row[static_cast<size_t>(c0 + 2 * j)];
          dst[c0 + half + j] = row[static_cast<size_t>(c0 + 2 * j + 1)];
        }
      }
    }
  }
  a.x = xp.data();
  // The sums land in y itself when it is f32, else in fp32 scratch rounded at the end.
  std::vector<float> ybuf;
  const bool direct = y.dtype() == DType::F32;
  if (direct) {
    a.y = y.ptr<float>();
    a.y_ld = ld_of(y, rows);
  } else {
    ybuf.resize(static_cast<size_t>(N * rows));
    a.y = ybuf.data();
    a.y_ld = rows;
  }

  // The vector kernels need one scale per 32-column chunk; other groups take the portable
  // kernel, which computes the same function.
  if (w.group % kQuantChunk != 0) isa = QuantIsa::Portable;
  void (*kernel)(const QuantArgs&, int64_t, int64_t, float*) = quant_rows_portable;
#if defined(__x86_64__)
  if (isa == QuantIsa::Avx2) kernel = quant_rows_avx2;
  if (isa == QuantIsa::Avx512) kernel = quant_rows_avx512;
#endif
  // Static blocks of rows: each output is computed whole by one thread in the canonical order,
  // so the result does not depend on the thread count.
  const int64_t block = tiled ? quant_tile_plan(a).tile_rows : 16;
  const int64_t blocks = (rows + block - 1) / block;
#pragma omp parallel if (rows * cols * N > 65536)
  {
    // Uninitialised: every kernel writes its scratch before reading it.
    const std::unique_ptr<float[]> scratch(new float[static_cast<size_t>(quant_scratch_floats(a))]);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) kernel(a, b * block, std::min(rows, (b + 1) * block), scratch.get());
  }

  if (bias == nullptr && direct) return;
  std::vector<float> bf(static_cast<size_t>(bias != nullptr ? rows : 0));
  if (bias != nullptr) to_f32(bias->data(), bias->dtype(), bf.data(), rows);
  for (int64_t n = 0; n < N; ++n) {
    float* yr = a.y + n * a.y_ld;
    if (bias != nullptr) {
      for (int64_t r = 0; r < rows; ++r) yr[r] += bf[static_cast<size_t>(r)];
    }
    if (!direct) from_f32(yr, at(y, n), y.dtype(), rows);
  }
}

}  // namespace cpu
}  // namespace llm
