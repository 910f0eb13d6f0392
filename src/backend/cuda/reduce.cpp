// sum / sum_squares on the CUDA backend (kernels/reduce.cu): the double result is copied back,
// which synchronises the stream (the callers need the number on the host anyway).
#include "reduce.cuh"
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

namespace {
double reduce(CudaBackend& be, const Tensor& x, bool squares) {
  const int64_t n = x.numel();
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

double CudaBackend::do_sum(const Tensor& x) { return reduce(*this, x, false); }
double CudaBackend::do_sum_squares(const Tensor& x) { return reduce(*this, x, true); }

}  // namespace llm::LLM_CUDA_NS
