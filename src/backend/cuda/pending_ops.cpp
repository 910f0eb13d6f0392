// Ops of CudaBackend not written yet: each fails with a clear message. An op moves out of this
// file into its own src/backend/cuda/<op>.cpp (with kernels/<op>.cu) when it is implemented;
// this file disappears when every op is done.
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

// BEGIN copy
void CudaBackend::copy(const Tensor&, const Tensor&) {
  fail("copy: not implemented on the CUDA backend yet");
}
// END copy

// BEGIN zero
void CudaBackend::zero(const Tensor&) {
  fail("zero: not implemented on the CUDA backend yet");
}
// END zero

// BEGIN fill
void CudaBackend::fill(const Tensor&, float) {
  fail("fill: not implemented on the CUDA backend yet");
}
// END fill

// BEGIN embedding_forward
void CudaBackend::embedding_forward(const Tensor&, const Tensor&, const Tensor&) {
  fail("embedding_forward: not implemented on the CUDA backend yet");
}
// END embedding_forward

// BEGIN embedding_backward
void CudaBackend::embedding_backward(const Tensor&, const Tensor&, const Tensor&) {
  fail("embedding_backward: not implemented on the CUDA backend yet");
}
// END embedding_backward

// BEGIN rmsnorm_forward
void CudaBackend::rmsnorm_forward(const Tensor&, const Tensor&, float, const Tensor&, const Tensor&) {
  fail("rmsnorm_forward: not implemented on the CUDA backend yet");
}
// END rmsnorm_forward

// BEGIN add_rmsnorm_forward
void CudaBackend::add_rmsnorm_forward(const Tensor&, const Tensor&, const Tensor&, float, const Tensor&, const Tensor&, const Tensor&) {
  fail("add_rmsnorm_forward: not implemented on the CUDA backend yet");
}
// END add_rmsnorm_forward

// BEGIN rmsnorm_backward
void CudaBackend::rmsnorm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, bool) {
  fail("rmsnorm_backward: not implemented on the CUDA backend yet");
}
// END rmsnorm_backward

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

// BEGIN rope
void CudaBackend::rope(const Tensor&, const Tensor&, const Tensor&, int64_t, bool) {
  fail("rope: not implemented on the CUDA backend yet");
}
// END rope

// BEGIN attention_forward
void CudaBackend::attention_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  fail("attention_forward: not implemented on the CUDA backend yet");
}
// END attention_forward

// BEGIN attention_backward
void CudaBackend::attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
  fail("attention_backward: not implemented on the CUDA backend yet");
}
// END attention_backward

// BEGIN swiglu_forward
void CudaBackend::swiglu_forward(const Tensor&, const Tensor&) {
  fail("swiglu_forward: not implemented on the CUDA backend yet");
}
// END swiglu_forward

// BEGIN swiglu_backward
void CudaBackend::swiglu_backward(const Tensor&, const Tensor&, const Tensor&) {
  fail("swiglu_backward: not implemented on the CUDA backend yet");
}
// END swiglu_backward

// BEGIN add
void CudaBackend::add(const Tensor&, const Tensor&, const Tensor&) {
  fail("add: not implemented on the CUDA backend yet");
}
// END add

// BEGIN scale
void CudaBackend::scale(const Tensor&, float) {
  fail("scale: not implemented on the CUDA backend yet");
}
// END scale

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

// BEGIN adamw
void CudaBackend::adamw(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, std::span<const AdamWSegment>, const AdamWHyper&) {
  fail("adamw: not implemented on the CUDA backend yet");
}
// END adamw

// BEGIN sum
double CudaBackend::sum(const Tensor&) {
  fail("sum: not implemented on the CUDA backend yet");
}
// END sum

// BEGIN sum_squares
double CudaBackend::sum_squares(const Tensor&) {
  fail("sum_squares: not implemented on the CUDA backend yet");
}
// END sum_squares

}  // namespace llm::LLM_CUDA_NS
