// add / scale / dropout on the CUDA backend against the CPU ops: every dtype combination, sizes around the
// 8-element chunk and the 256-thread block, unaligned starts, out aliasing an input, errors.
#include "pair_util.h"

namespace llm::test {
namespace {

using CudaElementwise = CudaPairTest;

TEST_F(CudaElementwise, AddEveryDtypeCombination) {
  for (DType at : float_dtypes()) {
    for (DType bt : float_dtypes()) {
      for (DType ot : float_dtypes()) {
        for (int64_t n : {1, 33, 4099}) {
          Pair a = rand_pair(at, {n}), b = rand_pair(bt, {n}), out = rand_pair(ot, {n});
          cpu.add(a.h, b.h, out.h);
          cuda.add(a.d, b.d, out.d);
          expect_same(out, tol_of(ot),
                      cat("add ", dtype_name(at), "+", dtype_name(bt), "->", dtype_name(ot), " n ", n));
        }
      }
    }
  }
}

TEST_F(CudaElementwise, AddUnalignedAndInPlace) {
  for (DType dt : float_dtypes()) {
    Pair a = rand_pair(dt, {4100}), b = rand_pair(dt, {4100});
    // One element in: no 16-byte alignment, the scalar path.
    cpu.add(a.h.t().range(1, 4099), b.h.t().range(0, 4099), b.h.t().range(0, 4099));
    cuda.add(a.d.t().range(1, 4099), b.d.t().range(0, 4099), b.d.t().range(0, 4099));
    expect_same(b, tol_of(dt), cat("add unaligned, out = b, ", dtype_name(dt)));
    cpu.add(a.h, b.h, a.h);
    cuda.add(a.d, b.d, a.d);
    expect_same(a, tol_of(dt), cat("add out = a, ", dtype_name(dt)));
  }
}

TEST_F(CudaElementwise, Scale) {
  for (DType dt : float_dtypes()) {
    for (int64_t n : {1, 31, 33, 4099}) {
      for (int64_t off : {0, 1}) {
        Pair x = rand_pair(dt, {n + 1});
        cpu.scale(x.h.t().range(off, n), -0.37f);
        cuda.scale(x.d.t().range(off, n), -0.37f);
        expect_same(x, tol_of(dt), cat("scale ", dtype_name(dt), " n ", n, " offset ", off));
      }
    }
  }
}

TEST_F(CudaElementwise, DropoutTheCpusMask) {
  for (DType dt : float_dtypes()) {
    for (int64_t n : {1, 33, 4099}) {
      for (int64_t off : {0, 1}) {
        Pair x = rand_pair(dt, {n + 1});
        cpu.dropout(x.h.t().range(off, n), 0.25f, 977);
        cuda.dropout(x.d.t().range(off, n), 0.25f, 977);
        expect_same(x, tol_of(dt), cat("dropout ", dtype_name(dt), " n ", n, " offset ", off));
      }
    }
  }
}

TEST_F(CudaElementwise, BadInputs) {
  OwnedTensor a = dev.tensor(DType::F32, {4, 6}), b = dev.tensor(DType::F32, {4, 5}),
              i = dev.tensor(DType::I32, {4, 6});
  expect_error([&] { cuda.add(a, b, a); }, "add: ", "differ in shape");
  expect_error([&] { cuda.add(a, i, a); }, "add: ", "must be a contiguous float tensor");
  expect_error([&] { cuda.add(a.t().slice(1, 0, 5), b, b); }, "add: ", "must be a contiguous float tensor");
  expect_error([&] { cuda.scale(i, 2.0f); }, "scale: ", "must be a contiguous float tensor");
  HostTensor h(DType::F32, {4, 6});
  expect_error([&] { cuda.scale(h, 2.0f); }, "scale: ", "CPU tensor");
}

}  // namespace
}  // namespace llm::test
