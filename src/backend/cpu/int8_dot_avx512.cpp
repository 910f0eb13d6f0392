// The AVX-512 VNNI int8 kernel (int8_dot_kernels.h): a register tile of G groups of 16 rows x T
// tokens. Per block, the int32 sums start from the token's offset correction and take 8 vpdpbusd
// (64 bytes of 16 rows times a broadcast 4 bytes of the token); then they are converted to fp32
// and added with the block's scale product into the fp32 accumulators, which live in registers
// over the whole row (the weights stream from L2, the token tile's bytes from L1). Q6_K sums and
// scales the two halves of a block apart (4 vpdpbusd each); Q4_K adds its min term per block.
#if defined(__x86_64__)

// g++ 12's AVX-512 intrinsics trip -Wmaybe-uninitialized when inlined (GCC PR 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "backend/cpu/int8_dot_kernels.h"

#define LLM_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")))

namespace llm::cpu {
namespace {

constexpr int kGroups = 2, kTokens = 6;

template <Int8Scales K, int G, int T>
LLM_VNNI void tile(const Int8Panel& p, int64_t g0, const Int8Acts& a, int64_t t0, float* y, int64_t ldy,
                   int64_t valid) {
  const int64_t nb = p.blocks;
  constexpr int H = K == Int8Scales::Halves ? 2 : 1;  // scales per block
  const uint8_t* u[G];
  const float* dw[G];
  const float* mn[G];
#pragma GCC unroll 4
  for (int gi = 0; gi < G; ++gi) {
    u[gi] = p.u + (g0 + gi) * nb * kInt8GroupBlockBytes;
    dw[gi] = p.d + (g0 + gi) * nb * H * kInt8GroupRows;
    mn[gi] = K == Int8Scales::BlockAndMin ? p.mn + (g0 + gi) * nb * kInt8GroupRows : nullptr;
  }
  const int8_t* xq[T];
  const float* dx[T];
#pragma GCC unroll 8
  for (int ti = 0; ti < T; ++ti) {
    xq[ti] = a.q + (t0 + ti) * a.cols;
    dx[ti] = a.d + (t0 + ti) * nb;
  }
  __m512 acc[G][T];
#pragma GCC unroll 16
  for (int k = 0; k < G * T; ++k) acc[k / T][k % T] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    for (int h = 0; h < H; ++h) {
      __m512i s[G][T];
#pragma GCC unroll 8
      for (int ti = 0; ti < T; ++ti) {
        const int64_t tb = (t0 + ti) * nb + b;
        const __m512i c = _mm512_set1_epi32(H == 2 ? a.hcorr[2 * tb + h] : a.corr[tb]);
#pragma GCC unroll 4
        for (int gi = 0; gi < G; ++gi) s[gi][ti] = c;
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8 / H; ++i) {
        const int st = h * (8 / H) + i;
        __m512i wv[G];
#pragma GCC unroll 4
        for (int gi = 0; gi < G; ++gi) wv[gi] = _mm512_loadu_si512(u[gi] + (b * 8 + st) * 64);
#pragma GCC unroll 8
        for (int ti = 0; ti < T; ++ti) {
          int32_t x4;
          std::memcpy(&x4, xq[ti] + b * kInt8Block + 4 * st, 4);
          const __m512i xb = _mm512_set1_epi32(x4);
#pragma GCC unroll 4
          for (int gi = 0; gi < G; ++gi) s[gi][ti] = _mm512_dpbusd_epi32(s[gi][ti], wv[gi], xb);
        }
      }
#pragma GCC unroll 4
      for (int gi = 0; gi < G; ++gi) {
        const __m512 dwv = _mm512_loadu_ps(dw[gi] + (b * H + h) * kInt8GroupRows);
#pragma GCC unroll 8
        for (int ti = 0; ti < T; ++ti) {
          const __m512 scale = _mm512_mul_ps(dwv, _mm512_set1_ps(dx[ti][b]));
          acc[gi][ti] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[gi][ti]), scale, acc[gi][ti]);
        }
      }
    }
    if constexpr (K == Int8Scales::BlockAndMin) {
#pragma GCC unroll 4
      for (int gi = 0; gi < G; ++gi) {
        const __m512 mv = _mm512_loadu_ps(mn[gi] + b * kInt8GroupRows);
#pragma GCC unroll 8
        for (int ti = 0; ti < T; ++ti) {
          const __m512 m = _mm512_mul_ps(mv, _mm512_set1_ps(dx[ti][b]));
          const __m512 qs = _mm512_set1_ps(static_cast<float>(a.qsum[(t0 + ti) * nb + b]));
          acc[gi][ti] = _mm512_fmadd_ps(qs, m, acc[gi][ti]);
        }
      }
    }
  }
#pragma GCC unroll 4
  for (int gi = 0; gi < G; ++gi) {
    const int64_t left = std::clamp<int64_t>(valid - (g0 + gi) * kInt8GroupRows, 0, kInt8GroupRows);
    const __mmask16 m = static_cast<__mmask16>((1u << left) - 1u);
#pragma GCC unroll 8
    for (int ti = 0; ti < T; ++ti) {
      _mm512_mask_storeu_ps(y + (t0 + ti) * ldy + (g0 + gi) * kInt8GroupRows, m, acc[gi][ti]);
    }
  }
}

template <Int8Scales K, int G>
LLM_VNNI void tokens_left(const Int8Panel& p, int64_t g0, const Int8Acts& a, int64_t t0, float* y, int64_t ldy,
                          int64_t valid) {
  switch (a.n - t0) {
    case 1: return tile<K, G, 1>(p, g0, a, t0, y, ldy, valid);
    case 2: return tile<K, G, 2>(p, g0, a, t0, y, ldy, valid);
    case 3: return tile<K, G, 3>(p, g0, a, t0, y, ldy, valid);
    case 4: return tile<K, G, 4>(p, g0, a, t0, y, ldy, valid);
    case 5: return tile<K, G, 5>(p, g0, a, t0, y, ldy, valid);
    default: return;
  }
}

template <Int8Scales K>
LLM_VNNI void panel(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid) {
  int64_t t0 = 0;
  for (; t0 + kTokens <= a.n; t0 += kTokens) {
    int64_t g0 = 0;
    for (; g0 + kGroups <= p.groups; g0 += kGroups) tile<K, kGroups, kTokens>(p, g0, a, t0, y, ldy, valid);
    for (; g0 < p.groups; ++g0) tile<K, 1, kTokens>(p, g0, a, t0, y, ldy, valid);
  }
  if (t0 < a.n) {
    int64_t g0 = 0;
    for (; g0 + kGroups <= p.groups; g0 += kGroups) tokens_left<K, kGroups>(p, g0, a, t0, y, ldy, valid);
    for (; g0 < p.groups; ++g0) tokens_left<K, 1>(p, g0, a, t0, y, ldy, valid);
  }
}

}  // namespace

LLM_VNNI void int8_dot_panel_avx512vnni(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid) {
  switch (p.scales) {
    case Int8Scales::Block: return panel<Int8Scales::Block>(p, a, y, ldy, valid);
    case Int8Scales::Halves: return panel<Int8Scales::Halves>(p, a, y, ldy, valid);
    case Int8Scales::BlockAndMin: return panel<Int8Scales::BlockAndMin>(p, a, y, ldy, valid);
  }
}

}  // namespace llm::cpu

#endif
