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

int64_t check_swiglu(const Tensor& gate_up, const Tensor& out, const char* op, const char* out_name) {
  cpu::check_rows(gate_up, op, "gate_up");
  cpu::check_rows(out, op, out_name);
  LLM_CHECK(gate_up.ndim() == 2 && gate_up.size(1) % 2 == 0, op, ": gate_up must be [N, 2I], got ", gate_up.shape_str());
  const int64_t I = gate_up.size(1) / 2;
  check_shape(out, {gate_up.size(0), I}, op, out_name);
  return I;
}

}  // namespace

void CpuBackend::swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  const char* op = "swiglu_forward";
  const int64_t I = check_swiglu(gate_up, out, op, "out"), N = gate_up.size(0);
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

void CpuBackend::swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  const char* op = "swiglu_backward";
  const int64_t I = check_swiglu(gate_up, dout, op, "dout"), N = gate_up.size(0);
  cpu::check_rows(dgate_up, op, "dgate_up");
  cpu::check_same_shape(gate_up, dgate_up, op, "gate_up", "dgate_up");
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
