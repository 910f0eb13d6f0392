// The AVX-512 quant_matmul kernel. A zmm register holds 16 of the 32 canonical lanes
// (quant_kernels.h), so every row has two accumulators: positions 0-15 and 16-31 of each chunk.
//  - Few tokens (decode): stream the quantized rows, eight at a time so the x loads are shared and
//    sixteen independent FMA chains hide the latency. int4 nibbles become floats by a register
//    lookup (vpermps into the 16 values (v - 8) * scale), which also folds the scale in.
//    Software prefetch runs a linear pointer at least kQuantPrefetchBytes ahead of the block: the
//    hardware prefetchers lose track of eight short interleaved row streams (896-byte int8 rows
//    read at 15-28 GB/s without it, 34-37 GB/s with it, one Zen 5 core, against a 40-45 GB/s
//    streaming sum; docs/quantization.md).
//  - Many tokens (prefill): dequantize a tile of rows to fp32 once, then a 4-row x 6-token
//    register-blocked product per 16-lane half, blocked over columns so that the x and weight
//    blocks of the inner loops stay in L1; the lanes go through memory to the reduction.
#if defined(__x86_64__)

// g++ 12's AVX-512 intrinsics start from _mm512_undefined_*() and trip -Wmaybe-uninitialized
// when inlined (GCC PR 105593, fixed in 12.3); the pragma must precede the header to reach them.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "backend/cpu/avx512_lanes.h"
#include "backend/cpu/quant_kernels.h"

#define LLM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

namespace llm::cpu {
namespace {

constexpr int kMicroRows = 4, kMicroTokens = 6;
static_assert(kQuantTileRows % kMicroRows == 0 && kQuantTokenPad % kMicroTokens == 0);

// Value of nibble v: (v - 8) * s, the same product float(q) * scale as every kernel rounds.
LLM_AVX512 inline __m512 int4_table(float s) {
  const __m512 q =
      _mm512_setr_ps(-8.f, -7.f, -6.f, -5.f, -4.f, -3.f, -2.f, -1.f, 0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f);
  return _mm512_mul_ps(q, _mm512_set1_ps(s));
}

LLM_AVX512 inline __m512 i8_to_f32(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// 16 bytes, zero-extended to dwords: the low nibble indexes vpermps as is (it reads 4 bits), the
// high one after a shift.
LLM_AVX512 inline __m512i u8_to_i32(const uint8_t* p) {
  return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// y[t, r .. r+R) streamed from the quantized rows.
template <QuantKind K, int R>
LLM_AVX512 void gemv(const QuantArgs& a, int64_t r, int64_t t) {
  const int64_t cols = a.cols, group = a.group;
  const float* x = a.x + t * cols;
  const uint8_t* q[R];
  const float* s[R];
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    q[i] = a.data + (r + i) * a.data_ld;
    s[i] = a.scales + (r + i) * a.scales_ld;
    acc0[i] = _mm512_setzero_ps();
    acc1[i] = _mm512_setzero_ps();
  }
  // Bytes of one row per chunk, and of the R rows together: the prefetch pointer advances by
  // the latter per chunk, so it sweeps the next blocks at the pace this one is consumed.
  constexpr int64_t row_bytes = K == QuantKind::Int8 ? kQuantChunk : kQuantChunk / 2;
  constexpr int64_t lines = R * row_bytes / 64;
  // At least one block ahead, so that long rows are covered from their start too. Addresses as
  // integers: they run past the matrix at its end, where prefetch is harmless.
  uintptr_t pf = reinterpret_cast<uintptr_t>(q[0]) + uintptr_t(std::max<int64_t>(kQuantPrefetchBytes, R * a.data_ld));
  // The next block's scales, one line per group: their rows are read interleaved too.
  const uintptr_t ps = reinterpret_cast<uintptr_t>(a.scales) + uintptr_t((r + R) * a.scales_ld * 4);
  const int64_t ps_bytes = R * a.scales_ld * 4;
  for (int64_t g0 = 0, gi = 0; g0 < cols; g0 += group, ++gi) {
    if (gi * 64 < ps_bytes) _mm_prefetch(reinterpret_cast<const char*>(ps + uintptr_t(gi * 64)), _MM_HINT_T0);
    __m512 sv[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) sv[i] = K == QuantKind::Int8 ? _mm512_set1_ps(s[i][gi]) : int4_table(s[i][gi]);
    for (int64_t c = g0; c < g0 + group; c += kQuantChunk) {
      const __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);
#pragma GCC unroll 8
      for (int64_t j = 0; j < lines; ++j) _mm_prefetch(reinterpret_cast<const char*>(pf + 64 * j), _MM_HINT_T0);
      pf += R * row_bytes;
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        if constexpr (K == QuantKind::Int8) {
          acc0[i] = _mm512_fmadd_ps(_mm512_mul_ps(i8_to_f32(q[i] + c), sv[i]), x0, acc0[i]);
          acc1[i] = _mm512_fmadd_ps(_mm512_mul_ps(i8_to_f32(q[i] + c + 16), sv[i]), x1, acc1[i]);
        } else {
          const __m512i d = u8_to_i32(q[i] + c / 2);
          acc0[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(d, sv[i]), x0, acc0[i]);
          acc1[i] = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), sv[i]), x1, acc1[i]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) a.y[t * a.y_ld + r + i] = reduce_lanes(acc0[i], acc1[i]);
}

// Rows [r0, r0 + rows) dequantized into tile rows in position order; rows up to `padded` zero.
template <QuantKind K>
LLM_AVX512 void dequant_tile(const QuantArgs& a, int64_t r0, int64_t rows, int64_t padded, float* tile) {
  const int64_t cols = a.cols, group = a.group;
  for (int64_t i = 0; i < padded; ++i) {
    float* dst = tile + i * cols;
    if (i >= rows) {
      for (int64_t c = 0; c < cols; c += 16) _mm512_storeu_ps(dst + c, _mm512_setzero_ps());
      continue;
    }
    const uint8_t* q = a.data + (r0 + i) * a.data_ld;
    const float* s = a.scales + (r0 + i) * a.scales_ld;
    for (int64_t g0 = 0, gi = 0; g0 < cols; g0 += group, ++gi) {
      const __m512 sv = K == QuantKind::Int8 ? _mm512_set1_ps(s[gi]) : int4_table(s[gi]);
      for (int64_t c = g0; c < g0 + group; c += kQuantChunk) {
        if constexpr (K == QuantKind::Int8) {
          _mm512_storeu_ps(dst + c, _mm512_mul_ps(i8_to_f32(q + c), sv));
          _mm512_storeu_ps(dst + c + 16, _mm512_mul_ps(i8_to_f32(q + c + 16), sv));
        } else {
          const __m512i d = u8_to_i32(q + c / 2);
          _mm512_storeu_ps(dst + c, _mm512_permutexvar_ps(d, sv));
          _mm512_storeu_ps(dst + c + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), sv));
        }
      }
    }
  }
}

// lanes[i][t][0..32) += the canonical lane sums of tile rows w[0..4) against x rows [0..6) over
// columns [0, kn) (both with row stride ld), starting from zero when `first`. Lanes are
// independent, so each 16-lane half runs over all chunks with 24 accumulators; storing them
// between column blocks is exact, so the blocking does not change the result.
LLM_AVX512 void micro(const float* w, const float* x, int64_t ld, int64_t kn, bool first, float* lanes) {
  for (int64_t h = 0; h < 2; ++h) {
    __m512 acc[kMicroRows][kMicroTokens];
#pragma GCC unroll 24
    for (int k = 0; k < kMicroRows * kMicroTokens; ++k) {
      acc[k / kMicroTokens][k % kMicroTokens] =
          first ? _mm512_setzero_ps() : _mm512_loadu_ps(lanes + k * kQuantChunk + h * 16);
    }
    for (int64_t c = h * 16; c < kn; c += kQuantChunk) {
      __m512 wv[kMicroRows];
#pragma GCC unroll 4
      for (int i = 0; i < kMicroRows; ++i) wv[i] = _mm512_loadu_ps(w + i * ld + c);
#pragma GCC unroll 6
      for (int t = 0; t < kMicroTokens; ++t) {
        const __m512 xv = _mm512_loadu_ps(x + t * ld + c);
#pragma GCC unroll 4
        for (int i = 0; i < kMicroRows; ++i) acc[i][t] = _mm512_fmadd_ps(wv[i], xv, acc[i][t]);
      }
    }
#pragma GCC unroll 24
    for (int k = 0; k < kMicroRows * kMicroTokens; ++k) {
      _mm512_storeu_ps(lanes + k * kQuantChunk + h * 16, acc[k / kMicroTokens][k % kMicroTokens]);
    }
  }
}

// Prefill: a tile of rows dequantized once, then blocked like a GEMM (quant_tile_plan).
template <QuantKind K>
LLM_AVX512 void tiled(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch) {
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
LLM_AVX512 void rows(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch) {
  if (a.n >= kQuantTileMinTokens) return tiled<K>(a, r0, r1, scratch);
  int64_t r = r0;
  for (; r + 8 <= r1; r += 8) {
    for (int64_t t = 0; t < a.n; ++t) gemv<K, 8>(a, r, t);
  }
  for (; r < r1; ++r) {
    for (int64_t t = 0; t < a.n; ++t) gemv<K, 1>(a, r, t);
  }
}

}  // namespace

void quant_rows_avx512(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch) {
  if (a.kind == QuantKind::Int8) return rows<QuantKind::Int8>(a, r0, r1, scratch);
  rows<QuantKind::Int4>(a, r0, r1, scratch);
}

}  // namespace llm::cpu

#endif  // __x86_64__
