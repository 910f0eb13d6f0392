// sum / sum_squares on the CUDA backend (kernels/reduce.cu): the double result is copied back,
// which synchronises the stream (the callers need the number on the host anyway).
#include "backend/cuda/cuda_backend.h"
#include "reduce.cuh"

namespace llm::LLM_CUDA_NS {

namespace {
double reduce(CudaBackend& be, const Tensor& x, bool squares, const char* op) {
  be.check_device(x, op, "x");
  LLM_CHECK(x.is_contiguous() && is_float(x.dtype()), op, ": ", x.shape_str(), " must be a contiguous float tensor");
  const int64_t n = x.numel();
  if (n == 0) return 0.0;
  // [result double | partials], 256-byte aligned pieces.
  char* ws = static_cast<char*>(be.workspace(256 + reduce_scratch(n)));
  auto* result = reinterpret_cast<double*>(ws);
  reduce_to_double(x.data(), x.dtype(), n, squares, ws + 256, result, be.stream());
  double out = 0.0;
  LLM_CUDA_CHECK(cudaMemcpyAsync(&out, result, sizeof out, cudaMemcpyDeviceToHost, be.stream()));
  LLM_CUDA_CHECK(cudaStreamSynchronize(be.stream()));
  return out;
}
}  // namespace

double CudaBackend::sum(const Tensor& x) { return reduce(*this, x, false, "sum"); }
double CudaBackend::sum_squares(const Tensor& x) { return reduce(*this, x, true, "sum_squares"); }

}  // namespace llm::LLM_CUDA_NS
