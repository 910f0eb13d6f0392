#include "backend/cpu/cpu_util.h"

#include <cstring>

#include "backend/op_checks.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace llm::cpu {

namespace {

#if defined(__x86_64__)
__attribute__((target("avx2,f16c"))) void f16_to_f32_f16c(const uint16_t* s, float* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
  }
  for (; i < n; ++i) d[i] = f16_bits_to_f32(s[i]);
}
__attribute__((target("avx2,f16c"))) void f32_to_f16_f16c(const float* s, uint16_t* d, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i), h);
  }
  for (; i < n; ++i) d[i] = f32_to_f16_bits(s[i]);
}
bool has_f16c() { return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx2"); }
#endif

LLM_CPU_CLONES void bf16_to_f32_loop(const uint16_t* s, float* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] = std::bit_cast<float>(static_cast<uint32_t>(s[i]) << 16);
}
LLM_CPU_CLONES void f32_to_bf16_loop(const float* s, uint16_t* d, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t x = std::bit_cast<uint32_t>(s[i]);
    const uint16_t r = static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
    d[i] = (x & 0x7fffffffu) > 0x7f800000u ? static_cast<uint16_t>((x >> 16) | 0x40u) : r;
  }
}

}  // namespace

namespace {

inline float widen_bf16(uint16_t x) { return std::bit_cast<float>(static_cast<uint32_t>(x) << 16); }

// The column sums of the norms' and biases' weight gradients, a block of a row at a time: the
// loops vectorise here (compiled per ISA) where a call to to_f32 per block cost more than the sum.
LLM_CPU_CLONES void add_bf16_loop(const uint16_t* x, float* acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += widen_bf16(x[i]);
}
LLM_CPU_CLONES void add_f32_loop(const float* x, float* acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += x[i];
}
LLM_CPU_CLONES void add_product_bf16_loop(const uint16_t* a, const uint16_t* b, float s, float* acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += widen_bf16(a[i]) * widen_bf16(b[i]) * s;
}
LLM_CPU_CLONES void add_product_f32_loop(const float* a, const float* b, float s, float* acc, int64_t n) {
  for (int64_t i = 0; i < n; ++i) acc[i] += a[i] * b[i] * s;
}

}  // namespace

void add_widened(const void* x, DType t, float* acc, int64_t n) {
  if (t == DType::BF16) return add_bf16_loop(static_cast<const uint16_t*>(x), acc, n);
  if (t == DType::F32) return add_f32_loop(static_cast<const float*>(x), acc, n);
  std::vector<float> w(static_cast<size_t>(n));
  to_f32(x, t, w.data(), n);
  add_f32_loop(w.data(), acc, n);
}

void add_widened_product(const void* a, DType ta, const void* b, DType tb, float s, float* acc, int64_t n) {
  if (ta == DType::BF16 && tb == DType::BF16) {
    return add_product_bf16_loop(static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), s, acc, n);
  }
  if (ta == DType::F32 && tb == DType::F32) {
    return add_product_f32_loop(static_cast<const float*>(a), static_cast<const float*>(b), s, acc, n);
  }
  std::vector<float> wa(static_cast<size_t>(n)), wb(static_cast<size_t>(n));
  to_f32(a, ta, wa.data(), n);
  to_f32(b, tb, wb.data(), n);
  add_product_f32_loop(wa.data(), wb.data(), s, acc, n);
}

void to_f32(const void* src, DType t, float* dst, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::BF16: bf16_to_f32_loop(static_cast<const uint16_t*>(src), dst, n); return;
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
#if defined(__x86_64__)
      if (has_f16c()) return f16_to_f32_f16c(s, dst, n);
#endif
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_bits_to_f32(s[i]);
      return;
    }
    default: fail("to_f32: ", dtype_name(t), " is not a float dtype");
  }
}

void from_f32(const float* src, void* dst, DType t, int64_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case DType::BF16: f32_to_bf16_loop(src, static_cast<uint16_t*>(dst), n); return;
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
#if defined(__x86_64__)
      if (has_f16c()) return f32_to_f16_f16c(src, d, n);
#endif
      for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16_bits(src[i]);
      return;
    }
    default: fail("from_f32: ", dtype_name(t), " is not a float dtype");
  }
}

F32Matrix f32_matrix(const Tensor& t, const char* op, const char* what) {
  LLM_CHECK(t.ndim() == 2, op, ": ", what, " must be 2-D, got ", t.shape_str());
  check_rows(t, op, what);
  F32Matrix m;
  m.rows = t.size(0);
  m.cols = t.size(1);
  if (t.dtype() == DType::F32) {
    m.data = t.ptr<float>();
    m.ld = m.rows > 1 ? t.stride(0) : m.cols;
    return m;
  }
  m.storage.resize(static_cast<size_t>(m.rows * m.cols));
  const int64_t rows = m.rows, cols = m.cols;
  float* dst = m.storage.data();
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; ++r) to_f32(at(t, r), t.dtype(), dst + r * cols, cols);
  m.data = dst;
  m.ld = cols;
  return m;
}

void check_ids_in_vocab(const Tensor& ids, int64_t vocab, const char* op) {
  const int32_t* p = ids.ptr<int32_t>();
  for (int64_t n = 0; n < ids.size(0); ++n) {
    LLM_CHECK(p[n] >= 0 && p[n] < vocab, op, ": token id ", p[n], " at position ", n, " is outside the vocabulary [0, ",
              vocab, ")");
  }
}

}  // namespace llm::cpu
