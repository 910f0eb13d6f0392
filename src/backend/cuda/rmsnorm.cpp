// rmsnorm_forward / add_rmsnorm_forward / rmsnorm_backward on the CUDA backend (kernels/rmsnorm.cu).
#include "rmsnorm.cuh"
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

namespace {

NormMat mat(const Tensor& t) { return NormMat{t.data(), t.dtype(), t.size(0) > 1 ? t.stride(0) : t.size(1)}; }

}  // namespace

void CudaBackend::do_rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) {
  rmsnorm_forward_rows(mat(x), nullptr, nullptr, w.data(), w.dtype(), eps, mat(y), rstd.ptr<float>(), x.size(0),
                       x.size(1), stream_);
}

void CudaBackend::do_add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float eps, const Tensor& s,
                                         const Tensor& y, const Tensor& rstd) {
  const NormMat bm = mat(b), sm = mat(s);
  rmsnorm_forward_rows(mat(a), &bm, &sm, w.data(), w.dtype(), eps, mat(y), rstd.ptr<float>(), a.size(0), a.size(1),
                       stream_);
}

void CudaBackend::do_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                                      const Tensor& dx, const Tensor& dw, bool accumulate_dx) {
  const int64_t N = x.size(0), C = x.size(1);
  auto* partial = static_cast<float*>(workspace(static_cast<size_t>(rmsnorm_backward_scratch(N, C)) * sizeof(float)));
  rmsnorm_backward_rows(mat(dy), mat(x), w.data(), w.dtype(), rstd.ptr<const float>(), mat(dx), dw.ptr<float>(),
                        accumulate_dx, N, C, partial, stream_);
}

}  // namespace llm::LLM_CUDA_NS
