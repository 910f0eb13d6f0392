// swiglu_forward / swiglu_backward on the CUDA backend (kernels/swiglu.cu); checks as in
// src/backend/cpu/swiglu.cpp.
#include "backend/cpu/cpu_util.h"
#include "backend/cuda/cuda_backend.h"
#include "swiglu.cuh"

namespace llm::LLM_CUDA_NS {

namespace {
int64_t check_swiglu(const Tensor& gate_up, const Tensor& out, const char* op, const char* out_name) {
  cpu::check_rows(gate_up, op, "gate_up");
  cpu::check_rows(out, op, out_name);
  LLM_CHECK(gate_up.ndim() == 2 && gate_up.size(1) % 2 == 0, op, ": gate_up must be [N, 2I], got ", gate_up.shape_str());
  const int64_t I = gate_up.size(1) / 2;
  check_shape(out, {gate_up.size(0), I}, op, out_name);
  return I;
}
// Row stride in elements (any value will do for a single row).
int64_t ld(const Tensor& t) { return t.size(0) > 1 ? t.stride(0) : t.size(1); }
}  // namespace

void CudaBackend::swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  const char* op = "swiglu_forward";
  check_device(gate_up, op, "gate_up");
  check_device(out, op, "out");
  const int64_t I = check_swiglu(gate_up, out, op, "out");
  swiglu_forward_rows(gate_up.data(), gate_up.dtype(), ld(gate_up), out.data(), out.dtype(), ld(out), gate_up.size(0), I,
                      stream_);
}

void CudaBackend::swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  const char* op = "swiglu_backward";
  check_device(dout, op, "dout");
  check_device(gate_up, op, "gate_up");
  check_device(dgate_up, op, "dgate_up");
  const int64_t I = check_swiglu(gate_up, dout, op, "dout");
  cpu::check_rows(dgate_up, op, "dgate_up");
  cpu::check_same_shape(gate_up, dgate_up, op, "gate_up", "dgate_up");
  swiglu_backward_rows(dout.data(), dout.dtype(), ld(dout), gate_up.data(), gate_up.dtype(), ld(gate_up),
                       dgate_up.data(), dgate_up.dtype(), ld(dgate_up), gate_up.size(0), I, stream_);
}

}  // namespace llm::LLM_CUDA_NS
