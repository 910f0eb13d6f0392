// Ops of CudaBackend not written yet: each fails with a clear message. An op moves out of this
// file into its own src/backend/cuda/<op>.cpp (with kernels/<op>.cu) when it is implemented;
// this file disappears when every op is done.
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

// BEGIN matmul
void CudaBackend::matmul(const Tensor&, bool, const Tensor&, bool, const Tensor&, float, float, const Tensor*) {
  fail("matmul: not implemented on the CUDA backend yet");
}
// END matmul

// BEGIN bias_backward
void CudaBackend::bias_backward(const Tensor&, const Tensor&) {
  fail("bias_backward: not implemented on the CUDA backend yet");
}
// END bias_backward

}  // namespace llm::LLM_CUDA_NS
