// rope on the CPU: NeoX rotate-half, in place, forward or inverse.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace llm {

void CpuBackend::do_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0, bool inverse,
                         const Tensor& positions) {
  const int32_t* pos = positions.empty() ? nullptr : positions.ptr<int32_t>();  // [B, T]
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3), half = D / 2;
  const float sign = inverse ? -1.0f : 1.0f;
#pragma omp parallel if (B * T * H * D > cpu::kParallelMinWork)
  {
    std::vector<float> row(static_cast<size_t>(D));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < T; ++t) {
        const int64_t at = pos ? pos[b * T + t] : pos0 + t;
        const float* c = cos.ptr<float>() + at * half;
        const float* s = sin.ptr<float>() + at * half;
        for (int64_t h = 0; h < H; ++h) {
          char* p = cpu::at(x, b, t, h);
          cpu::to_f32(p, x.dtype(), row.data(), D);
          float* lo = row.data();
          float* hi = row.data() + half;
          for (int64_t i = 0; i < half; ++i) {
            const float x1 = lo[i], x2 = hi[i], si = sign * s[i];
            lo[i] = x1 * c[i] - x2 * si;
            hi[i] = x2 * c[i] + x1 * si;
          }
          cpu::from_f32(row.data(), p, x.dtype(), D);
        }
      }
    }
  }
}

}  // namespace llm
