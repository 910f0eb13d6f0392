// swiglu_forward / swiglu_backward on the CUDA backend (kernels/swiglu.cu).
#include "swiglu.cuh"
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

namespace {
// Row stride in elements (any value will do for a single row).
int64_t ld(const Tensor& t) { return t.size(0) > 1 ? t.stride(0) : t.size(1); }
}  // namespace

void CudaBackend::do_swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  const int64_t I = gate_up.size(1) / 2;
  swiglu_forward_rows(gate_up.data(), gate_up.dtype(), ld(gate_up), out.data(), out.dtype(), ld(out), gate_up.size(0),
                      I, stream_);
}

void CudaBackend::do_swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  const int64_t I = gate_up.size(1) / 2;
  swiglu_backward_rows(dout.data(), dout.dtype(), ld(dout), gate_up.data(), gate_up.dtype(), ld(gate_up),
                       dgate_up.data(), dgate_up.dtype(), ld(dgate_up), gate_up.size(0), I, stream_);
}

}  // namespace llm::LLM_CUDA_NS
