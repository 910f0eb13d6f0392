// The AVX2 + FMA quant_matmul kernel. A ymm register holds 8 of the 32 canonical lanes
// (quant_kernels.h), so every row has four accumulators: positions 0-7, 8-15, 16-23, 24-31.
//  - Few tokens (decode): stream the quantized rows two at a time (eight FMA chains, and the
//    16 registers allow no more), with the linear software prefetch of quant_avx512.cpp.
//  - Many tokens (prefill): dequantize a tile of rows to fp32 once, then a 2-row x 6-token
//    register-blocked product per 8-lane quarter, blocked over columns as in quant_avx512.cpp;
//    the lanes go through memory to the reduction.
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "backend/cpu/quant_kernels.h"

#define LLM_AVX2 __attribute__((target("avx2,fma")))

namespace llm::cpu {
namespace {

constexpr int kMicroRows = 2, kMicroTokens = 6;
static_assert(kQuantTileRows % kMicroRows == 0 && kQuantTokenPad % kMicroTokens == 0);

// Eight int8 weights at p times the scale: float(q) * scale, one rounding.
LLM_AVX2 inline __m256 deq_i8(const uint8_t* p, __m256 s) {
  const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), s);
}

// A 32-column int4 chunk (16 bytes at p) as positions 0-31: (nibble - 8) * scale.
LLM_AVX2 inline void deq_i4(const uint8_t* p, __m256 s, __m256 w[4]) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  const __m128i m = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
  const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, m), eight);
  const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), m), eight);
  w[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), s);
  w[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), s);
  w[2] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), s);
  w[3] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), s);
}

// The canonical tree over lanes a[0] (0-7), a[1] (8-15), a[2] (16-23), a[3] (24-31).
LLM_AVX2 inline float reduce(const __m256 a[4]) {
  const __m256 t8 = _mm256_add_ps(_mm256_add_ps(a[0], a[2]), _mm256_add_ps(a[1], a[3]));
  const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
  const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
  return _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
}

// y[t, r .. r+R) streamed from the quantized rows.
template <QuantKind K, int R>
LLM_AVX2 void gemv(const QuantArgs& a, int64_t r, int64_t t) {
  const int64_t cols = a.cols, group = a.group;
  const float* x = a.x + t * cols;
  const uint8_t* q[R];
  const float* s[R];
  __m256 acc[R][4];
#pragma GCC unroll 2
  for (int i = 0; i < R; ++i) {
    q[i] = a.data + (r + i) * a.data_ld;
    s[i] = a.scales + (r + i) * a.scales_ld;
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) acc[i][k] = _mm256_setzero_ps();
  }
  // A linear prefetch pointer ahead of the block, advancing as fast as the rows are consumed
  // (see quant_avx512.cpp for why); at least one line per chunk.
  constexpr int64_t row_bytes = K == QuantKind::Int8 ? kQuantChunk : kQuantChunk / 2;
  constexpr int64_t lines = std::max<int64_t>(1, R * row_bytes / 64);
  // At least one block ahead, so that long rows are covered from their start too. Addresses as
  // integers: they run past the matrix at its end, where prefetch is harmless.
  uintptr_t pf = reinterpret_cast<uintptr_t>(q[0]) + uintptr_t(std::max<int64_t>(kQuantPrefetchBytes, R * a.data_ld));
  // The next block's scales, one line per group: their rows are read interleaved too.
  const uintptr_t ps = reinterpret_cast<uintptr_t>(a.scales) + uintptr_t((r + R) * a.scales_ld * 4);
  const int64_t ps_bytes = R * a.scales_ld * 4;
  for (int64_t g0 = 0, gi = 0; g0 < cols; g0 += group, ++gi) {
    if (gi * 64 < ps_bytes) _mm_prefetch(reinterpret_cast<const char*>(ps + uintptr_t(gi * 64)), _MM_HINT_T0);
    __m256 sv[R];
#pragma GCC unroll 2
    for (int i = 0; i < R; ++i) sv[i] = _mm256_set1_ps(s[i][gi]);
    for (int64_t c = g0; c < g0 + group; c += kQuantChunk) {
#pragma GCC unroll 2
      for (int64_t j = 0; j < lines; ++j) _mm_prefetch(reinterpret_cast<const char*>(pf + 64 * j), _MM_HINT_T0);
      pf += R * row_bytes;
#pragma GCC unroll 2
      for (int i = 0; i < R; ++i) {
        __m256 w[4];
        if constexpr (K == QuantKind::Int8) {
#pragma GCC unroll 4
          for (int k = 0; k < 4; ++k) w[k] = deq_i8(q[i] + c + 8 * k, sv[i]);
        } else {
          deq_i4(q[i] + c / 2, sv[i], w);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) acc[i][k] = _mm256_fmadd_ps(w[k], _mm256_loadu_ps(x + c + 8 * k), acc[i][k]);
      }
    }
  }
#pragma GCC unroll 2
  for (int i = 0; i < R; ++i) a.y[t * a.y_ld + r + i] = reduce(acc[i]);
}

// Rows [r0, r0 + rows) dequantized into tile rows in position order; rows up to `padded` zero.
template <QuantKind K>
LLM_AVX2 void dequant_tile(const QuantArgs& a, int64_t r0, int64_t rows, int64_t padded, float* tile) {
  const int64_t cols = a.cols, group = a.group;
  for (int64_t i = 0; i < padded; ++i) {
    float* dst = tile + i * cols;
    if (i >= rows) {
      for (int64_t c = 0; c < cols; c += 8) _mm256_storeu_ps(dst + c, _mm256_setzero_ps());
      continue;
    }
    const uint8_t* q = a.data + (r0 + i) * a.data_ld;
    const float* s = a.scales + (r0 + i) * a.scales_ld;
    for (int64_t g0 = 0, gi = 0; g0 < cols; g0 += group, ++gi) {
      const __m256 sv = _mm256_set1_ps(s[gi]);
      for (int64_t c = g0; c < g0 + group; c += kQuantChunk) {
        __m256 w[4];
        if constexpr (K == QuantKind::Int8) {
#pragma GCC unroll 4
          for (int k = 0; k < 4; ++k) w[k] = deq_i8(q + c + 8 * k, sv);
        } else {
          deq_i4(q + c / 2, sv, w);
        }
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) _mm256_storeu_ps(dst + c + 8 * k, w[k]);
      }
    }
  }
}

// lanes[i][t][0..32) += the canonical lane sums of tile rows w[0..2) against x rows [0..6) over
// columns [0, kn) (row stride ld), from zero when `first`; one 8-lane quarter at a time over all
// chunks (lanes are independent, and storing them between column blocks is exact).
LLM_AVX2 void micro(const float* w, const float* x, int64_t ld, int64_t kn, bool first, float* lanes) {
  for (int64_t qu = 0; qu < 4; ++qu) {
    __m256 acc[kMicroRows][kMicroTokens];
#pragma GCC unroll 12
    for (int k = 0; k < kMicroRows * kMicroTokens; ++k) {
      acc[k / kMicroTokens][k % kMicroTokens] =
          first ? _mm256_setzero_ps() : _mm256_loadu_ps(lanes + k * kQuantChunk + qu * 8);
    }
    for (int64_t c = qu * 8; c < kn; c += kQuantChunk) {
      const __m256 w0 = _mm256_loadu_ps(w + c), w1 = _mm256_loadu_ps(w + ld + c);
#pragma GCC unroll 6
      for (int t = 0; t < kMicroTokens; ++t) {
        const __m256 xv = _mm256_loadu_ps(x + t * ld + c);
        acc[0][t] = _mm256_fmadd_ps(w0, xv, acc[0][t]);
        acc[1][t] = _mm256_fmadd_ps(w1, xv, acc[1][t]);
      }
    }
#pragma GCC unroll 12
    for (int k = 0; k < kMicroRows * kMicroTokens; ++k) {
      _mm256_storeu_ps(lanes + k * kQuantChunk + qu * 8, acc[k / kMicroTokens][k % kMicroTokens]);
    }
  }
}

// Prefill: a tile of rows dequantized once, then blocked like a GEMM (quant_tile_plan).
template <QuantKind K>
LLM_AVX2 void tiled(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch) {
  const QuantTilePlan p = quant_tile_plan(a);
  float* tile = scratch;
  float* lanes = scratch + p.tile_rows * a.cols;
  constexpr int64_t kMicro = kMicroRows * kMicroTokens * kQuantChunk;
  for (int64_t rb = r0; rb < r1; rb += p.tile_rows) {
    const int64_t rows = std::min(p.tile_rows, r1 - rb);
    const int64_t padded = (rows + kMicroRows - 1) / kMicroRows * kMicroRows;
    dequant_tile<K>(a, rb, rows, padded, tile);
    for (int64_t ts = 0; ts < a.n_pad; ts += p.tokens) {
      const int64_t te = std::min(a.n_pad, ts + p.tokens);
      for (int64_t kb = 0; kb < a.cols; kb += p.cols) {
        const int64_t kn = std::min(p.cols, a.cols - kb);
        for (int64_t t0 = ts; t0 < te; t0 += kMicroTokens) {
          for (int64_t i0 = 0; i0 < padded; i0 += kMicroRows) {
            float* l = lanes + ((t0 - ts) / kMicroTokens * (padded / kMicroRows) + i0 / kMicroRows) * kMicro;
            micro(tile + i0 * a.cols + kb, a.x + t0 * a.cols + kb, a.cols, kn, kb == 0, l);
          }
        }
      }
      for (int64_t t0 = ts; t0 < te; t0 += kMicroTokens) {
        for (int64_t i0 = 0; i0 < padded; i0 += kMicroRows) {
          const float* l = lanes + ((t0 - ts) / kMicroTokens * (padded / kMicroRows) + i0 / kMicroRows) * kMicro;
          for (int64_t i = 0; i < kMicroRows && i0 + i < rows; ++i) {
            for (int64_t t = 0; t < kMicroTokens && t0 + t < a.n; ++t) {
              a.y[(t0 + t) * a.y_ld + rb + i0 + i] = quant_reduce32(l + (i * kMicroTokens + t) * kQuantChunk);
            }
          }
        }
      }
    }
  }
}

template <QuantKind K>
LLM_AVX2 void rows(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch) {
  if (a.n >= kQuantTileMinTokens) return tiled<K>(a, r0, r1, scratch);
  int64_t r = r0;
  for (; r + 2 <= r1; r += 2) {
    for (int64_t t = 0; t < a.n; ++t) gemv<K, 2>(a, r, t);
  }
  for (; r < r1; ++r) {
    for (int64_t t = 0; t < a.n; ++t) gemv<K, 1>(a, r, t);
  }
}

}  // namespace

void quant_rows_avx2(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch) {
  if (a.kind == QuantKind::Int8) return rows<QuantKind::Int8>(a, r0, r1, scratch);
  rows<QuantKind::Int4>(a, r0, r1, scratch);
}

}  // namespace llm::cpu

#endif  // __x86_64__
