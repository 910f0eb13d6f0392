// swiglu_forward / swiglu_backward on the CPU.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace llm {

namespace {

LLM_CPU_CLONES void swiglu_row(const float* g, const float* u, float* out, int64_t I) {
  for (int64_t i = 0; i < I; ++i) out[i] = g[i] / (1.0f + cpu::fast_exp(-g[i])) * u[i];
}

// d/dg silu(g) u = sig(g) (1 + g (1 - sig(g))) u;  d/du = silu(g)
LLM_CPU_CLONES void swiglu_backward_row(const float* dout, const float* g, const float* u, float* dg, float* du,
                                        int64_t I) {
  for (int64_t i = 0; i < I; ++i) {
    const float sig = 1.0f / (1.0f + cpu::fast_exp(-g[i]));
    dg[i] = dout[i] * u[i] * sig * (1.0f + g[i] * (1.0f - sig));
    du[i] = dout[i] * g[i] * sig;
  }
}

}  // namespace

void CpuBackend::do_swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  const int64_t I = gate_up.size(1) / 2, N = gate_up.size(0);
#pragma omp parallel if (N * I > cpu::kParallelMinWork)
  {
    std::vector<float> gu(static_cast<size_t>(2 * I)), o(static_cast<size_t>(I));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      cpu::to_f32(cpu::at(gate_up, n), gate_up.dtype(), gu.data(), 2 * I);
      swiglu_row(gu.data(), gu.data() + I, o.data(), I);
      cpu::from_f32(o.data(), cpu::at(out, n), out.dtype(), I);
    }
  }
}

void CpuBackend::do_swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  const int64_t I = gate_up.size(1) / 2, N = gate_up.size(0);
#pragma omp parallel if (N * I > cpu::kParallelMinWork)
  {
    std::vector<float> gu(static_cast<size_t>(2 * I)), d(static_cast<size_t>(I)), dgu(static_cast<size_t>(2 * I));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      cpu::to_f32(cpu::at(gate_up, n), gate_up.dtype(), gu.data(), 2 * I);
      cpu::to_f32(cpu::at(dout, n), dout.dtype(), d.data(), I);
      swiglu_backward_row(d.data(), gu.data(), gu.data() + I, dgu.data(), dgu.data() + I, I);
      cpu::from_f32(dgu.data(), cpu::at(dgate_up, n), dgate_up.dtype(), 2 * I);
    }
  }
}

}  // namespace llm
