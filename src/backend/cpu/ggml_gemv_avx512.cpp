// Decode (a few tokens) on ggml Q4_0 and Q8_0 blocks with AVX-512, straight from the blocks: no
// decoded copy of the row. (A Q4_0 file of Qwen2.5-0.5B keeps its output layer in Q8_0, 896 not
// being a multiple of Q6_K's 256: 42% of the bytes a token reads.) A Q4_0 block is an f16 scale d and 16 bytes whose
// low nibbles are values 0-15 and high nibbles values 16-31, each (v - 8) * d. One vpermps into the 16 products (v - 8)
// * d turns 16 nibbles into their fp32 weights (the trick of our own int4 kernel, quant_avx512.cpp), so a block costs a
// table multiply, one load, a shift, two permutes and two FMAs per row. The scratch path (decode_q4_0 into L1, then a
// dot) writes and reads every weight once more and ran behind llama.cpp's Q4_0 decode on the Qwen2.5-0.5B shape
// (docs/quantization.md).
//
// A Q8_0 block is an f16 scale d and 32 int8 q: weights q * d, two conversions and two multiplies.
//
// The function: the weights are decode_q4_0's / decode_q8_0's values bit for bit ((v - 8) * d and
// q * d are exact in fp32);
// each row sums w * x in 32 fp32 lanes (lane = the value's position in its block, blocks in order,
// one fma each) reduced by the tree of quant_kernels.h: a dot product in fp32, in another order
// than the scratch path's.
#if defined(__x86_64__)

// g++ 12's AVX-512 intrinsics trip -Wmaybe-uninitialized when inlined (see quant_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/avx512_lanes.h"
#include "backend/cpu/ggml_kernels.h"

#define LLM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

namespace llm::cpu {
namespace {

constexpr int64_t kQ4Bytes = 18;     // block_q4_0: f16 d, 16 bytes of nibbles
constexpr int64_t kQ8Bytes = 34;     // block_q8_0: f16 d, 32 int8
constexpr int64_t kRowsPerCall = 4;  // rows sharing each load of x: 8 independent FMA chains
constexpr int64_t kPrefetchBytes = 1024;

LLM_AVX512 inline float f16_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h)));
}

LLM_AVX512 inline __m512 i8_to_f32(const uint8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

// The 32 fp32 weights of one block: values 0-15 in w0, 16-31 in w1. (The Q4_0 levels are a
// constant the callers' loops hoist.)
template <GgmlType T>
LLM_AVX512 inline void block_weights(const uint8_t* blk, __m512& w0, __m512& w1) {
  if constexpr (T == GgmlType::Q4_0) {
    const __m512 levels =
        _mm512_setr_ps(-8.f, -7.f, -6.f, -5.f, -4.f, -3.f, -2.f, -1.f, 0.f, 1.f, 2.f, 3.f, 4.f, 5.f, 6.f, 7.f);
    const __m512 table = _mm512_mul_ps(levels, _mm512_set1_ps(f16_at(blk)));
    const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
    w0 = _mm512_permutexvar_ps(v, table);
    w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), table);
  } else {
    const __m512 d = _mm512_set1_ps(f16_at(blk));
    w0 = _mm512_mul_ps(i8_to_f32(blk + 2), d);
    w1 = _mm512_mul_ps(i8_to_f32(blk + 18), d);
  }
}

// y[i * ldr] = dot(row i, x) for the R rows at row, row + ld, ...; nb blocks per row.
template <GgmlType T, int R>
LLM_AVX512 void block_rows(const uint8_t* row, int64_t ld, int64_t nb, const float* x, float* y, int64_t ldr) {
  constexpr int64_t bytes = T == GgmlType::Q4_0 ? kQ4Bytes : kQ8Bytes;
  __m512 acc0[R], acc1[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) acc0[i] = acc1[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + 32 * b), x1 = _mm512_loadu_ps(x + 32 * b + 16);
    // A line ahead in each row every few blocks: four short streams the hardware may not follow.
    if ((b & 3) == 0) {
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(row + i * ld + b * bytes + kPrefetchBytes), _MM_HINT_T0);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      __m512 w0, w1;
      block_weights<T>(row + i * ld + b * bytes, w0, w1);
      acc0[i] = _mm512_fmadd_ps(w0, x0, acc0[i]);
      acc1[i] = _mm512_fmadd_ps(w1, x1, acc1[i]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) y[i * ldr] = reduce_lanes(acc0[i], acc1[i]);
}

// y[t * ldy] = dot(row, x + t * ldx) for NT tokens (a batched decode step): each block's weights
// are formed once and meet every token, so a token costs two FMAs per block instead of the whole
// block_rows step. Each output is block_rows' sum exactly (the same weights, lanes, order and tree).
template <GgmlType T, int NT>
LLM_AVX512 void block_tokens(const uint8_t* row, int64_t nb, const float* x, int64_t ldx, float* y, int64_t ldy) {
  constexpr int64_t bytes = T == GgmlType::Q4_0 ? kQ4Bytes : kQ8Bytes;
  __m512 acc0[NT], acc1[NT];
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * bytes;
    if ((b & 3) == 0) _mm_prefetch(reinterpret_cast<const char*>(blk + kPrefetchBytes), _MM_HINT_T0);
    __m512 w0, w1;
    block_weights<T>(blk, w0, w1);
#pragma GCC unroll 8
    for (int t = 0; t < NT; ++t) {
      acc0[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + t * ldx + 32 * b), acc0[t]);
      acc1[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + t * ldx + 32 * b + 16), acc1[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < NT; ++t) y[t * ldy] = reduce_lanes(acc0[t], acc1[t]);
}

}  // namespace

namespace {

constexpr int64_t kTokensPerCall = 8;  // 16 accumulators

template <GgmlType T>
void rows_of(const uint8_t* data, int64_t data_ld, int64_t r0, int64_t r1, int64_t cols, const float* x, int64_t n,
             float* y, int64_t ldy) {
  const int64_t nb = cols / 32;
  if (n == 1) {  // decode: rows share each load of x
    int64_t r = r0;
    for (; r + kRowsPerCall <= r1; r += kRowsPerCall)
      block_rows<T, kRowsPerCall>(data + r * data_ld, data_ld, nb, x, y + r, 1);
    for (; r < r1; ++r) block_rows<T, 1>(data + r * data_ld, data_ld, nb, x, y + r, 1);
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = data + r * data_ld;
    for (int64_t t0 = 0; t0 < n; t0 += kTokensPerCall) {
      const float* xt = x + t0 * cols;
      float* yt = y + t0 * ldy + r;
      switch (std::min(n - t0, kTokensPerCall)) {
        case 1: block_tokens<T, 1>(row, nb, xt, cols, yt, ldy); break;
        case 2: block_tokens<T, 2>(row, nb, xt, cols, yt, ldy); break;
        case 3: block_tokens<T, 3>(row, nb, xt, cols, yt, ldy); break;
        case 4: block_tokens<T, 4>(row, nb, xt, cols, yt, ldy); break;
        case 5: block_tokens<T, 5>(row, nb, xt, cols, yt, ldy); break;
        case 6: block_tokens<T, 6>(row, nb, xt, cols, yt, ldy); break;
        case 7: block_tokens<T, 7>(row, nb, xt, cols, yt, ldy); break;
        default: block_tokens<T, 8>(row, nb, xt, cols, yt, ldy); break;
      }
    }
  }
}

}  // namespace

bool ggml_gemv_avx512_supports(GgmlType t) { return t == GgmlType::Q4_0 || t == GgmlType::Q8_0; }

void ggml_gemv_avx512(GgmlType t, const uint8_t* data, int64_t data_ld, int64_t r0, int64_t r1, int64_t cols,
                      const float* x, int64_t n, float* y, int64_t ldy) {
  if (t == GgmlType::Q4_0) return rows_of<GgmlType::Q4_0>(data, data_ld, r0, r1, cols, x, n, y, ldy);
  rows_of<GgmlType::Q8_0>(data, data_ld, r0, r1, cols, x, n, y, ldy);
}

}  // namespace llm::cpu

#else

#include "backend/cpu/ggml_kernels.h"

namespace llm::cpu {
bool ggml_gemv_avx512_supports(GgmlType) { return false; }
void ggml_gemv_avx512(GgmlType, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const float*, int64_t, float*,
                      int64_t) {}
}  // namespace llm::cpu

#endif
