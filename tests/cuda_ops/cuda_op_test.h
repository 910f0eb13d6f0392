// Tests of CudaBackend ops against CpuBackend: the same op on the same fresh random inputs,
// results compared (fp32 1e-5 relative, f16/bf16 1e-2 unless a test justifies tighter). Built
// twice: test_cuda_ops under the CPU emulator (llm::cuda_emu, every CI run) and, in a CUDA build,
// test_cuda_ops_gpu against a real device (llm::cuda, label gpu), whose main skips every test
// with a message when there is no device.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "host_tensor.h"
#include "llm/arena.h"
#include "test_util.h"

namespace llm::test {

class CudaOpTest : public ::testing::Test {
 protected:
  CudaOpTest() : cuda(0), cpu(2), dev(cuda, "test"), g(rng()) {}

  // A device tensor holding the host tensor's values (same dtype and shape).
  OwnedTensor to_device(const HostTensor& h) {
    const Tensor& t = h.t();
    OwnedTensor d = make(t.dtype(), t);
    cuda.upload(d.t(), t.data());
    return d;
  }
  // A device tensor shaped like `like`, contents unspecified.
  OwnedTensor make(DType dt, const Tensor& like) {
    switch (like.ndim()) {
      case 1: return dev.tensor(dt, {like.size(0)});
      case 2: return dev.tensor(dt, {like.size(0), like.size(1)});
      case 3: return dev.tensor(dt, {like.size(0), like.size(1), like.size(2)});
      default: return dev.tensor(dt, {like.size(0), like.size(1), like.size(2), like.size(3)});
    }
  }
  // The device tensor's values as floats (any float dtype) or the raw i32 ids.
  std::vector<float> values(const Tensor& d) {
    HostTensor h(d.dtype(), {d.numel()});
    cuda.download(d, h.t().data());
    return h.values();
  }

  LLM_CUDA_NS::CudaBackend cuda;
  CpuBackend cpu;
  Arena dev;
  std::mt19937_64 g;
};

// Elementwise |got - want| <= tol * max(|want|, rms(want), floor).
inline void expect_near_rel(const std::vector<float>& got, const std::vector<float>& want, double tol, const char* what,
                            double floor = 1e-6) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double ss = 0;
  for (float w : want) ss += double(w) * w;
  const double rms = want.empty() ? 0 : std::sqrt(ss / double(want.size()));
  const RelErr e = max_rel_err(got, want, std::max(rms, floor));
  EXPECT_LE(e.err, tol) << what << ": worst at " << e.at << ": got " << got[e.at] << ", want " << want[e.at];
}

// For results of long f16/bf16 reductions (attention forward and backward, the output layer's
// gradients): ||got - want|| / ||want|| <= 1e-2 for the whole tensor, and every element within
// 5e-2 of the rms. Both sides round to 8 (bf16) or 11 (f16) bits, and the tensor-core kernels
// round the attention probabilities (and dS) to the input type before the second product, as
// FlashAttention does, so single elements near the rms legitimately differ by several ulps (4 bf16
// ulps at 0.08 is 1e-2 of an rms of 0.2). A wrong index or a missing term moves the norm error far
// past 1e-2. `floor` is the magnitude below which differences count as absolute (a gradient that
// is exactly 0, like dq of a single token, compares as |got| <= 1e-2 * floor per element).
inline void expect_near_half(const std::vector<float>& got, const std::vector<float>& want, const char* what,
                             double floor = 1e-3, double element_tol = 5e-2) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double diff = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    ref += double(want[i]) * want[i];
  }
  const double scale = std::max(std::sqrt(ref), floor * std::sqrt(double(want.size())));
  EXPECT_LE(std::sqrt(diff) / scale, 1e-2) << what << ": norm-relative error";
  expect_near_rel(got, want, element_tol, what, floor);
}

}  // namespace llm::test
