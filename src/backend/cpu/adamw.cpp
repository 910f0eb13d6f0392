// adamw on the CPU, in the order torch.optim.AdamW applies it.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace llm {

namespace {

LLM_CPU_CLONES void adamw_range(float* p, const float* g, float* m, float* v, int64_t n, float gscale, float b1,
                                float b2, float decay, float step_size, float bc2_sqrt, float eps) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * gscale;
    p[i] *= decay;
    m[i] = m[i] * b1 + gi * (1.0f - b1);
    v[i] = v[i] * b2 + (1.0f - b2) * gi * gi;
    p[i] -= step_size * (m[i] / (std::sqrt(v[i]) / bc2_sqrt + eps));
  }
}

}  // namespace

void CpuBackend::adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                       const Tensor& compute, std::span<const AdamWSegment> segments, const AdamWHyper& hp) {
  const char* op = "adamw";
  for (const auto& [t, what] : {std::pair{&param, "param"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}}) {
    check_dtype(*t, DType::F32, op, what);
    LLM_CHECK(t->is_contiguous() && t->numel() == param.numel(), op, ": ", what, " ", t->shape_str(),
              " must be a contiguous buffer of ", param.numel(), " elements");
  }
  const bool write_compute = !compute.empty() && compute.data() != param.data();
  if (write_compute) {
    LLM_CHECK(compute.is_contiguous() && compute.numel() == param.numel() && is_float(compute.dtype()), op,
              ": compute ", compute.shape_str(), " must be a contiguous float buffer of ", param.numel(), " elements");
  }
  LLM_CHECK(hp.step >= 1, op, ": step must be >= 1, got ", hp.step);
  const double bc1 = 1.0 - std::pow(double(hp.beta1), double(hp.step));
  const double bc2 = 1.0 - std::pow(double(hp.beta2), double(hp.step));
  const auto step_size = static_cast<float>(double(hp.lr) / bc1);
  const auto bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const int64_t P = param.numel();
  for (const AdamWSegment& s : segments) {
    LLM_CHECK(s.offset >= 0 && s.count >= 0 && s.offset + s.count <= P, op, ": segment [", s.offset, ", ",
              s.offset + s.count, ") is outside the ", P, " parameters");
    const float decay = 1.0f - hp.lr * s.weight_decay;
    constexpr int64_t kChunk = 16384;
    const int64_t chunks = (s.count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (s.count > 65536)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t i0 = s.offset + c * kChunk, len = std::min(kChunk, s.offset + s.count - i0);
      adamw_range(param.ptr<float>() + i0, grad.ptr<float>() + i0, m.ptr<float>() + i0, v.ptr<float>() + i0, len,
                  hp.grad_scale, hp.beta1, hp.beta2, decay, step_size, bc2_sqrt, hp.eps);
      if (write_compute) {
        cpu::from_f32(param.ptr<float>() + i0, compute.ptr<char>() + i0 * int64_t(dtype_size(compute.dtype())),
                      compute.dtype(), len);
      }
    }
  }
}

}  // namespace llm
