// add / scale on the CUDA backend (kernels/elementwise.cu); checks as in src/backend/cpu/elementwise.cpp.
#include "backend/cpu/cpu_util.h"
#include "backend/cuda/cuda_backend.h"
#include "elementwise.cuh"

namespace llm::LLM_CUDA_NS {

void CudaBackend::add(const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* op = "add";
  check_device(a, op, "a");
  check_device(b, op, "b");
  check_device(out, op, "out");
  cpu::check_same_shape(a, b, op, "a", "b");
  cpu::check_same_shape(a, out, op, "a", "out");
  for (const Tensor* t : {&a, &b, &out}) {
    LLM_CHECK(t->is_contiguous() && is_float(t->dtype()), op, ": ", t->shape_str(), " must be a contiguous float tensor");
  }
  add_flat(a.data(), a.dtype(), b.data(), b.dtype(), out.data(), out.dtype(), a.numel(), stream_);
}

void CudaBackend::scale(const Tensor& x, float s) {
  check_device(x, "scale", "x");
  LLM_CHECK(x.is_contiguous() && is_float(x.dtype()), "scale: ", x.shape_str(), " must be a contiguous float tensor");
  scale_flat(x.data(), x.dtype(), x.numel(), s, stream_);
}

}  // namespace llm::LLM_CUDA_NS
