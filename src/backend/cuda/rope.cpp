// rope on the CUDA backend (kernels/rope.cu); checks as in src/backend/cpu/rope.cpp.
#include "backend/cuda/cuda_backend.h"
#include "rope.cuh"

namespace llm::LLM_CUDA_NS {

void CudaBackend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0, bool inverse) {
  const char* op = "rope";
  check_device(x, op, "x");
  check_device(cos, op, "cos");
  check_device(sin, op, "sin");
  LLM_CHECK(x.ndim() == 4, op, ": x must be [B, T, H, D], got ", x.shape_str());
  LLM_CHECK(is_float(x.dtype()) && x.stride(3) == 1, op, ": x ", x.shape_str(), " must be a float tensor with dense heads");
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3), half = D / 2;
  LLM_CHECK(D % 2 == 0, op, ": head_dim ", D, " must be even");
  check_dtype(cos, DType::F32, op, "cos");
  check_dtype(sin, DType::F32, op, "sin");
  LLM_CHECK(cos.ndim() == 2 && cos.size(1) == half && cos.is_contiguous(), op, ": cos must be [P, ", half, "], got ",
            cos.shape_str());
  check_shape(sin, {cos.size(0), half}, op, "sin");
  LLM_CHECK(pos0 >= 0 && pos0 + T <= cos.size(0), op, ": positions [", pos0, ", ", pos0 + T,
            ") exceed the rotary table of ", cos.size(0), " positions");
  LLM_CHECK(sin.is_contiguous(), op, ": sin ", sin.shape_str(), " must be contiguous");
  rope_inplace(x.data(), x.dtype(), B, T, H, D, x.stride(0), x.stride(1), x.stride(2), cos.ptr<float>(),
               sin.ptr<float>(), pos0, inverse, stream_);
}

}  // namespace llm::LLM_CUDA_NS
