// adamw on the CPU, in the order torch.optim.AdamW applies it.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/op_checks.h"

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

void CpuBackend::do_adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                          const Tensor& compute, std::span<const AdamWSegment> segments, const AdamWHyper& hp) {
  const bool write_compute = adamw_writes_compute(param, compute);
  const double bc1 = 1.0 - std::pow(double(hp.beta1), double(hp.step));
  const double bc2 = 1.0 - std::pow(double(hp.beta2), double(hp.step));
  const auto step_size = static_cast<float>(double(hp.lr) / bc1);
  const auto bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  for (const AdamWSegment& s : segments) {
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
