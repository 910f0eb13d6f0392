// __half and __nv_bfloat16 for the emulator: the cuda_fp16.h / cuda_bf16.h interface that
// kernels use, with the hardware's conversions (round to nearest even, NaN -> canonical 0x7fff).
// Written independently of llm/dtype.h so that the two implementations check each other
// (tests/cuda_emu/half_test.cpp compares them over all inputs that matter).
// Arithmetic computes in float and rounds once: for +, -, *, / and sqrt of 11- or 8-bit
// significands float's 24 bits make that rounding exact (p' >= 2p + 2); fma goes through double.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

#include "types.h"

namespace llm::emu {

namespace fp16_detail {

// x >> s rounded to nearest, ties to even (s in 1..31).
constexpr uint32_t shift_rne(uint32_t x, uint32_t s) {
  const uint32_t q = x >> s;
  const uint32_t rem = x & ((1u << s) - 1u);
  const uint32_t half = 1u << (s - 1u);
  return q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
}

constexpr uint16_t float_to_half_bits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t u = x & 0x7fffffffu;
  if (u > 0x7f800000u) return 0x7fffu;                                 // NaN: canonical
  if (u == 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u);  // infinity
  if (u >= 0x38800000u) {                                              // normal (or overflow)
    const uint32_t r = shift_rne(u - 0x38000000u, 13);                 // rebias 127 -> 15
    return static_cast<uint16_t>(sign | (r >= 0x7c00u ? 0x7c00u : r));
  }
  if (u < 0x33000001u) return static_cast<uint16_t>(sign);  // |f| <= 2^-25: zero
  const uint32_t e = u >> 23;                               // subnormal half
  const uint32_t m = (u & 0x7fffffu) | 0x800000u;
  return static_cast<uint16_t>(sign | shift_rne(m, 126u - e));  // carry into exponent is right
}

constexpr float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  const uint32_t m = h & 0x3ffu;
  if (e == 0x1fu) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return sign ? -v : v;
  }
  return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}

constexpr uint16_t float_to_bf16_bits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;  // NaN: canonical
  const uint32_t lsb = (x >> 16) & 1u;
  return static_cast<uint16_t>((x + 0x7fffu + lsb) >> 16);  // ties to even; overflow reaches inf
}

constexpr float bf16_bits_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

// A double rounded to nearest-even into a format with `mant` fraction bits, minimum normal
// exponent emin and largest finite value max_finite; returns the exactly representable result
// as a double (inf on overflow). Used for the double -> 16-bit conversions, which round once.
inline double round_double(double d, int mant, int emin, double max_finite) {
  if (!std::isfinite(d) || d == 0.0) return d;
  int e = 0;
  (void)std::frexp(d, &e);  // |d| = m * 2^e, m in [0.5, 1): leading bit at e - 1
  const int quantum = (e - 1 < emin ? emin : e - 1) - mant;
  const double r = std::ldexp(std::nearbyint(std::ldexp(d, -quantum)), quantum);
  if (std::fabs(r) > max_finite) return std::copysign(INFINITY, d);
  return r;
}

}  // namespace fp16_detail

struct __half_raw {
  unsigned short x;
};
struct __nv_bfloat16_raw {
  unsigned short x;
};
struct __nv_bfloat16;

struct alignas(2) __half {
  unsigned short __x;

  __half() = default;
  constexpr __half(const __half_raw& r) : __x(r.x) {}               // NOLINT: implicit, as in CUDA
  __half(float f) : __x(fp16_detail::float_to_half_bits(f)) {}      // NOLINT
  __half(double d);                                                 // NOLINT
  __half(short v) : __half(static_cast<float>(v)) {}                // NOLINT
  __half(unsigned short v) : __half(static_cast<float>(v)) {}       // NOLINT
  __half(int v) : __half(static_cast<double>(v)) {}                 // NOLINT
  __half(unsigned int v) : __half(static_cast<double>(v)) {}        // NOLINT
  __half(long long v) : __half(static_cast<double>(v)) {}           // NOLINT
  __half(unsigned long long v) : __half(static_cast<double>(v)) {}  // NOLINT
  explicit __half(const __nv_bfloat16& b);

  operator __half_raw() const { return __half_raw{__x}; }
  operator float() const { return fp16_detail::half_bits_to_float(__x); }
  // CUDA converts to integers with round-toward-zero.
  operator short() const { return static_cast<short>(std::trunc(float(*this))); }
  operator unsigned short() const { return static_cast<unsigned short>(std::trunc(float(*this))); }
  operator int() const { return static_cast<int>(std::trunc(float(*this))); }
  operator unsigned int() const { return static_cast<unsigned int>(std::trunc(float(*this))); }
  operator long long() const { return static_cast<long long>(std::trunc(float(*this))); }
  operator unsigned long long() const { return static_cast<unsigned long long>(std::trunc(float(*this))); }
  explicit operator bool() const { return (__x & 0x7fffu) != 0; }
};

struct alignas(2) __nv_bfloat16 {
  unsigned short __x;

  __nv_bfloat16() = default;
  constexpr __nv_bfloat16(const __nv_bfloat16_raw& r) : __x(r.x) {}               // NOLINT
  __nv_bfloat16(float f) : __x(fp16_detail::float_to_bf16_bits(f)) {}             // NOLINT
  __nv_bfloat16(double d);                                                        // NOLINT
  __nv_bfloat16(short v) : __nv_bfloat16(static_cast<float>(v)) {}                // NOLINT
  __nv_bfloat16(unsigned short v) : __nv_bfloat16(static_cast<float>(v)) {}       // NOLINT
  __nv_bfloat16(int v) : __nv_bfloat16(static_cast<double>(v)) {}                 // NOLINT
  __nv_bfloat16(unsigned int v) : __nv_bfloat16(static_cast<double>(v)) {}        // NOLINT
  __nv_bfloat16(long long v) : __nv_bfloat16(static_cast<double>(v)) {}           // NOLINT
  __nv_bfloat16(unsigned long long v) : __nv_bfloat16(static_cast<double>(v)) {}  // NOLINT
  explicit __nv_bfloat16(const __half& h) : __nv_bfloat16(float(h)) {}

  operator __nv_bfloat16_raw() const { return __nv_bfloat16_raw{__x}; }
  operator float() const { return fp16_detail::bf16_bits_to_float(__x); }
  operator short() const { return static_cast<short>(std::trunc(float(*this))); }
  operator unsigned short() const { return static_cast<unsigned short>(std::trunc(float(*this))); }
  operator int() const { return static_cast<int>(std::trunc(float(*this))); }
  operator unsigned int() const { return static_cast<unsigned int>(std::trunc(float(*this))); }
  operator long long() const { return static_cast<long long>(std::trunc(float(*this))); }
  operator unsigned long long() const { return static_cast<unsigned long long>(std::trunc(float(*this))); }
  explicit operator bool() const { return (__x & 0x7fffu) != 0; }
};

using half = __half;
using nv_bfloat16 = __nv_bfloat16;

inline __half::__half(double d) {
  const double r = fp16_detail::round_double(d, 10, -14, 65504.0);
  __x = std::isnan(d) ? 0x7fffu : fp16_detail::float_to_half_bits(static_cast<float>(r));  // r is exact
}
inline __half::__half(const __nv_bfloat16& b) : __half(float(b)) {}
inline __nv_bfloat16::__nv_bfloat16(double d) {
  const double r = fp16_detail::round_double(d, 7, -126, 3.3895313892515355e38);
  __x = std::isnan(d) ? 0x7fffu : fp16_detail::float_to_bf16_bits(static_cast<float>(r));
}

struct alignas(4) __half2 {
  __half x, y;
  __half2() = default;
  constexpr __half2(const __half& a, const __half& b) : x(a), y(b) {}
};
struct alignas(4) __nv_bfloat162 {
  __nv_bfloat16 x, y;
  __nv_bfloat162() = default;
  constexpr __nv_bfloat162(const __nv_bfloat16& a, const __nv_bfloat16& b) : x(a), y(b) {}
};
using half2 = __half2;
using nv_bfloat162 = __nv_bfloat162;

// ---- conversions (cuda_fp16.h / cuda_bf16.h names) --------------------------------------------
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __double2half(double d) { return __half(d); }
inline float __half2float(__half h) { return float(h); }
inline __half __int2half_rn(int v) { return __half(v); }
inline int __half2int_rz(__half h) { return int(h); }
inline int __half2int_rn(__half h) { return static_cast<int>(std::nearbyint(float(h))); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline short __half_as_short(__half h) { return static_cast<short>(h.__x); }
inline __half __ushort_as_half(unsigned short u) { return __half(__half_raw{u}); }
inline __half __short_as_half(short s) { return __half(__half_raw{static_cast<unsigned short>(s)}); }

inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __double2bfloat16(double d) { return __nv_bfloat16(d); }
inline float __bfloat162float(__nv_bfloat16 b) { return float(b); }
inline __nv_bfloat16 __int2bfloat16_rn(int v) { return __nv_bfloat16(v); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.__x; }
inline short __bfloat16_as_short(__nv_bfloat16 b) { return static_cast<short>(b.__x); }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16(__nv_bfloat16_raw{u}); }
inline __nv_bfloat16 __short_as_bfloat16(short s) {
  return __nv_bfloat16(__nv_bfloat16_raw{static_cast<unsigned short>(s)});
}

inline __half2 __floats2half2_rn(float a, float b) { return __half2(__half(a), __half(b)); }
inline __half2 __float2half2_rn(float a) { return __half2(__half(a), __half(a)); }
inline __half2 __float22half2_rn(float2 f) { return __floats2half2_rn(f.x, f.y); }
inline float2 __half22float2(__half2 h) { return float2{float(h.x), float(h.y)}; }
inline __half2 __halves2half2(__half a, __half b) { return __half2(a, b); }
inline __half2 __half2half2(__half a) { return __half2(a, a); }
inline __half __low2half(__half2 h) { return h.x; }
inline __half __high2half(__half2 h) { return h.y; }
inline float __low2float(__half2 h) { return float(h.x); }
inline float __high2float(__half2 h) { return float(h.y); }

inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) {
  return __nv_bfloat162(__nv_bfloat16(a), __nv_bfloat16(b));
}
inline __nv_bfloat162 __float2bfloat162_rn(float a) { return __floats2bfloat162_rn(a, a); }
inline __nv_bfloat162 __float22bfloat162_rn(float2 f) { return __floats2bfloat162_rn(f.x, f.y); }
inline float2 __bfloat1622float2(__nv_bfloat162 b) { return float2{float(b.x), float(b.y)}; }
inline __nv_bfloat162 __halves2bfloat162(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat162(a, b); }
inline __nv_bfloat162 __bfloat162bfloat162(__nv_bfloat16 a) { return __nv_bfloat162(a, a); }
inline __nv_bfloat16 __low2bfloat16(__nv_bfloat162 b) { return b.x; }
inline __nv_bfloat16 __high2bfloat16(__nv_bfloat162 b) { return b.y; }
inline float __low2float(__nv_bfloat162 b) { return float(b.x); }
inline float __high2float(__nv_bfloat162 b) { return float(b.y); }

// ---- arithmetic and comparisons, for both 16-bit types ----------------------------------------
#define LLM_EMU_HALF_OPS(H, H2, R)                                                                             \
  inline H __hadd(H a, H b) { return H(float(a) + float(b)); }                                                 \
  inline H __hsub(H a, H b) { return H(float(a) - float(b)); }                                                 \
  inline H __hmul(H a, H b) { return H(float(a) * float(b)); }                                                 \
  inline H __hdiv(H a, H b) { return H(float(a) / float(b)); }                                                 \
  inline H __hfma(H a, H b, H c) { return H(std::fma(double(float(a)), double(float(b)), double(float(c)))); } \
  inline H __hneg(H a) { return H(R{static_cast<unsigned short>(a.__x ^ 0x8000u)}); }                          \
  inline H __habs(H a) { return H(R{static_cast<unsigned short>(a.__x & 0x7fffu)}); }                          \
  inline H __hmax(H a, H b) { return H(std::fmax(float(a), float(b))); }                                       \
  inline H __hmin(H a, H b) { return H(std::fmin(float(a), float(b))); }                                       \
  inline bool __heq(H a, H b) { return float(a) == float(b); }                                                 \
  inline bool __hne(H a, H b) { return float(a) != float(b); }                                                 \
  inline bool __hlt(H a, H b) { return float(a) < float(b); }                                                  \
  inline bool __hle(H a, H b) { return float(a) <= float(b); }                                                 \
  inline bool __hgt(H a, H b) { return float(a) > float(b); }                                                  \
  inline bool __hge(H a, H b) { return float(a) >= float(b); }                                                 \
  inline bool __hisnan(H a) { return std::isnan(float(a)); }                                                   \
  inline int __hisinf(H a) {                                                                                   \
    const float f = float(a);                                                                                  \
    return std::isinf(f) ? (f < 0 ? -1 : 1) : 0;                                                               \
  }                                                                                                            \
  inline H operator+(const H& a, const H& b) { return __hadd(a, b); }                                          \
  inline H operator-(const H& a, const H& b) { return __hsub(a, b); }                                          \
  inline H operator*(const H& a, const H& b) { return __hmul(a, b); }                                          \
  inline H operator/(const H& a, const H& b) { return __hdiv(a, b); }                                          \
  inline H operator-(const H& a) { return __hneg(a); }                                                         \
  inline H operator+(const H& a) { return a; }                                                                 \
  inline H& operator+=(H& a, const H& b) { return a = __hadd(a, b); }                                          \
  inline H& operator-=(H& a, const H& b) { return a = __hsub(a, b); }                                          \
  inline H& operator*=(H& a, const H& b) { return a = __hmul(a, b); }                                          \
  inline H& operator/=(H& a, const H& b) { return a = __hdiv(a, b); }                                          \
  inline bool operator==(const H& a, const H& b) { return __heq(a, b); }                                       \
  inline bool operator!=(const H& a, const H& b) { return __hne(a, b); }                                       \
  inline bool operator<(const H& a, const H& b) { return __hlt(a, b); }                                        \
  inline bool operator<=(const H& a, const H& b) { return __hle(a, b); }                                       \
  inline bool operator>(const H& a, const H& b) { return __hgt(a, b); }                                        \
  inline bool operator>=(const H& a, const H& b) { return __hge(a, b); }                                       \
  inline H2 __hadd2(H2 a, H2 b) { return H2(__hadd(a.x, b.x), __hadd(a.y, b.y)); }                             \
  inline H2 __hsub2(H2 a, H2 b) { return H2(__hsub(a.x, b.x), __hsub(a.y, b.y)); }                             \
  inline H2 __hmul2(H2 a, H2 b) { return H2(__hmul(a.x, b.x), __hmul(a.y, b.y)); }                             \
  inline H2 __h2div(H2 a, H2 b) { return H2(__hdiv(a.x, b.x), __hdiv(a.y, b.y)); }                             \
  inline H2 __hfma2(H2 a, H2 b, H2 c) { return H2(__hfma(a.x, b.x, c.x), __hfma(a.y, b.y, c.y)); }             \
  inline H2 __hneg2(H2 a) { return H2(__hneg(a.x), __hneg(a.y)); }                                             \
  inline H2 __habs2(H2 a) { return H2(__habs(a.x), __habs(a.y)); }                                             \
  inline H2 __hmax2(H2 a, H2 b) { return H2(__hmax(a.x, b.x), __hmax(a.y, b.y)); }                             \
  inline H2 __hmin2(H2 a, H2 b) { return H2(__hmin(a.x, b.x), __hmin(a.y, b.y)); }                             \
  inline H2 operator+(const H2& a, const H2& b) { return __hadd2(a, b); }                                      \
  inline H2 operator-(const H2& a, const H2& b) { return __hsub2(a, b); }                                      \
  inline H2 operator*(const H2& a, const H2& b) { return __hmul2(a, b); }                                      \
  inline H2 operator/(const H2& a, const H2& b) { return __h2div(a, b); }                                      \
  inline H2& operator+=(H2& a, const H2& b) { return a = __hadd2(a, b); }                                      \
  inline H2& operator*=(H2& a, const H2& b) { return a = __hmul2(a, b); }                                      \
  inline H hsqrt(H a) { return H(std::sqrt(float(a))); }                                                       \
  inline H hrsqrt(H a) { return H(1.0f / std::sqrt(float(a))); }                                               \
  inline H hrcp(H a) { return H(1.0f / float(a)); }                                                            \
  inline H hexp(H a) { return H(std::exp(float(a))); }                                                         \
  inline H hlog(H a) { return H(std::log(float(a))); }

LLM_EMU_HALF_OPS(__half, __half2, __half_raw)
LLM_EMU_HALF_OPS(__nv_bfloat16, __nv_bfloat162, __nv_bfloat16_raw)
#undef LLM_EMU_HALF_OPS

}  // namespace llm::emu
