// Tests of CudaBackend ops against CpuBackend: the same op on the same fresh random inputs,
// results compared (fp32 1e-5 relative, f16/bf16 1e-2 unless a test justifies tighter). Built
// twice: test_cuda_ops under the CPU emulator (llm::cuda_emu, every CI run) and, in a CUDA build,
// test_cuda_ops_gpu against a real device (llm::cuda, label gpu), whose main skips every test
// with a message when there is no device.
#pragma once

#include <gtest/gtest.h>

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
inline void expect_near_rel(const std::vector<float>& got, const std::vector<float>& want, double tol,
                            const char* what, double floor = 1e-6) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double ss = 0;
  for (float w : want) ss += double(w) * w;
  const double rms = want.empty() ? 0 : std::sqrt(ss / double(want.size()));
  const RelErr e = max_rel_err(got, want, std::max(rms, floor));
  EXPECT_LE(e.err, tol) << what << ": worst at " << e.at << ": got " << got[e.at] << ", want " << want[e.at];
}

}  // namespace llm::test
