// rmsnorm_forward / add_rmsnorm_forward / rmsnorm_backward on the CPU.
#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace llm {

namespace {

// y = w * x * rstd for one row already in fp32; returns rstd.
LLM_CPU_CLONES float rmsnorm_row(const float* x, const float* w, float eps, float* y, int64_t C) {
  float ss = 0.0f;
  for (int64_t c = 0; c < C; ++c) ss += x[c] * x[c];
  const float rstd = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
  for (int64_t c = 0; c < C; ++c) y[c] = w[c] * (x[c] * rstd);
  return rstd;
}

// dx_c = rstd * (w_c dy_c) - rstd^3 / C * x_c * sum_j (w_j dy_j x_j)
LLM_CPU_CLONES void rmsnorm_backward_row(const float* dy, const float* x, const float* w, float rstd, float* dx,
                                         bool accumulate, int64_t C) {
  // 16 partial sums, so that the loop vectorises (one running sum waits 4 cycles an element)
  float lanes[16] = {};
  int64_t c = 0;
  for (; c + 16 <= C; c += 16) {
    for (int64_t l = 0; l < 16; ++l) lanes[l] += w[c + l] * dy[c + l] * x[c + l];
  }
  float dot = 0.0f;
  for (; c < C; ++c) dot += w[c] * dy[c] * x[c];
  for (int64_t l = 0; l < 16; ++l) dot += lanes[l];
  const float k = dot * rstd * rstd * rstd / static_cast<float>(C);
  if (accumulate) {
    for (c = 0; c < C; ++c) dx[c] += rstd * w[c] * dy[c] - k * x[c];
  } else {
    for (c = 0; c < C; ++c) dx[c] = rstd * w[c] * dy[c] - k * x[c];
  }
}

}  // namespace

void CpuBackend::do_rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) {
  const int64_t N = x.size(0), C = x.size(1);
  std::vector<float> wf(static_cast<size_t>(C));
  cpu::to_f32(w.data(), w.dtype(), wf.data(), C);
  float* r = rstd.ptr<float>();
#pragma omp parallel if (N * C > cpu::kParallelMinWork)
  {
    std::vector<float> xr(static_cast<size_t>(C)), yr(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      cpu::to_f32(cpu::at(x, n), x.dtype(), xr.data(), C);
      r[n] = rmsnorm_row(xr.data(), wf.data(), eps, yr.data(), C);
      cpu::from_f32(yr.data(), cpu::at(y, n), y.dtype(), C);
    }
  }
}

void CpuBackend::do_add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float eps, const Tensor& s,
                                        const Tensor& y, const Tensor& rstd) {
  const int64_t N = a.size(0), C = a.size(1);
  std::vector<float> wf(static_cast<size_t>(C));
  cpu::to_f32(w.data(), w.dtype(), wf.data(), C);
  float* r = rstd.ptr<float>();
#pragma omp parallel if (N * C > cpu::kParallelMinWork)
  {
    std::vector<float> ar(static_cast<size_t>(C)), br(static_cast<size_t>(C)), yr(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      cpu::to_f32(cpu::at(a, n), a.dtype(), ar.data(), C);
      cpu::to_f32(cpu::at(b, n), b.dtype(), br.data(), C);
      for (int64_t c = 0; c < C; ++c) ar[static_cast<size_t>(c)] += br[static_cast<size_t>(c)];
      cpu::from_f32(ar.data(), cpu::at(s, n), s.dtype(), C);
      // Normalise the sum as stored, so the backward (which reads s) sees the same input.
      if (s.dtype() != DType::F32) cpu::to_f32(cpu::at(s, n), s.dtype(), ar.data(), C);
      r[n] = rmsnorm_row(ar.data(), wf.data(), eps, yr.data(), C);
      cpu::from_f32(yr.data(), cpu::at(y, n), y.dtype(), C);
    }
  }
}

void CpuBackend::do_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                                     const Tensor& dx, const Tensor& dw, bool accumulate_dx) {
  const int64_t N = x.size(0), C = x.size(1);
  std::vector<float> wf(static_cast<size_t>(C));
  cpu::to_f32(w.data(), w.dtype(), wf.data(), C);
  const float* r = rstd.ptr<float>();
#pragma omp parallel if (N * C > cpu::kParallelMinWork)
  {
    std::vector<float> dyr(static_cast<size_t>(C)), xr(static_cast<size_t>(C)), dxr(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      cpu::to_f32(cpu::at(dy, n), dy.dtype(), dyr.data(), C);
      cpu::to_f32(cpu::at(x, n), x.dtype(), xr.data(), C);
      if (accumulate_dx) cpu::to_f32(cpu::at(dx, n), dx.dtype(), dxr.data(), C);
      rmsnorm_backward_row(dyr.data(), xr.data(), wf.data(), r[n], dxr.data(), accumulate_dx, C);
      cpu::from_f32(dxr.data(), cpu::at(dx, n), dx.dtype(), C);
    }
  }
  // dw_c += sum_n dy[n,c] * x[n,c] * rstd[n]: threads own column blocks, rows summed in order.
  float* dwp = dw.ptr<float>();
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel if (N * C > cpu::kParallelMinWork)
  {
    std::vector<float> acc(kBlock);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kBlock, width = std::min(C, c0 + kBlock) - c0;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t n = 0; n < N; ++n) {
        cpu::add_widened_product(cpu::at(dy, n) + c0 * int64_t(dtype_size(dy.dtype())), dy.dtype(),
                                 cpu::at(x, n) + c0 * int64_t(dtype_size(x.dtype())), x.dtype(), r[n], acc.data(),
                                 width);
      }
      for (int64_t c = 0; c < width; ++c) dwp[c0 + c] += acc[static_cast<size_t>(c)];
    }
  }
}

}  // namespace llm
