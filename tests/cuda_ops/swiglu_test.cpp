// swiglu_forward / swiglu_backward on the CUDA backend against the CPU ops: each dtype, widths
// around the 8-element chunk, gate_up as a column block of a wider buffer (strided rows,
// unaligned) and dense (aligned, vector path), and the error messages.
#include "pair_util.h"

namespace llm::test {
namespace {

using CudaSwiglu = CudaPairTest;

TEST_F(CudaSwiglu, ForwardAndBackwardMatchCpu) {
  for (DType dt : float_dtypes()) {
    for (int64_t I : {1, 31, 64}) {
      for (int64_t pad : {0, 3}) {  // gate_up / dgate_up as columns [pad, pad + 2I) of [N, 2I + 2 pad]
        const int64_t N = 33, W = 2 * I + 2 * pad;
        Pair gu = rand_pair(dt, {N, W}, 2.0f);
        Pair out = rand_pair(dt, {N, I});
        const auto block = [&](const Tensor& t) { return t.slice(1, pad, pad + 2 * I); };
        cpu.swiglu_forward(block(gu.h.t()), out.h);
        cuda.swiglu_forward(block(gu.d.t()), out.d);
        const std::string what = cat(dtype_name(dt), " I ", I, " pad ", pad);
        expect_same(out, tol_of(dt), "swiglu_forward " + what);

        Pair dout = rand_pair(dt, {N, I});
        Pair dgu = rand_pair(dt, {N, W});
        cpu.swiglu_backward(dout.h, block(gu.h.t()), block(dgu.h.t()));
        cuda.swiglu_backward(dout.d, block(gu.d.t()), block(dgu.d.t()));
        expect_same(dgu, tol_of(dt), "swiglu_backward " + what);
      }
    }
  }
}

TEST_F(CudaSwiglu, MixedDtypes) {
  Pair gu = rand_pair(DType::BF16, {5, 46}, 2.0f), out = rand_pair(DType::F32, {5, 23});
  cpu.swiglu_forward(gu.h, out.h);
  cuda.swiglu_forward(gu.d, out.d);
  expect_same(out, 1e-5, "bf16 -> f32");
  Pair dout = rand_pair(DType::F32, {5, 23}), dgu = rand_pair(DType::F16, {5, 46});
  cpu.swiglu_backward(dout.h, gu.h, dgu.h);
  cuda.swiglu_backward(dout.d, gu.d, dgu.d);
  expect_same(dgu, tol_of(DType::F16), "backward into f16");
}

TEST_F(CudaSwiglu, BadInputs) {
  OwnedTensor gu = dev.tensor(DType::F32, {4, 7}), out = dev.tensor(DType::F32, {4, 3});
  OwnedTensor gu2 = dev.tensor(DType::F32, {4, 8}), out2 = dev.tensor(DType::F32, {4, 5});
  expect_error([&] { cuda.swiglu_forward(gu, out); }, "swiglu_forward: ", "gate_up must be [N, 2I]");
  expect_error([&] { cuda.swiglu_forward(gu2, out2); }, "swiglu_forward: ", "out");
  expect_error([&] { cuda.swiglu_backward(out2, gu2, gu2); }, "swiglu_backward: ", "dout");
  expect_error(
      [&] {
        cuda.swiglu_backward(dev.tensor(DType::F32, {4, 4}), gu2, gu);
      },
      "swiglu_backward: ", "differ in shape");
}

}  // namespace
}  // namespace llm::test
