// The emulator's __half / __nv_bfloat16 against llm/dtype.h (two independent implementations of
// round-to-nearest-even), over every 16-bit pattern and a dense sweep of floats. Emulator only.
#include <bit>
#include <cmath>
#include <cstdint>

#include "cuda_test_util.h"
#include "llm/dtype.h"

namespace llm::test {
namespace {

TEST(CudaEmuHalf, EveryHalfAndBfloat16WidensExactly) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    const float h = __half2float(__ushort_as_half(bits));
    const float bf = __bfloat162float(__ushort_as_bfloat16(bits));
    ASSERT_EQ(std::bit_cast<uint32_t>(h), std::bit_cast<uint32_t>(f16_bits_to_f32(bits))) << b;
    ASSERT_EQ(std::bit_cast<uint32_t>(bf), std::bit_cast<uint32_t>(bf16_bits_to_f32(bits))) << b;
  }
}

TEST(CudaEmuHalf, NarrowingRoundsToNearestEvenLikeTheHardware) {
  // Every 251st float bit pattern (all exponents, many mantissas), plus every 16-bit midpoint.
  auto check = [](uint32_t x) {
    const float f = std::bit_cast<float>(x);
    if (std::isnan(f)) {
      ASSERT_EQ(__half_as_ushort(__float2half_rn(f)), 0x7fffu);  // canonical NaN, as cvt.rn.f16.f32
      ASSERT_EQ(__bfloat16_as_ushort(__float2bfloat16_rn(f)), 0x7fffu);
      return;
    }
    ASSERT_EQ(__half_as_ushort(__float2half_rn(f)), f32_to_f16_bits(f)) << f;
    ASSERT_EQ(__bfloat16_as_ushort(__float2bfloat16_rn(f)), f32_to_bf16_bits(f)) << f;
  };
  for (uint64_t x = 0; x < (uint64_t{1} << 32); x += 251) check(static_cast<uint32_t>(x));
  for (uint32_t b = 0; b < 65535; ++b) {  // halfway between neighbours, and just around it
    const float lo = f16_bits_to_f32(static_cast<uint16_t>(b)), hi = f16_bits_to_f32(static_cast<uint16_t>(b + 1));
    if (std::isfinite(lo) && std::isfinite(hi)) {
      const float mid = lo + (hi - lo) / 2;
      check(std::bit_cast<uint32_t>(mid));
      check(std::bit_cast<uint32_t>(mid) + 1);
      check(std::bit_cast<uint32_t>(mid) - 1);
    }
    check(static_cast<uint32_t>(b) << 16 | 0x8000u);  // bf16 ties
  }
}

TEST(CudaEmuHalf, DoublesRoundOnceNotTwice) {
  // 1 + 2^-11 is the tie between halves 1 and 1 + 2^-10; a hair above it must round up, although
  // going through float would land exactly on the tie and round to even (down).
  const double above_tie = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  EXPECT_EQ(__half_as_ushort(__double2half(above_tie)), 0x3c01u);
  EXPECT_EQ(__half_as_ushort(__float2half_rn(static_cast<float>(above_tie))), 0x3c00u);
  const double bf_above_tie = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40);
  EXPECT_EQ(__bfloat16_as_ushort(__double2bfloat16(bf_above_tie)), 0x3f81u);
  EXPECT_EQ(__half_as_ushort(__double2half(1e6)), 0x7c00u);  // overflow to infinity
}

TEST(CudaEmuHalf, ArithmeticRoundsOnce) {
  const __half a = __float2half_rn(1.0f), b = __float2half_rn(0.0004882812f);  // 2^-11: a tie when added
  EXPECT_EQ(__half_as_ushort(__hadd(a, b)), 0x3c00u);
  EXPECT_EQ(__half_as_ushort(__hadd(__hadd(a, b), __hadd(b, b))), 0x3c01u);
  const __nv_bfloat16 x = __float2bfloat16_rn(3.0f), y = __float2bfloat16_rn(7.0f);
  EXPECT_EQ(__bfloat162float(__hmul(x, y)), 21.0f);
  EXPECT_EQ(__bfloat162float(x * y + x), 24.0f);
  const float2 f = __half22float2(__floats2half2_rn(0.5f, -2.0f));
  EXPECT_EQ(f.x, 0.5f);
  EXPECT_EQ(f.y, -2.0f);
  EXPECT_EQ(__low2float(__floats2bfloat162_rn(1.5f, 2.5f)), 1.5f);
  EXPECT_EQ(__high2float(__floats2bfloat162_rn(1.5f, 2.5f)), 2.5f);
  EXPECT_EQ(__half2float(__hfma(__float2half_rn(2.0f), __float2half_rn(3.0f), __float2half_rn(1.0f))), 7.0f);
}

}  // namespace
}  // namespace llm::test
