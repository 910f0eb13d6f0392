// Storage types and the fp32 <-> f16 / bf16 conversions (round to nearest, ties to even).
// Every op computes in fp32; f16 and bf16 exist only as storage, converted on load and store.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llm {

enum class DType : uint8_t { F32, F16, BF16, I32, I8, U8 };

constexpr size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::I8: return 1;
    case DType::U8: return 1;
  }
  return 0;
}

constexpr bool is_float(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Lower-case names as configs spell them ("f32", "f16", "bf16", "i32", ...).
std::string_view dtype_name(DType t);
// Parses "fp32"/"f32"/"float32", "fp16"/"f16"/"float16", "bf16"/"bfloat16"; throws naming `what`.
DType parse_float_dtype(std::string_view s, std::string_view what);

// Storage-only 16-bit types: a bit pattern, no arithmetic.
struct f16 {
  uint16_t bits;
};
struct bf16 {
  uint16_t bits;
};

inline float f16_bits_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) {  // inf or nan; nan keeps its payload
    return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  }
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in fp32
    const float mag = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -mag : mag;
  }
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

// Shifts v right by s bits, rounding to nearest with ties to even.
inline uint32_t shift_right_rne(uint32_t v, uint32_t s) {
  const uint32_t half = 1u << (s - 1);
  const uint32_t rem = v & ((1u << s) - 1u);
  uint32_t q = v >> s;
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return q;
}

inline uint16_t f32_to_f16_bits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) {  // nan: stay quiet, keep the top payload bits
    return static_cast<uint16_t>(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
  }
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a >= 0x38800000u) {  // normal half: rebias the exponent and round the mantissa
    return static_cast<uint16_t>(sign | shift_right_rne(a - 0x38000000u, 13));
  }
  if (a < 0x33000000u) return sign;  // below 2^-25 (half of the smallest subnormal): zero
  // Subnormal half: the value in units of 2^-24, rounded. The carry out of the mantissa lands
  // in the exponent field, which is the correct smallest normal.
  const uint32_t e = a >> 23;
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  return static_cast<uint16_t>(sign | shift_right_rne(m, 126u - e));
}

inline float bf16_bits_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

inline uint16_t f32_to_bf16_bits(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float to_f32(float v) { return v; }
inline float to_f32(f16 v) { return f16_bits_to_f32(v.bits); }
inline float to_f32(bf16 v) { return bf16_bits_to_f32(v.bits); }

template <class T>
inline T from_f32(float v);
template <>
inline float from_f32<float>(float v) {
  return v;
}
template <>
inline f16 from_f32<f16>(float v) {
  return f16{f32_to_f16_bits(v)};
}
template <>
inline bf16 from_f32<bf16>(float v) {
  return bf16{f32_to_bf16_bits(v)};
}

// Rounds v through the storage type: what a value becomes when stored as T and read back.
template <class T>
inline float round_to(float v) {
  return to_f32(from_f32<T>(v));
}

// Calls fn.template operator()<T>() with T = float, f16 or bf16 for a float dtype.
template <class Fn>
decltype(auto) dispatch_float(DType t, std::string_view op, Fn&& fn);

}  // namespace llm

#include "llm/error.h"

namespace llm {
template <class Fn>
decltype(auto) dispatch_float(DType t, std::string_view op, Fn&& fn) {
  switch (t) {
    case DType::F32: return fn.template operator()<float>();
    case DType::F16: return fn.template operator()<f16>();
    case DType::BF16: return fn.template operator()<bf16>();
    default: break;
  }
  fail(op, ": expected a float dtype (f32, f16, bf16), got ", dtype_name(t));
}
}  // namespace llm
