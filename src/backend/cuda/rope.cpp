// rope on the CUDA backend (kernels/rope.cu).
#include "rope.cuh"
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

void CudaBackend::do_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0, bool inverse,
                          const Tensor& positions) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
  rope_inplace(x.data(), x.dtype(), B, T, H, D, x.stride(0), x.stride(1), x.stride(2), cos.ptr<float>(),
               sin.ptr<float>(), pos0, positions.empty() ? nullptr : positions.ptr<int32_t>(), cos.size(0), inverse,
               stream_);
}

}  // namespace llm::LLM_CUDA_NS
