// rope on the CUDA backend against the CPU op: in place on the q and k heads of a fused
// [B, T, Hq + 2 Hkv, D] buffer (the model's strided views), forward and inverse, a position
// offset (decode after a cache), each dtype, and the error messages.
#include <cmath>

#include "pair_util.h"

namespace llm::test {
namespace {

using CudaRope = CudaPairTest;

TEST_F(CudaRope, FusedHeadsForwardAndInverse) {
  const int64_t B = 2, T = 7, Hq = 3, Hkv = 1, P = 16;
  for (DType dt : float_dtypes()) {
    for (int64_t D : {2, 16, 34}) {
      const int64_t half = D / 2;
      std::vector<float> cs(static_cast<size_t>(P * half)), sn(cs.size());
      for (int64_t p = 0; p < P; ++p) {
        for (int64_t i = 0; i < half; ++i) {
          const double a = double(p) * std::pow(10000.0, -2.0 * double(i) / double(D));
          cs[size_t(p * half + i)] = float(std::cos(a));
          sn[size_t(p * half + i)] = float(std::sin(a));
        }
      }
      Pair cos = pair(DType::F32, {P, half}, cs), sin = pair(DType::F32, {P, half}, sn);
      Pair qkv = rand_pair(dt, {B, T, Hq + 2 * Hkv, D});
      for (bool inverse : {false, true}) {
        for (int64_t pos0 : {0, 5}) {
          const auto qk = [&](const Tensor& t) { return t.slice(2, 0, Hq + Hkv); };
          cpu.rope(qk(qkv.h.t()), cos.h, sin.h, pos0, inverse);
          cuda.rope(qk(qkv.d.t()), cos.d, sin.d, pos0, inverse);
          // Whole buffer: the v heads must be untouched.
          expect_same(qkv, tol_of(dt), cat("rope ", dtype_name(dt), " D ", D, " inverse ", inverse, " pos0 ", pos0));
        }
      }
    }
  }
}

TEST_F(CudaRope, BadInputs) {
  OwnedTensor x = dev.tensor(DType::F32, {1, 4, 2, 8}), odd = dev.tensor(DType::F32, {1, 4, 2, 7});
  OwnedTensor cos = dev.tensor(DType::F32, {6, 4}), sin = dev.tensor(DType::F32, {6, 4});
  OwnedTensor cos16 = dev.tensor(DType::F16, {6, 4});
  expect_error([&] { cuda.rope(x, cos, sin, 3, false); }, "rope: ", "exceed the rotary table of 6 positions");
  expect_error([&] { cuda.rope(odd, cos, sin, 0, false); }, "rope: ", "head_dim 7 must be even");
  expect_error([&] { cuda.rope(x, cos16, sin, 0, false); }, "rope: ", "cos");
  expect_error([&] { cuda.rope(x.t().view({4, 2, 8}), cos, sin, 0, false); }, "rope: ", "x must be [B, T, H, D]");
}

}  // namespace
}  // namespace llm::test
