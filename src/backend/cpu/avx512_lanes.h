// The canonical lane tree of the AVX-512 fp32 dot kernels (quant_kernels.h): 32 lane sums held as
// two zmm registers, reduced A[k] += A[k + 16], then + 8, + 4, + 2, + 1. Shared by the int8/int4
// kernel (quant_avx512.cpp) and the ggml decode kernel (ggml_gemv_avx512.cpp). Include after
// <immintrin.h> (and after the pragmas those files put before it).
#pragma once

#if defined(__x86_64__)

namespace llm::cpu {

__attribute__((target("avx512f,avx512dq,avx"))) inline float reduce_lanes(__m512 a0, __m512 a1) {
  const __m512 t16 = _mm512_add_ps(a0, a1);
  const __m256 t8 = _mm256_add_ps(_mm512_castps512_ps256(t16), _mm512_extractf32x8_ps(t16, 1));
  const __m128 t4 = _mm_add_ps(_mm256_castps256_ps128(t8), _mm256_extractf128_ps(t8, 1));
  const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
  return _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
}

}  // namespace llm::cpu

#endif
