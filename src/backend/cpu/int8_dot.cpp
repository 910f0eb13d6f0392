// The int8 path of quantized matmul (int8_dot_kernels.h): runtime choice of the kernel, the
// activation quantizer, the weight repacker, the portable kernel and the threading.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "backend/cpu/cpu_util.h"
#include "backend/cpu/ggml_kernels.h"
#include "backend/cpu/int8_dot_kernels.h"
#include "backend/op_checks.h"
#include "llm/dtype.h"
#include "llm/ggml_quant.h"

namespace llm::cpu {

namespace {

// Rows repacked at a time by one thread: 4 groups of 16, 64 x cols bytes (311 KiB for the
// Qwen2.5-0.5B down projection), which stay in L2 while every token passes over them.
constexpr int64_t kPanelGroups = 4;

// round-half-even(v) for |v| < 2^22 (see quant.cpp): written out so that every clone of the
// quantizer rounds the same way and the loop vectorises.
inline float round_half_even(float v) {
  const float big = v + 12582912.0f;
  return big - 12582912.0f;
}

// One token's row of cols values into int8 blocks (int8_dot_kernels.h gives the rule). Written
// so that the compiler vectorises every loop without fast-math: max |x| as the integer maximum of
// the sign-cleared bit patterns (their order is the float order, and inf / nan patterns are the
// largest), the clamp in integers (the quotient is bounded, so it equals the float clamp).
LLM_CPU_CLONES void quantize_row(const float* x, int64_t cols, int offset, int8_t* q, float* d, int32_t* corr,
                                 int32_t* qsum, int32_t* hcorr) {
  for (int64_t b = 0; b < cols / kInt8Block; ++b) {
    const float* xb = x + b * kInt8Block;
    int8_t* qb = q + b * kInt8Block;
    uint32_t amax_bits = 0;
    for (int64_t j = 0; j < kInt8Block; ++j)
      amax_bits = std::max(amax_bits, std::bit_cast<uint32_t>(xb[j]) & 0x7FFFFFFFu);
    const bool finite = amax_bits < 0x7F800000u;
    const float scale = std::bit_cast<float>(amax_bits) / 127.0f;
    if (!finite || scale == 0.0f) {
      std::memset(qb, 0, kInt8Block);
      d[b] = finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
      corr[b] = qsum[b] = hcorr[2 * b] = hcorr[2 * b + 1] = 0;
      continue;
    }
    // Separate loops, each of which vectorises: one loop that stored bytes and summed halves was
    // compiled to a scalar byte loop behind a vector spill and took a third of Q4_0 prefill.
    int32_t v[kInt8Block];
    for (int64_t j = 0; j < kInt8Block; ++j)
      v[j] = std::clamp(static_cast<int32_t>(round_half_even(xb[j] / scale)), -127, 127);
    for (int64_t j = 0; j < kInt8Block; ++j) qb[j] = static_cast<int8_t>(v[j]);
    int32_t half[2] = {0, 0};
    for (int64_t j = 0; j < kInt8Block / 2; ++j) half[0] += v[j];
    for (int64_t j = kInt8Block / 2; j < kInt8Block; ++j) half[1] += v[j];
    d[b] = scale;
    qsum[b] = half[0] + half[1];
    corr[b] = -offset * qsum[b];
    hcorr[2 * b] = -offset * half[0];
    hcorr[2 * b + 1] = -offset * half[1];
  }
}

// Block b (32 values) of a weight row as unsigned bytes (value + offset), its scales (two for
// Halves) and, for BlockAndMin, -(dmin m). The block layouts as ggml's dequantize_row_* read them
// (ggml_quant_matmul.cpp).
void unpack_block(GgmlType type, const uint8_t* row, int64_t b, uint8_t* vals, float* scale, float* mn) {
  switch (type) {
    case GgmlType::Q8_0: {
      const uint8_t* blk = row + b * 34;
      scale[0] = ggml_f16_at(blk);
      for (int j = 0; j < kInt8Block; ++j) vals[j] = static_cast<uint8_t>(blk[2 + j] ^ 0x80);
      return;
    }
    case GgmlType::Q4_0: {
      const uint8_t* blk = row + b * 18;
      scale[0] = ggml_f16_at(blk);
      for (int j = 0; j < kInt8Block / 2; ++j) {
        vals[j] = blk[2 + j] & 0x0F;
        vals[j + kInt8Block / 2] = blk[2 + j] >> 4;
      }
      return;
    }
    case GgmlType::Q5_0: {  // a 32-bit mask of fifth bits, then the low nibbles as Q4_0
      const uint8_t* blk = row + b * 22;
      scale[0] = ggml_f16_at(blk);
      uint32_t qh;
      std::memcpy(&qh, blk + 2, 4);
      for (int j = 0; j < kInt8Block / 2; ++j) {
        vals[j] = static_cast<uint8_t>((blk[6 + j] & 0x0F) | (((qh >> j) << 4) & 0x10));
        vals[j + kInt8Block / 2] = static_cast<uint8_t>((blk[6 + j] >> 4) | ((qh >> (j + 12)) & 0x10));
      }
      return;
    }
    case GgmlType::Q4_K: {  // sub-block j of 8: the low (j even) or high nibbles of 32 bytes
      const uint8_t* blk = row + (b / 8) * 144;
      const int j = static_cast<int>(b % 8);
      int sc, m;
      ggml_scale_min_k4(j, blk + 4, sc, m);
      scale[0] = ggml_f16_at(blk) * static_cast<float>(sc);
      *mn = -(ggml_f16_at(blk + 2) * static_cast<float>(m));
      const uint8_t* q = blk + 16 + 32 * (j / 2);
      for (int l = 0; l < kInt8Block; ++l) vals[l] = (j % 2 == 0) ? q[l] & 0x0F : q[l] >> 4;
      return;
    }
    case GgmlType::Q6_K: {  // values 32 i + l of the 128-value half n; 16 values per int8 scale
      const uint8_t* blk = row + (b / 8) * 210;
      const int n = static_cast<int>(b % 8) / 4, i = static_cast<int>(b % 4);
      const uint8_t* ql = blk + 64 * n + (i % 2) * 32;
      const uint8_t* qh = blk + 128 + 32 * n;
      const auto* sc = reinterpret_cast<const int8_t*>(blk + 192 + 8 * n);
      const float d = ggml_f16_at(blk + 208);
      scale[0] = d * static_cast<float>(sc[2 * i]);
      scale[1] = d * static_cast<float>(sc[2 * i + 1]);
      for (int l = 0; l < kInt8Block; ++l) {
        const int low = i < 2 ? ql[l] & 0x0F : ql[l] >> 4;
        vals[l] = static_cast<uint8_t>(low | (((qh[l] >> (2 * i)) & 3) << 4));
      }
      return;
    }
    default: return;
  }
}

// Q8_0 and Q4_0, the common prefill formats, and our Int8 and Int4 (backend.h): a group of 16 rows
// (rows from `valid` on are zero weights) block by block with SSE2 (every x86-64 has it): each
// row's 32 values as unsigned bytes, then the 16 x 8 dwords transposed 4 x 4 at a time into the
// panel's steps. The generic path (unpack_block's byte loops, compiled scalar, per block and row)
// took a fifth of Q4_0 prefill, and most of a batched decode step of 8 tokens, which repacks
// every panel; it stays for the other formats and for other CPUs.
#if defined(__x86_64__)
enum class Sse2Format { Q8_0, Q4_0, Int8, Int4 };

template <Sse2Format F>
void repack_group_sse2(const QuantizedMatrix& w, const uint8_t* data, int64_t ld, int64_t r0, int64_t valid,
                       int64_t blocks, uint8_t* u, float* d) {
  constexpr bool ggml = F == Sse2Format::Q8_0 || F == Sse2Format::Q4_0;
  constexpr bool nibbles = F == Sse2Format::Q4_0 || F == Sse2Format::Int4;
  // ggml: a block is an f16 scale and the values; ours: the values alone, the scale in `scales`.
  constexpr int64_t block_bytes = (ggml ? 2 : 0) + (nibbles ? 16 : 32);
  const float* const scales = ggml ? nullptr : w.scales.ptr<float>();
  const int64_t scales_ld = ggml ? 0 : (w.scales.size(0) > 1 ? w.scales.stride(0) : w.scales.size(1));
  const __m128i offset = _mm_set1_epi8(static_cast<char>(nibbles ? 8 : 128));
  const __m128i low4 = _mm_set1_epi8(0x0F), flip = _mm_set1_epi8(static_cast<char>(0x80));
  __m128i v[kInt8GroupRows][2];  // row i: dwords 0-3, 4-7 (values 0-15, 16-31)
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t i = 0; i < kInt8GroupRows; ++i) {
      if (i >= valid) {
        v[i][0] = v[i][1] = offset;
        d[b * kInt8GroupRows + i] = 0.0f;
        continue;
      }
      const uint8_t* blk = data + (r0 + i) * ld + b * block_bytes;
      const uint8_t* q = blk + (ggml ? 2 : 0);
      d[b * kInt8GroupRows + i] = ggml ? ggml_f16_at(blk) : scales[(r0 + i) * scales_ld + b * kInt8Block / w.group];
      if constexpr (nibbles) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q));
        const __m128i lo = _mm_and_si128(bytes, low4), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
        if constexpr (F == Sse2Format::Q4_0) {  // values j and j + 16 in byte j
          v[i][0] = lo;
          v[i][1] = hi;
        } else {  // Int4: values 2j and 2j + 1 in byte j
          v[i][0] = _mm_unpacklo_epi8(lo, hi);
          v[i][1] = _mm_unpackhi_epi8(lo, hi);
        }
      } else {
        v[i][0] = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), flip);
        v[i][1] = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q + 16)), flip);
      }
    }
    // Step st holds dword st of the 16 rows: 4 x 4 transposes of (4 rows) x (4 dwords).
    uint8_t* ub = u + b * kInt8GroupBlockBytes;
    for (int64_t i0 = 0; i0 < kInt8GroupRows; i0 += 4) {
      for (int h = 0; h < 2; ++h) {
        __m128 r0v = _mm_castsi128_ps(v[i0][h]), r1v = _mm_castsi128_ps(v[i0 + 1][h]);
        __m128 r2v = _mm_castsi128_ps(v[i0 + 2][h]), r3v = _mm_castsi128_ps(v[i0 + 3][h]);
        _MM_TRANSPOSE4_PS(r0v, r1v, r2v, r3v);
        const __m128 cols[4] = {r0v, r1v, r2v, r3v};
        for (int k = 0; k < 4; ++k) {
          _mm_storeu_ps(reinterpret_cast<float*>(ub + 64 * (4 * h + k) + 4 * i0), cols[k]);
        }
      }
    }
  }
}

// The SSE2 repacker of w's format, or null.
using Sse2Repack = void (*)(const QuantizedMatrix&, const uint8_t*, int64_t, int64_t, int64_t, int64_t, uint8_t*,
                            float*);
Sse2Repack sse2_repack_for(const QuantizedMatrix& w) {
  switch (w.kind) {
    case QuantKind::Int8: return repack_group_sse2<Sse2Format::Int8>;
    case QuantKind::Int4: return repack_group_sse2<Sse2Format::Int4>;
    case QuantKind::Ggml:
      if (w.ggml == GgmlType::Q8_0) return repack_group_sse2<Sse2Format::Q8_0>;
      if (w.ggml == GgmlType::Q4_0) return repack_group_sse2<Sse2Format::Q4_0>;
      return nullptr;
  }
  return nullptr;
}
#endif

// Block b of row r of our Int8 / Int4 matrix w (backend.h) as unsigned bytes and its scale.
void unpack_own_block(const QuantizedMatrix& w, int64_t r, const uint8_t* row, int64_t b, uint8_t* vals, float* scale) {
  const int64_t scales_ld = w.scales.size(0) > 1 ? w.scales.stride(0) : w.scales.size(1);
  scale[0] = w.scales.ptr<float>()[r * scales_ld + b * kInt8Block / w.group];
  if (w.kind == QuantKind::Int8) {
    for (int j = 0; j < kInt8Block; ++j) vals[j] = static_cast<uint8_t>(row[b * kInt8Block + j] ^ 0x80);
    return;
  }
  const uint8_t* bytes = row + b * kInt8Block / 2;  // column 2j low, 2j + 1 high; stored q + 8
  for (int j = 0; j < kInt8Block / 2; ++j) {
    vals[2 * j] = bytes[j] & 0x0F;
    vals[2 * j + 1] = bytes[j] >> 4;
  }
}

// Rows [r0, r0 + 16 * groups) of w into the panel layout; rows from `rows` on are zero weights.
void repack(const QuantizedMatrix& w, const Int8Format& f, int64_t r0, int64_t groups, uint8_t* u, float* d,
            float* mn) {
  const uint8_t* const data = w.data.ptr<uint8_t>();
  const int64_t ld = w.data.size(0) > 1 ? w.data.stride(0) : w.data.size(1);
  const int64_t blocks = w.cols / kInt8Block;
#if defined(__x86_64__)
  if (const Sse2Repack sse2 = sse2_repack_for(w)) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t rg = r0 + g * kInt8GroupRows, valid = std::clamp<int64_t>(w.rows - rg, 0, kInt8GroupRows);
      sse2(w, data, ld, rg, valid, blocks, u + g * blocks * kInt8GroupBlockBytes, d + g * blocks * kInt8GroupRows);
    }
    return;
  }
#endif
  const int64_t halves = f.scales == Int8Scales::Halves ? 2 : 1;
  uint8_t vals[kInt8Block];
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t i = 0; i < kInt8GroupRows; ++i) {
      const int64_t r = r0 + g * kInt8GroupRows + i;
      for (int64_t b = 0; b < blocks; ++b) {
        float scale[2] = {0.0f, 0.0f}, min = 0.0f;
        if (r >= w.rows) {
          std::memset(vals, f.offset, sizeof vals);
        } else if (w.kind == QuantKind::Ggml) {
          unpack_block(w.ggml, data + r * ld, b, vals, scale, &min);
        } else {
          unpack_own_block(w, r, data + r * ld, b, vals, scale);
        }
        for (int64_t h = 0; h < halves; ++h) d[((g * blocks + b) * halves + h) * kInt8GroupRows + i] = scale[h];
        if (mn != nullptr) mn[(g * blocks + b) * kInt8GroupRows + i] = min;
        uint8_t* dst = u + (g * blocks + b) * kInt8GroupBlockBytes + 4 * i;
        for (int s = 0; s < 8; ++s) std::memcpy(dst + 64 * s, vals + 4 * s, 4);
      }
    }
  }
}

}  // namespace

const char* int8_dot_isa_name(Int8DotIsa isa) {
  switch (isa) {
    case Int8DotIsa::Portable: return "portable";
    case Int8DotIsa::Avx2: return "avx2";
    case Int8DotIsa::Avx512Vnni: return "avx512vnni";
  }
  return "?";
}

bool int8_dot_isa_supported(Int8DotIsa isa) {
  switch (isa) {
    case Int8DotIsa::Portable: return true;
#if defined(__x86_64__)
    case Int8DotIsa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Int8DotIsa::Avx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    case Int8DotIsa::Avx2:
    case Int8DotIsa::Avx512Vnni: return false;
#endif
  }
  return false;
}

Int8DotIsa int8_dot_isa_best() {
  if (int8_dot_isa_supported(Int8DotIsa::Avx512Vnni)) return Int8DotIsa::Avx512Vnni;
  if (int8_dot_isa_supported(Int8DotIsa::Avx2)) return Int8DotIsa::Avx2;
  return Int8DotIsa::Portable;
}

Int8DotIsa int8_dot_isa_for(QuantIsa isa) {
  switch (isa) {
    case QuantIsa::Portable: return Int8DotIsa::Portable;
    case QuantIsa::Avx2: return Int8DotIsa::Avx2;
    case QuantIsa::Avx512: break;
  }
  return int8_dot_isa_supported(Int8DotIsa::Avx512Vnni) ? Int8DotIsa::Avx512Vnni : Int8DotIsa::Avx2;
}

Int8Format int8_dot_format(GgmlType t) {
  switch (t) {
    case GgmlType::Q8_0: return {true, 128, 255, Int8Scales::Block};
    case GgmlType::Q6_K: return {true, 32, 63, Int8Scales::Halves};
    case GgmlType::Q5_0: return {true, 16, 31, Int8Scales::Block};
    case GgmlType::Q4_0: return {true, 8, 15, Int8Scales::Block};
    case GgmlType::Q4_K: return {true, 0, 15, Int8Scales::BlockAndMin};
    default: return {};
  }
}

Int8Format int8_dot_format(const QuantizedMatrix& w) {
  switch (w.kind) {
    case QuantKind::Ggml: return int8_dot_format(w.ggml);
    case QuantKind::Int8: return {w.group % kInt8Block == 0, 128, 255, Int8Scales::Block};
    case QuantKind::Int4: return {w.group % kInt8Block == 0, 8, 15, Int8Scales::Block};
  }
  return {};
}

bool int8_dot_supports(const QuantizedMatrix& w) {
  return (w.kind == QuantKind::Ggml || w.int8_activations) && int8_dot_format(w).supported && w.cols % kInt8Block == 0;
}

void int8_dot_panel_portable(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid) {
  const int64_t nb = p.blocks;
  const int64_t halves = p.scales == Int8Scales::Halves ? 2 : 1;
  for (int64_t r = 0; r < std::min(valid, p.groups * kInt8GroupRows); ++r) {
    const int64_t g = r / kInt8GroupRows, i = r % kInt8GroupRows;
    for (int64_t t = 0; t < a.n; ++t) {
      const int8_t* xq = a.q + t * a.cols;
      float acc = 0.0f;
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* u = p.u + (g * nb + b) * kInt8GroupBlockBytes + 4 * i;
        const int64_t per_half = kInt8Block / halves;
        for (int64_t h = 0; h < halves; ++h) {
          int32_t isum = halves == 2 ? a.hcorr[2 * (t * nb + b) + h] : a.corr[t * nb + b];
          for (int64_t j = h * per_half; j < (h + 1) * per_half; ++j)
            isum += int32_t(u[64 * (j / 4) + j % 4]) * xq[b * kInt8Block + j];
          const float s = p.d[((g * nb + b) * halves + h) * kInt8GroupRows + i] * a.d[t * nb + b];
          acc = std::fma(static_cast<float>(isum), s, acc);
        }
        if (p.scales == Int8Scales::BlockAndMin) {
          const float m = p.mn[(g * nb + b) * kInt8GroupRows + i] * a.d[t * nb + b];
          acc = std::fma(static_cast<float>(a.qsum[t * nb + b]), m, acc);
        }
      }
      y[t * ldy + r] = acc;
    }
  }
}

void int8_dot_matmul(const float* x, int64_t n, const QuantizedMatrix& w, float* y, int64_t ldy, Int8DotIsa isa) {
  LLM_CHECK(int8_dot_isa_supported(isa), "quant_matmul: this CPU cannot run the ", int8_dot_isa_name(isa),
            " int8 kernels");
  const int64_t cols = w.cols, rows = w.rows, blocks = cols / kInt8Block;
  const Int8Format f = int8_dot_format(w);
  LLM_CHECK(f.supported, "quant_matmul: the int8 kernels do not read ",
            w.kind == QuantKind::Ggml ? ggml_type_name(w.ggml) : "int8/int4 with groups that are not blocks of 32",
            w.kind == QuantKind::Ggml ? " blocks" : "");
  std::vector<int8_t> q(static_cast<size_t>(n * cols));
  std::vector<float> d(static_cast<size_t>(n * blocks));
  std::vector<int32_t> corr(d.size()), qsum(d.size()), hcorr(2 * d.size());
#pragma omp parallel for schedule(static) if (n * cols > kParallelMinWork)
  for (int64_t t = 0; t < n; ++t) {
    quantize_row(x + t * cols, cols, f.offset, q.data() + t * cols, d.data() + t * blocks, corr.data() + t * blocks,
                 qsum.data() + t * blocks, hcorr.data() + 2 * t * blocks);
  }
  const Int8Acts acts{n, cols, blocks, q.data(), d.data(), corr.data(), qsum.data(), hcorr.data()};

  void (*kernel)(const Int8Panel&, const Int8Acts&, float*, int64_t, int64_t) = int8_dot_panel_portable;
#if defined(__x86_64__)
  if (isa == Int8DotIsa::Avx2) kernel = int8_dot_panel_avx2;
  if (isa == Int8DotIsa::Avx512Vnni) kernel = int8_dot_panel_avx512vnni;
#endif
  const int64_t panel_rows = kPanelGroups * kInt8GroupRows;
  const int64_t panels = (rows + panel_rows - 1) / panel_rows;
#pragma omp parallel if (rows * cols * n > kParallelMinWork)
  {
    const std::unique_ptr<uint8_t[]> u(new uint8_t[static_cast<size_t>(panel_rows * cols)]);
    const size_t scales = static_cast<size_t>(kPanelGroups * blocks * kInt8GroupRows);
    const std::unique_ptr<float[]> dw(new float[2 * scales]);
    const std::unique_ptr<float[]> mn(f.scales == Int8Scales::BlockAndMin ? new float[scales] : nullptr);
#pragma omp for schedule(static)
    for (int64_t pi = 0; pi < panels; ++pi) {
      const int64_t r0 = pi * panel_rows, valid = std::min(panel_rows, rows - r0);
      const int64_t groups = (valid + kInt8GroupRows - 1) / kInt8GroupRows;
      repack(w, f, r0, groups, u.get(), dw.get(), mn.get());
      kernel(Int8Panel{groups, blocks, u.get(), dw.get(), mn.get(), f.offset, f.max_byte, f.scales}, acts, y + r0, ldy,
             valid);
    }
  }
}

}  // namespace llm::cpu
