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

// BEGIN cross_entropy
void CudaBackend::cross_entropy(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, float) {
  fail("cross_entropy: not implemented on the CUDA backend yet");
}
// END cross_entropy

// BEGIN quantize
void CudaBackend::quantize(const Tensor&, const QuantizedMatrix&) {
  fail("quantize: not implemented on the CUDA backend yet");
}
// END quantize

// BEGIN quant_matmul
void CudaBackend::quant_matmul(const Tensor&, const QuantizedMatrix&, const Tensor&, const Tensor*) {
  fail("quant_matmul: not implemented on the CUDA backend yet");
}
// END quant_matmul

// BEGIN quant_embedding
void CudaBackend::quant_embedding(const Tensor&, const QuantizedMatrix&, const Tensor&) {
  fail("quant_embedding: not implemented on the CUDA backend yet");
}
// END quant_embedding

}  // namespace llm::LLM_CUDA_NS
