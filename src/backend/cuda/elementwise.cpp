// add / scale on the CUDA backend (kernels/elementwise.cu).
#include "elementwise.cuh"
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

void CudaBackend::do_add(const Tensor& a, const Tensor& b, const Tensor& out) {
  add_flat(a.data(), a.dtype(), b.data(), b.dtype(), out.data(), out.dtype(), a.numel(), stream_);
}

void CudaBackend::do_scale(const Tensor& x, float s) { scale_flat(x.data(), x.dtype(), x.numel(), s, stream_); }

void CudaBackend::do_dropout(const Tensor& x, float p, uint64_t seed) {
  dropout_flat(x.data(), x.dtype(), x.numel(), p, seed, stream_);
}

}  // namespace llm::LLM_CUDA_NS
