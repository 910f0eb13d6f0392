// cross_entropy on the CPU: the output layer and the loss fused over chunks of tokens.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "llm/memory_plan.h"

namespace llm {

namespace {

struct RowMax {
  float max;
  float sum;
};

// Replaces logits l[0..V) by exp(l - max) and returns max and the sum of the exps.
LLM_CPU_CLONES RowMax exp_row(float* l, int64_t V) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < V; ++j) mx = std::max(mx, l[j]);
  float part[16] = {};
  int64_t j = 0;
  for (; j + 16 <= V; j += 16) {
    for (int k = 0; k < 16; ++k) {
      l[j + k] = cpu::fast_exp(l[j + k] - mx);
      part[k] += l[j + k];
    }
  }
  for (; j < V; ++j) {
    l[j] = cpu::fast_exp(l[j] - mx);
    part[0] += l[j];
  }
  float s = 0.0f;
  for (float p : part) s += p;
  return {mx, s};
}

LLM_CPU_CLONES void scale_row(float* l, float s, int64_t V) {
  for (int64_t j = 0; j < V; ++j) l[j] *= s;
}

}  // namespace

// Chunks of default_ce_chunk_tokens (256 MiB of logits): large chunks keep the dW product
// efficient (its inner dimension is the chunk's token count) while [N, V] never exists at once.
void CpuBackend::do_cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses,
                                  const Tensor& dh, const Tensor& dw, float grad_scale, int64_t chunk_tokens) {
  const char* op = "cross_entropy";
  const int64_t N = h.size(0), C = h.size(1), V = w.size(0);
  const bool want_dh = !dh.empty(), want_dw = !dw.empty(), grad = want_dh || want_dw;
  // The targets are read on the host, before anything is written.
  const int32_t* tg = targets.ptr<int32_t>();
  for (int64_t n = 0; n < N; ++n) {
    LLM_CHECK(tg[n] < V, op, ": target ", tg[n], " at position ", n, " is outside the vocabulary [0, ", V, ")");
  }

  const cpu::F32Matrix W = cpu::f32_matrix(w, op, "w");
  const int64_t chunk = default_ce_chunk_tokens(V, N, chunk_tokens);
  // One workspace: logits [chunk, V], then the chunk's h and dh [chunk, C].
  float* const logits = workspace(static_cast<size_t>(chunk * (V + 2 * C)));
  float* const hc = logits + chunk * V;
  float* const dhc = hc + chunk * C;
  float* loss = losses.ptr<float>();

  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t n = std::min(chunk, N - n0);
    const Tensor hrows = h.slice(0, n0, n0 + n);
    for (int64_t r = 0; r < n; ++r) cpu::to_f32(cpu::at(hrows, r), h.dtype(), hc + r * C, C);
    // logits [n, V] = h [n, C] @ w^T [C, V]
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n), static_cast<blasint>(V),
                static_cast<blasint>(C), 1.0f, hc, static_cast<blasint>(C), W.data, static_cast<blasint>(W.ld), 0.0f,
                logits, static_cast<blasint>(V));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      float* l = logits + r * V;
      const int32_t t = tg[n0 + r];
      const float target_logit = t >= 0 ? l[t] : 0.0f;
      const RowMax m = exp_row(l, V);
      loss[n0 + r] = t >= 0 ? (m.max + std::log(m.sum)) - target_logit : 0.0f;
      if (grad) {
        // dlogits = (softmax - onehot) * grad_scale; a row without a target contributes nothing.
        scale_row(l, t >= 0 ? grad_scale / m.sum : 0.0f, V);
        if (t >= 0) l[t] -= grad_scale;
      }
    }
    if (!grad) continue;
    if (want_dh) {
      // dh [n, C] = dlogits [n, V] @ w [V, C]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(n), static_cast<blasint>(C),
                  static_cast<blasint>(V), 1.0f, logits, static_cast<blasint>(V), W.data, static_cast<blasint>(W.ld),
                  0.0f, dhc, static_cast<blasint>(C));
      const Tensor drows = dh.slice(0, n0, n0 + n);
      for (int64_t r = 0; r < n; ++r) cpu::from_f32(dhc + r * C, cpu::at(drows, r), dh.dtype(), C);
    }
    if (want_dw) {
      // dw [V, C] += dlogits^T [V, n] @ h [n, C]
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<blasint>(V), static_cast<blasint>(C),
                  static_cast<blasint>(n), 1.0f, logits, static_cast<blasint>(V), hc, static_cast<blasint>(C), 1.0f,
                  dw.ptr<float>(), static_cast<blasint>(C));
    }
  }
}

}  // namespace llm
