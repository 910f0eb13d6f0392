// matmul (cuBLASLt; under the emulator, its CPU implementation of the same column-major
// semantics) and bias_backward on the CUDA backend against the CPU ops: every transpose pair,
// odd sizes, alpha / beta, the bias epilogue, f32 / f16 / bf16 operands into f32 or the operand
// dtype, rows strided by a fused buffer (unaligned), single-row and K = 0 products, the mixed
// cases staged through the workspace, repeated calls through the plan cache, and errors.
#include <optional>

#include "pair_util.h"

namespace llm::test {
namespace {

using CudaMatmul = CudaPairTest;

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  DType at, bt, ct;
  float alpha, beta;
  std::optional<DType> bias;
  int64_t a_pad = 0;     // a is columns [a_pad, a_pad + cols) of a wider buffer
  int64_t bias_off = 0;  // bias starts this many elements into its buffer
};

std::string name_of(const Case& c) {
  return cat("ta ", c.ta, " tb ", c.tb, " M ", c.M, " N ", c.N, " K ", c.K, " ", dtype_name(c.at), "x",
             dtype_name(c.bt), "->", dtype_name(c.ct), " alpha ", c.alpha, " beta ", c.beta, " bias ",
             c.bias ? dtype_name(*c.bias) : "none", " a_pad ", c.a_pad, " bias_off ", c.bias_off);
}

class CudaMatmulCases : public CudaMatmul {
 protected:
  void run(const Case& c) {
    const int64_t ar = c.ta ? c.K : c.M, ac = c.ta ? c.M : c.K;
    const int64_t br = c.tb ? c.N : c.K, bc = c.tb ? c.K : c.N;
    Pair a = rand_pair(c.at, {ar, ac + 2 * c.a_pad}), b = rand_pair(c.bt, {br, bc}), out = rand_pair(c.ct, {c.M, c.N});
    Pair bias = rand_pair(c.bias.value_or(DType::F32), {c.N + c.bias_off});
    const auto av = [&](const Tensor& t) { return t.slice(1, c.a_pad, c.a_pad + ac); };
    const auto bv = [&](const Tensor& t) { return t.range(c.bias_off, c.N); };
    const Tensor hb = bv(bias.h.t()), db = bv(bias.d.t());
    for (int rep = 0; rep < 2; ++rep) {  // the second call reuses the cached plan
      cpu.matmul(av(a.h.t()), c.ta, b.h, c.tb, out.h, c.alpha, c.beta, c.bias ? &hb : nullptr);
      cuda.matmul(av(a.d.t()), c.ta, b.d, c.tb, out.d, c.alpha, c.beta, c.bias ? &db : nullptr);
      const bool half_in = c.at != DType::F32 || c.bt != DType::F32;
      // fp32 sums of K products in different orders; the operands are exact in fp32.
      const double tol = c.ct == DType::F32 ? (half_in ? 2e-5 : 1e-5) : tol_of(c.ct);
      expect_same(out, tol, name_of(c) + cat(" call ", rep));
    }
  }
};

TEST_F(CudaMatmulCases, EveryTransposeF32) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      run({ta, tb, 33, 31, 17, DType::F32, DType::F32, DType::F32, 1.0f, 0.0f, std::nullopt});
      run({ta, tb, 9, 40, 33, DType::F32, DType::F32, DType::F32, 0.5f, 1.25f, DType::F32});
    }
  }
}

TEST_F(CudaMatmulCases, HalfOperands) {
  for (DType dt : {DType::F16, DType::BF16}) {
    // The forward linear: x [N, C] @ W^T with a bias, x a column block of a fused buffer.
    run({false, true, 33, 24, 40, dt, dt, dt, 1.0f, 0.0f, dt, 3});
    run({false, true, 16, 24, 32, dt, dt, dt, 1.0f, 0.0f, dt, 0});
    // The input gradient: dy [N, O] @ W [O, C].
    run({false, false, 33, 17, 24, dt, dt, dt, 1.0f, 0.0f, std::nullopt});
    // The weight gradient: dW [O, C] += dy^T x, into f32 grads.
    run({true, false, 24, 17, 33, dt, dt, DType::F32, 1.0f, 1.0f, std::nullopt});
    // Both transposed, f32 out, bias f32.
    run({true, true, 7, 9, 11, dt, dt, DType::F32, 0.75f, 0.5f, DType::F32});
  }
}

TEST_F(CudaMatmulCases, SingleRowAndEmptyK) {
  run({false, true, 1, 37, 64, DType::BF16, DType::BF16, DType::F32, 1.0f, 0.0f, std::nullopt});
  run({false, true, 1, 37, 64, DType::F32, DType::F32, DType::F32, 1.0f, 0.0f, DType::F32});
  run({false, true, 5, 7, 0, DType::F32, DType::F32, DType::F32, 1.0f, 0.5f, DType::F32});
  run({false, false, 5, 7, 0, DType::BF16, DType::BF16, DType::BF16, 1.0f, 0.0f, std::nullopt});
}

TEST_F(CudaMatmulCases, StagedMixedTypes) {
  // Operands of different dtypes: widened to f32 first.
  run({false, true, 9, 13, 21, DType::F32, DType::BF16, DType::F32, 1.0f, 0.0f, DType::BF16});
  run({true, false, 9, 13, 21, DType::F16, DType::BF16, DType::BF16, 1.0f, 0.3f, std::nullopt});
  // f32 operands into a half c, and bf16 operands into f16 c: through an f32 scratch.
  run({false, false, 9, 13, 21, DType::F32, DType::F32, DType::BF16, 1.0f, 0.7f, DType::F32});
  run({false, true, 9, 13, 21, DType::BF16, DType::BF16, DType::F16, 1.0f, 0.0f, DType::BF16});
  // A bias of another dtype than c, and one not 16-byte aligned.
  run({false, true, 9, 13, 21, DType::BF16, DType::BF16, DType::BF16, 1.0f, 0.0f, DType::F32});
  run({false, true, 9, 13, 21, DType::F32, DType::F32, DType::F32, 1.0f, 0.0f, DType::F32, 0, 1});
}

using CudaBiasBackward = CudaPairTest;

TEST_F(CudaBiasBackward, MatchesCpu) {
  for (DType dt : float_dtypes()) {
    for (auto [N, C] : {std::pair<int64_t, int64_t>{1, 31}, {33, 65}, {300, 9}}) {
      for (int64_t pad : {0, 1}) {
        Pair dy = rand_pair(dt, {N, C + pad}), db = rand_pair(DType::F32, {C});
        cpu.bias_backward(dy.h.t().slice(1, pad, pad + C), db.h);
        cuda.bias_backward(dy.d.t().slice(1, pad, pad + C), db.d);
        expect_same(db, 1e-5, cat("bias_backward ", dtype_name(dt), " [", N, ", ", C, "] pad ", pad));
      }
    }
  }
}

TEST_F(CudaMatmul, BadInputs) {
  OwnedTensor a = dev.tensor(DType::F32, {4, 6}), b = dev.tensor(DType::F32, {5, 6}),
              c = dev.tensor(DType::F32, {4, 5});
  OwnedTensor bias = dev.tensor(DType::F32, {4}), db16 = dev.tensor(DType::F16, {6});
  expect_error([&] { cuda.matmul(a, false, b, false, c, 1, 0, nullptr); }, "matmul: ", "inner dimensions differ");
  expect_error([&] { cuda.matmul(a, false, b, true, b, 1, 0, nullptr); }, "matmul: ", "c");
  expect_error([&] { cuda.matmul(a, false, b, true, c, 1, 0, &bias.t()); }, "matmul: ", "bias");
  expect_error([&] { cuda.matmul(a.t().view({24}), false, b, true, c, 1, 0, nullptr); }, "matmul: ", "2-D");
  HostTensor h(DType::F32, {4, 6});
  expect_error([&] { cuda.matmul(h, false, b, true, c, 1, 0, nullptr); }, "matmul: ", "CPU tensor");
  expect_error([&] { cuda.bias_backward(a, db16); }, "bias_backward: ", "db");
}

}  // namespace
}  // namespace llm::test
