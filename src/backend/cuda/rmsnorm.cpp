// rmsnorm_forward / add_rmsnorm_forward / rmsnorm_backward on the CUDA backend (kernels/rmsnorm.cu);
// checks as in src/backend/cpu/rmsnorm.cpp.
#include "backend/cpu/cpu_util.h"
#include "backend/cuda/cuda_backend.h"
#include "rmsnorm.cuh"

namespace llm::LLM_CUDA_NS {

namespace {

void check_norm(const CudaBackend& be, const Tensor& x, const Tensor& w, const Tensor& rstd, const char* op,
                const char* xname) {
  be.check_device(x, op, xname);
  be.check_device(w, op, "w");
  be.check_device(rstd, op, "rstd");
  cpu::check_rows(x, op, xname);
  LLM_CHECK(x.ndim() == 2, op, ": ", xname, " must be [N, C], got ", x.shape_str());
  cpu::check_rows(w, op, "w");
  check_shape(w, {x.size(1)}, op, "w");
  check_dtype(rstd, DType::F32, op, "rstd");
  check_shape(rstd, {x.size(0)}, op, "rstd");
}

NormMat mat(const Tensor& t) { return NormMat{t.data(), t.dtype(), t.size(0) > 1 ? t.stride(0) : t.size(1)}; }

}  // namespace

void CudaBackend::rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) {
  const char* op = "rmsnorm_forward";
  check_norm(*this, x, w, rstd, op, "x");
  check_device(y, op, "y");
  cpu::check_rows(y, op, "y");
  cpu::check_same_shape(x, y, op, "x", "y");
  rmsnorm_forward_rows(mat(x), nullptr, nullptr, w.data(), w.dtype(), eps, mat(y), rstd.ptr<float>(), x.size(0),
                       x.size(1), stream_);
}

void CudaBackend::add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float eps, const Tensor& s,
                                      const Tensor& y, const Tensor& rstd) {
  const char* op = "add_rmsnorm_forward";
  check_norm(*this, a, w, rstd, op, "x");
  for (const auto& [t, what] : {std::pair{&b, "b"}, {&s, "s"}, {&y, "y"}}) {
    check_device(*t, op, what);
    cpu::check_rows(*t, op, what);
  }
  cpu::check_same_shape(a, b, op, "a", "b");
  cpu::check_same_shape(a, s, op, "a", "s");
  cpu::check_same_shape(a, y, op, "a", "y");
  const NormMat bm = mat(b), sm = mat(s);
  rmsnorm_forward_rows(mat(a), &bm, &sm, w.data(), w.dtype(), eps, mat(y), rstd.ptr<float>(), a.size(0), a.size(1),
                       stream_);
}

void CudaBackend::rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                                   const Tensor& dx, const Tensor& dw, bool accumulate_dx) {
  const char* op = "rmsnorm_backward";
  check_norm(*this, x, w, rstd, op, "x");
  check_device(dy, op, "dy");
  check_device(dx, op, "dx");
  check_device(dw, op, "dw");
  cpu::check_rows(dy, op, "dy");
  cpu::check_rows(dx, op, "dx");
  cpu::check_same_shape(x, dy, op, "x", "dy");
  cpu::check_same_shape(x, dx, op, "x", "dx");
  check_dtype(dw, DType::F32, op, "dw");
  check_shape(dw, {x.size(1)}, op, "dw");
  const int64_t N = x.size(0), C = x.size(1);
  if (N == 0) return;
  auto* partial = static_cast<float*>(workspace(static_cast<size_t>(rmsnorm_backward_scratch(N, C)) * sizeof(float)));
  rmsnorm_backward_rows(mat(dy), mat(x), w.data(), w.dtype(), rstd.ptr<const float>(), mat(dx), dw.ptr<float>(),
                        accumulate_dx, N, C, partial, stream_);
}

}  // namespace llm::LLM_CUDA_NS
