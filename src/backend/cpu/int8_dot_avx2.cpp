// The AVX2 int8 kernel (int8_dot_kernels.h): a group of 16 rows as two halves of 8 (32 bytes
// each per 4 columns) x T tokens, with vpmaddubsw (unsigned x signed bytes, pairs summed into
// saturating int16) and vpmaddwd by ones into int32. Saturation must never happen, or the
// result would differ from the other paths:
//  - 4-bit weights (offset 8, bytes 0..15): pairs are at most 2 * 15 * 127 = 3810, so the 8
//    steps of a block add up in int16 (30480) before one vpmaddwd; 5-bit (offset 16, 0..31):
//    2 * 31 * 127 = 7874, 4 steps (31496); 6-bit (Q6_K, 0..63): 2 * 63 * 127 = 16002, 2 steps
//    (32004), and Q6_K's two halves of 4 steps are summed and scaled apart. The offset
//    correction is added at the block's end (half's end), as the other kernels do.
//  - 8-bit weights (offset 128): 255 * 127 * 2 would saturate, so the weight w = byte ^ 0x80 is
//    taken signed and the sign trick applied (|w| unsigned, x with w's sign: pairs at most
//    2 * 128 * 127 = 32512); each step widens to int32. That computes sum w * x directly, the
//    same integer as corr + sum byte * x.
#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/int8_dot_kernels.h"

#define LLM_AVX2 __attribute__((target("avx2,fma")))

namespace llm::cpu {
namespace {

constexpr int kTokens = 2;

// Small: steps summed in int16 before widening (0: the sign trick, widened every step).
template <int Small, Int8Scales K, int T>
LLM_AVX2 void tile(const Int8Panel& p, int64_t g, const Int8Acts& a, int64_t t0, float* y, int64_t ldy, int64_t valid) {
  const int64_t nb = p.blocks;
  constexpr int H = K == Int8Scales::Halves ? 2 : 1;  // scales per block
  static_assert(Small == 0 || (8 / H) % Small == 0, "a half must end on a widening step");
  const uint8_t* u = p.u + g * nb * kInt8GroupBlockBytes;
  const float* dw = p.d + g * nb * H * kInt8GroupRows;
  const float* mn = K == Int8Scales::BlockAndMin ? p.mn + g * nb * kInt8GroupRows : nullptr;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[2][T];
#pragma GCC unroll 8
  for (int k = 0; k < 2 * T; ++k) acc[k / T][k % T] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int hb = 0; hb < H; ++hb) {
      __m256i s[2][T];
      __m256i s16[2][T];
#pragma GCC unroll 8
      for (int k = 0; k < 2 * T; ++k) {
        const int64_t tb = (t0 + k % T) * nb + b;
        const int32_t c = H == 2 ? a.hcorr[2 * tb + hb] : a.corr[tb];
        s[k / T][k % T] = _mm256_set1_epi32(Small != 0 ? c : 0);
        s16[k / T][k % T] = _mm256_setzero_si256();
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8 / H; ++i) {
        const int st = hb * (8 / H) + i;
        const uint8_t* wp = u + (b * 8 + st) * 64;
        __m256i w[2] = {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp)),
                        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 32))};
        __m256i aw[2];
        if constexpr (Small == 0) {
          for (int h = 0; h < 2; ++h) {
            w[h] = _mm256_xor_si256(w[h], _mm256_set1_epi8(static_cast<char>(0x80)));
            aw[h] = _mm256_abs_epi8(w[h]);
          }
        }
#pragma GCC unroll 4
        for (int ti = 0; ti < T; ++ti) {
          int32_t x4;
          std::memcpy(&x4, a.q + (t0 + ti) * a.cols + b * kInt8Block + 4 * st, 4);
          const __m256i xb = _mm256_set1_epi32(x4);
          for (int h = 0; h < 2; ++h) {
            if constexpr (Small != 0) {
              s16[h][ti] = _mm256_add_epi16(s16[h][ti], _mm256_maddubs_epi16(w[h], xb));
              if ((st + 1) % Small == 0) {
                s[h][ti] = _mm256_add_epi32(s[h][ti], _mm256_madd_epi16(s16[h][ti], ones));
                s16[h][ti] = _mm256_setzero_si256();
              }
            } else {
              const __m256i pr = _mm256_maddubs_epi16(aw[h], _mm256_sign_epi8(xb, w[h]));
              s[h][ti] = _mm256_add_epi32(s[h][ti], _mm256_madd_epi16(pr, ones));
            }
          }
        }
      }
      for (int h = 0; h < 2; ++h) {
        const __m256 dwv = _mm256_loadu_ps(dw + (b * H + hb) * kInt8GroupRows + 8 * h);
#pragma GCC unroll 4
        for (int ti = 0; ti < T; ++ti) {
          const __m256 scale = _mm256_mul_ps(dwv, _mm256_set1_ps(a.d[(t0 + ti) * nb + b]));
          acc[h][ti] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[h][ti]), scale, acc[h][ti]);
        }
      }
    }
    if constexpr (K == Int8Scales::BlockAndMin) {
      for (int h = 0; h < 2; ++h) {
        const __m256 mv = _mm256_loadu_ps(mn + b * kInt8GroupRows + 8 * h);
#pragma GCC unroll 4
        for (int ti = 0; ti < T; ++ti) {
          const int64_t tb = (t0 + ti) * nb + b;
          const __m256 m = _mm256_mul_ps(mv, _mm256_set1_ps(a.d[tb]));
          acc[h][ti] = _mm256_fmadd_ps(_mm256_set1_ps(static_cast<float>(a.qsum[tb])), m, acc[h][ti]);
        }
      }
    }
  }
  for (int h = 0; h < 2; ++h) {
    const int64_t row = g * kInt8GroupRows + 8 * h;
    const int64_t left = std::clamp<int64_t>(valid - row, 0, 8);
    for (int ti = 0; ti < T; ++ti) {
      float* dst = y + (t0 + ti) * ldy + row;
      if (left == 8) {
        _mm256_storeu_ps(dst, acc[h][ti]);
      } else if (left > 0) {
        alignas(32) float tmp[8];
        _mm256_store_ps(tmp, acc[h][ti]);
        std::memcpy(dst, tmp, static_cast<size_t>(left) * sizeof(float));
      }
    }
  }
}

template <int Small, Int8Scales K>
LLM_AVX2 void panel(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid) {
  int64_t t0 = 0;
  for (; t0 + kTokens <= a.n; t0 += kTokens) {
    for (int64_t g = 0; g < p.groups; ++g) tile<Small, K, kTokens>(p, g, a, t0, y, ldy, valid);
  }
  for (; t0 < a.n; ++t0) {
    for (int64_t g = 0; g < p.groups; ++g) tile<Small, K, 1>(p, g, a, t0, y, ldy, valid);
  }
}

}  // namespace

LLM_AVX2 void int8_dot_panel_avx2(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid) {
  switch (p.scales) {
    case Int8Scales::Halves: return panel<2, Int8Scales::Halves>(p, a, y, ldy, valid);            // Q6_K
    case Int8Scales::BlockAndMin: return panel<8, Int8Scales::BlockAndMin>(p, a, y, ldy, valid);  // Q4_K
    case Int8Scales::Block: break;
  }
  if (p.max_byte <= 15) return panel<8, Int8Scales::Block>(p, a, y, ldy, valid);
  if (p.max_byte <= 31) return panel<4, Int8Scales::Block>(p, a, y, ldy, valid);
  return panel<0, Int8Scales::Block>(p, a, y, ldy, valid);
}

}  // namespace llm::cpu

#endif
