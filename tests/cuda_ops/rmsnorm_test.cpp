// rmsnorm_forward / add_rmsnorm_forward / rmsnorm_backward on the CUDA backend against the CPU
// ops: each dtype, widths that are not multiples of the 8-element chunk or the block (31, 4099:
// several chunks per thread), rows strided (a column block of a wider buffer), s aliasing a, dx
// accumulated or overwritten, dw accumulated over several 128-row groups, the fp16 model's f32
// residual with half outputs, and errors.
#include <cmath>
#include <cstring>

#include "pair_util.h"

namespace llm::test {
namespace {

using CudaRmsnorm = CudaPairTest;

TEST_F(CudaRmsnorm, ForwardMatchesCpu) {
  for (DType dt : float_dtypes()) {
    for (DType wt : {dt, DType::F32}) {
      for (auto [N, C] : {std::pair<int64_t, int64_t>{1, 31}, {33, 64}, {5, 4099}}) {
        Pair x = rand_pair(dt, {N, C}, 2.0f), w = rand_pair(wt, {C}), y = rand_pair(dt, {N, C});
        Pair rstd = rand_pair(DType::F32, {N});
        cpu.rmsnorm_forward(x.h, w.h, 1e-6f, y.h, rstd.h);
        cuda.rmsnorm_forward(x.d, w.d, 1e-6f, y.d, rstd.d);
        const std::string what = cat(dtype_name(dt), " w ", dtype_name(wt), " [", N, ", ", C, "]");
        expect_same(y, tol_of(dt), "y " + what);
        expect_same(rstd, 1e-5, "rstd " + what);
      }
    }
  }
}

TEST_F(CudaRmsnorm, StridedRows) {
  // x and y as columns [3, 3 + C) of [N, C + 5] buffers: unaligned rows, the scalar path.
  for (DType dt : float_dtypes()) {
    const int64_t N = 9, C = 40;
    Pair x = rand_pair(dt, {N, C + 5}), w = rand_pair(dt, {C}), y = rand_pair(dt, {N, C + 5});
    Pair rstd = rand_pair(DType::F32, {N});
    const auto blk = [&](const Tensor& t) { return t.slice(1, 3, 3 + C); };
    cpu.rmsnorm_forward(blk(x.h.t()), w.h, 1e-5f, blk(y.h.t()), rstd.h);
    cuda.rmsnorm_forward(blk(x.d.t()), w.d, 1e-5f, blk(y.d.t()), rstd.d);
    expect_same(y, tol_of(dt), cat("strided y ", dtype_name(dt)));
    expect_same(rstd, 1e-5, cat("strided rstd ", dtype_name(dt)));
  }
}

TEST_F(CudaRmsnorm, AddForwardMatchesCpu) {
  for (DType dt : float_dtypes()) {
    for (bool alias : {false, true}) {
      const int64_t N = 17, C = 100;
      Pair a = rand_pair(dt, {N, C}), b = rand_pair(dt, {N, C}), w = rand_pair(dt, {C});
      Pair s = rand_pair(dt, {N, C}), y = rand_pair(dt, {N, C}), rstd = rand_pair(DType::F32, {N});
      const Pair& sp = alias ? a : s;
      cpu.add_rmsnorm_forward(a.h, b.h, w.h, 1e-6f, sp.h, y.h, rstd.h);
      cuda.add_rmsnorm_forward(a.d, b.d, w.d, 1e-6f, sp.d, y.d, rstd.d);
      const std::string what = cat(dtype_name(dt), alias ? " s = a" : "");
      expect_same(sp, tol_of(dt), "s " + what);
      expect_same(y, tol_of(dt), "y " + what);
      expect_same(rstd, 1e-5, "rstd " + what);
    }
  }
}

TEST_F(CudaRmsnorm, BackwardMatchesCpu) {
  for (DType dt : float_dtypes()) {
    for (bool accumulate : {false, true}) {
      for (auto [N, C] : {std::pair<int64_t, int64_t>{1, 31}, {300, 33}, {4, 4099}}) {
        Pair x = rand_pair(dt, {N, C}), dy = rand_pair(dt, {N, C}), w = rand_pair(dt, {C});
        Pair rstd = rand_pair(DType::F32, {N}), y = rand_pair(dt, {N, C});
        cpu.rmsnorm_forward(x.h, w.h, 1e-6f, y.h, rstd.h);  // a consistent rstd on both sides
        cuda.upload(rstd.d, rstd.h.t().data());
        Pair dx = rand_pair(dt, {N, C}), dw = rand_pair(DType::F32, {C});
        cpu.rmsnorm_backward(dy.h, x.h, w.h, rstd.h, dx.h, dw.h, accumulate);
        cuda.rmsnorm_backward(dy.d, x.d, w.d, rstd.d, dx.d, dw.d, accumulate);
        const std::string what = cat(dtype_name(dt), " [", N, ", ", C, "] accumulate ", accumulate);
        expect_same(dx, tol_of(dt), "dx " + what);
        expect_same(dw, 1e-5, "dw " + what);
      }
    }
  }
}

// The fp16 model's residual layout (residual_dtype): the residual x, the projection b added into
// it and their sum s in f32 with Qwen-like values beyond f16's range in two channels, the norm
// output y and the gradients dy, dx in the compute dtype.
TEST_F(CudaRmsnorm, F32ResidualWithHalfOutputsMatchesCpu) {
  const int64_t N = 6, C = 72;
  auto massive = [&](float scale) {
    std::vector<float> v = randn(g, static_cast<size_t>(N * C), 1.0f);
    for (int64_t n = 0; n < N; n += 2) v[size_t(n * C + 3)] = 2e5f * scale, v[size_t(n * C + 40)] = -1.4e5f * scale;
    return v;
  };
  for (DType dt : {DType::F16, DType::BF16}) {
    for (DType bt : {DType::F32, dt}) {
      const std::string what = cat("compute ", dtype_name(dt), ", b ", dtype_name(bt));
      Pair x = pair(DType::F32, {N, C}, massive(1.0f)), w = rand_pair(dt, {C}), y = rand_pair(dt, {N, C});
      Pair rstd = rand_pair(DType::F32, {N});
      cpu.rmsnorm_forward(x.h, w.h, 1e-6f, y.h, rstd.h);
      cuda.rmsnorm_forward(x.d, w.d, 1e-6f, y.d, rstd.d);
      expect_same(y, tol_of(dt), "y " + what);
      expect_same(rstd, 1e-5, "rstd " + what);

      Pair b = pair(bt, {N, C}, massive(bt == DType::F32 ? 0.5f : 0.0f)), s = rand_pair(DType::F32, {N, C});
      cpu.add_rmsnorm_forward(x.h, b.h, w.h, 1e-6f, s.h, y.h, rstd.h);
      cuda.add_rmsnorm_forward(x.d, b.d, w.d, 1e-6f, s.d, y.d, rstd.d);
      expect_same(s, 1e-6, "s " + what);
      expect_same(y, tol_of(dt), "add y " + what);
      expect_same(rstd, 1e-5, "add rstd " + what);
      for (float v : y.h.values()) ASSERT_TRUE(std::isfinite(v)) << what;

      Pair dy = rand_pair(dt, {N, C}), dx = rand_pair(dt, {N, C}), dw = rand_pair(DType::F32, {C});
      cpu.rmsnorm_backward(dy.h, s.h, w.h, rstd.h, dx.h, dw.h, true);
      cuda.rmsnorm_backward(dy.d, s.d, w.d, rstd.d, dx.d, dw.d, true);
      expect_same(dx, tol_of(dt), "dx " + what);
      expect_same(dw, 1e-5, "dw " + what);
    }
  }
}

TEST_F(CudaRmsnorm, BackwardIsDeterministic) {
  const int64_t N = 260, C = 40;
  Pair x = rand_pair(DType::BF16, {N, C}), dy = rand_pair(DType::BF16, {N, C}), w = rand_pair(DType::BF16, {C});
  Pair rstd = rand_pair(DType::F32, {N}), dx = rand_pair(DType::BF16, {N, C});
  OwnedTensor dw1 = dev.zeros(DType::F32, {C}), dw2 = dev.zeros(DType::F32, {C});
  cuda.rmsnorm_backward(dy.d, x.d, w.d, rstd.d, dx.d, dw1, false);
  cuda.rmsnorm_backward(dy.d, x.d, w.d, rstd.d, dx.d, dw2, false);
  const std::vector<float> a = values(dw1), b = values(dw2);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
}

TEST_F(CudaRmsnorm, BadInputs) {
  OwnedTensor x = dev.tensor(DType::F32, {4, 8}), w = dev.tensor(DType::F32, {8}), w7 = dev.tensor(DType::F32, {7});
  OwnedTensor rstd = dev.tensor(DType::F32, {4}), rstd16 = dev.tensor(DType::F16, {4}),
              y = dev.tensor(DType::F32, {4, 8});
  OwnedTensor dw16 = dev.tensor(DType::F16, {8});
  expect_error([&] { cuda.rmsnorm_forward(x, w7, 1e-6f, y, rstd); }, "rmsnorm_forward: ", "w");
  expect_error([&] { cuda.rmsnorm_forward(x, w, 1e-6f, y, rstd16); }, "rmsnorm_forward: ", "rstd");
  expect_error([&] { cuda.add_rmsnorm_forward(x, y.t().slice(1, 0, 7), w, 1e-6f, x, y, rstd); },
               "add_rmsnorm_forward: ", "differ in shape");
  expect_error([&] { cuda.rmsnorm_backward(y, x, w, rstd, y, dw16, false); }, "rmsnorm_backward: ", "dw");
}

}  // namespace
}  // namespace llm::test
