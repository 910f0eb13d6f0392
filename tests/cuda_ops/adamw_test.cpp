// adamw on the CUDA backend against the CPU op: several segments with their own weight decay,
// gaps between them (untouched), unaligned offsets, segments longer than a 4096-element chunk, a
// compute copy in each dtype (or none, or the param buffer itself), several steps, and errors.
// The kernel uses correctly rounded intrinsics in the CPU's order, so the results agree to the
// last bit in practice; the check allows 1e-6.
#include "pair_util.h"

namespace llm::test {
namespace {

using CudaAdamw = CudaPairTest;

TEST_F(CudaAdamw, SegmentsMatchCpu) {
  const int64_t P = 13000;
  const std::vector<AdamWSegment> segs = {{3, 4099, 0.1f}, {4110, 5000, 0.0f}, {9200, 1, 0.05f}, {9300, 3700, 0.1f}};
  for (DType ct : float_dtypes()) {
    for (int mode = 0; mode < 3; ++mode) {  // 0: compute copy in ct, 1: none, 2: compute == param
      Pair p = rand_pair(DType::F32, {P}, 0.02f), grad = rand_pair(DType::F32, {P}, 3.0f);
      Pair m = rand_pair(DType::F32, {P}, 0.1f), v = pair(DType::F32, {P}, uniform(g, size_t(P), 0.0f, 0.01f));
      Pair compute = rand_pair(ct, {P});
      AdamWHyper hp;
      hp.lr = 3e-4f;
      hp.grad_scale = 0.125f;
      for (int64_t step = 1; step <= 3; ++step) {
        hp.step = step;
        const Tensor hc = mode == 0 ? compute.h.t() : (mode == 2 ? p.h.t() : Tensor());
        const Tensor dc = mode == 0 ? compute.d.t() : (mode == 2 ? p.d.t() : Tensor());
        cpu.adamw(p.h, grad.h, m.h, v.h, hc, segs, hp);
        cuda.adamw(p.d, grad.d, m.d, v.d, dc, segs, hp);
      }
      const std::string what = cat("adamw compute ", dtype_name(ct), " mode ", mode);
      expect_same(p, 1e-6, what + " param");
      expect_same(m, 1e-6, what + " m");
      expect_same(v, 1e-6, what + " v");
      expect_same(compute, mode == 0 ? tol_of(ct) : 0.0, what + " compute");
    }
  }
}

TEST_F(CudaAdamw, BadInputs) {
  OwnedTensor p = dev.tensor(DType::F32, {100}), g16 = dev.tensor(DType::F16, {100}),
              small = dev.tensor(DType::F32, {99});
  OwnedTensor c = dev.tensor(DType::I32, {100});
  const std::vector<AdamWSegment> ok = {{0, 100, 0.1f}}, outside = {{50, 51, 0.1f}};
  AdamWHyper hp;
  expect_error([&] { cuda.adamw(p, g16, p, p, Tensor(), ok, hp); }, "adamw: ", "grad");
  expect_error([&] { cuda.adamw(p, p, small, p, Tensor(), ok, hp); }, "adamw: ", "m");
  expect_error([&] { cuda.adamw(p, p, p, p, c, ok, hp); }, "adamw: ", "compute");
  expect_error([&] { cuda.adamw(p, p, p, p, Tensor(), outside, hp); }, "adamw: ", "segment [50, 101) is outside");
  hp.step = 0;
  expect_error([&] { cuda.adamw(p, p, p, p, Tensor(), ok, hp); }, "adamw: ", "step must be >= 1");
}

}  // namespace
}  // namespace llm::test
