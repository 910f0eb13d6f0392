// cross_entropy on the CPU: the output layer and the loss fused over chunks of tokens.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/onednn_gemm.h"
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

// exp(l - max) in place, element by element as exp_row computes it (cross_entropy_dw's rows).
LLM_CPU_CLONES void exp_shifted(float* l, float mx, int64_t V) {
  for (int64_t j = 0; j < V; ++j) l[j] = cpu::fast_exp(l[j] - mx);
}

}  // namespace

// logits[:, 0 .. R) (row stride ld) = h @ w[r0 .. r0 + R)^T: bf16 operands straight into oneDNN's
// bf16 kernels, else fp32 (hc: the chunk's h in fp32; W: w in fp32). The one GEMM per block that
// cross_entropy and cross_entropy_dw share, so that a block's logits are the same bits in both.
void CpuBackend::logits_block(const Tensor& hrows, const float* hc, const Tensor& w, const cpu::F32Matrix& W, bool bf16,
                              int64_t r0, int64_t R, float* logits, int64_t ld) {
  const int64_t n = hrows.size(0), C = hrows.size(1);
  if (bf16) {
    const int64_t ldh = n > 1 ? hrows.stride(0) : C, ldw = w.size(0) > 1 ? w.stride(0) : C;
    onednn_->bf16(false, true, n, R, C, 1.0f, hrows.ptr<uint16_t>(), ldh, w.ptr<uint16_t>() + r0 * ldw, ldw, 0.0f,
                  logits, ld);
  } else {
    gemm_f32(false, true, n, R, C, 1.0f, hc, C, W.data + r0 * W.ld, W.ld, 0.0f, logits, ld);
  }
}

// dw [R, C] += dlogits^T [R, n] @ h [n, C] (dlogits row stride ld), one GEMM per block of rb rows:
// the dw products cross_entropy and cross_entropy_dw share, as logits_block.
void CpuBackend::dw_blocks(const float* dlogits, int64_t ld, int64_t R, int64_t rb, const float* hc, int64_t n,
                           int64_t C, float* dw) {
  for (int64_t r0 = 0; r0 < R; r0 += rb) {
    gemm_f32(true, false, std::min(rb, R - r0), C, n, 1.0f, dlogits + r0, ld, hc, C, 1.0f, dw + r0 * C, C);
  }
}

// Chunks of default_ce_chunk_tokens (256 MiB of logits): large chunks keep the dW product
// efficient (its inner dimension is the chunk's token count) while [N, V] never exists at once.
void CpuBackend::do_cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses,
                                  const Tensor& dh, const Tensor& dw, float grad_scale, int64_t chunk_tokens,
                                  const Tensor& stats, int64_t row_block) {
  const char* op = "cross_entropy";
  const int64_t N = h.size(0), C = h.size(1), V = w.size(0);
  const bool want_dh = !dh.empty(), want_dw = !dw.empty(), grad = want_dh || want_dw;
  // The targets are read on the host, before anything is written.
  const int32_t* tg = targets.ptr<int32_t>();
  for (int64_t n = 0; n < N; ++n) {
    LLM_CHECK(tg[n] < V, op, ": target ", tg[n], " at position ", n, " is outside the vocabulary [0, ", V, ")");
  }

  const cpu::F32Matrix W = cpu::f32_matrix(w, op, "w");
  const bool bf16_logits = h.dtype() == DType::BF16 && w.dtype() == DType::BF16 && C > 0 && onednn_bf16_ready();
  const int64_t chunk = default_ce_chunk_tokens(V, N, chunk_tokens);
  const int64_t rb = row_block > 0 ? row_block : std::max<int64_t>(V, 1);
  // One workspace: logits [chunk, V], then the chunk's h and dh [chunk, C].
  float* const logits = workspace(static_cast<size_t>(chunk * (V + 2 * C)));
  float* const hc = logits + chunk * V;
  float* const dhc = hc + chunk * C;
  float* loss = losses.ptr<float>();
  float* const st = stats.empty() ? nullptr : stats.ptr<float>();

  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t n = std::min(chunk, N - n0);
    const Tensor hrows = h.slice(0, n0, n0 + n);
    for (int64_t r = 0; r < n; ++r) cpu::to_f32(cpu::at(hrows, r), h.dtype(), hc + r * C, C);
    // logits [n, V] = h [n, C] @ w^T [C, V], a block of rows of w at a time (row_block).
    for (int64_t r0 = 0; r0 < V; r0 += rb) {
      logits_block(hrows, hc, w, W, bf16_logits, r0, std::min(rb, V - r0), logits + r0, V);
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      float* l = logits + r * V;
      const int32_t t = tg[n0 + r];
      const float target_logit = t >= 0 ? l[t] : 0.0f;
      const RowMax m = exp_row(l, V);
      loss[n0 + r] = t >= 0 ? (m.max + std::log(m.sum)) - target_logit : 0.0f;
      if (st) {
        st[2 * (n0 + r)] = m.max;
        st[2 * (n0 + r) + 1] = m.sum;
      }
      if (grad) {
        // dlogits = (softmax - onehot) * grad_scale; a row without a target contributes nothing.
        scale_row(l, t >= 0 ? grad_scale / m.sum : 0.0f, V);
        if (t >= 0) l[t] -= grad_scale;
      }
    }
    if (!grad) continue;
    if (want_dh) {
      // dh [n, C] = dlogits [n, V] @ w [V, C]
      gemm_f32(false, false, n, C, V, 1.0f, logits, V, W.data, W.ld, 0.0f, dhc, C);
      const Tensor drows = dh.slice(0, n0, n0 + n);
      for (int64_t r = 0; r < n; ++r) cpu::from_f32(dhc + r * C, cpu::at(drows, r), dh.dtype(), C);
    }
    if (want_dw) dw_blocks(logits, V, V, rb, hc, n, C, dw.ptr<float>());  // dw [V, C] += dlogits^T @ h
  }
}

// The same chunks, logits GEMMs and row arithmetic as do_cross_entropy, restricted to the rows
// [row0, row0 + R) of w, with each row's max and sum from its stats instead of a pass over all V.
void CpuBackend::do_cross_entropy_dw(const Tensor& h, const Tensor& w_rows, int64_t row0, const Tensor& targets,
                                     const Tensor& stats, const Tensor& dw_rows, float grad_scale, int64_t chunk_tokens,
                                     int64_t row_block) {
  const char* op = "cross_entropy_dw";
  const int64_t N = h.size(0), C = h.size(1), R = w_rows.size(0);
  const int32_t* tg = targets.ptr<int32_t>();
  const float* st = stats.ptr<float>();
  const cpu::F32Matrix W = cpu::f32_matrix(w_rows, op, "w_rows");
  const bool bf16_logits = h.dtype() == DType::BF16 && w_rows.dtype() == DType::BF16 && C > 0 && onednn_bf16_ready();
  // The caller passes the chunk cross_entropy resolved (0 would size the chunks for R rows, not V).
  const int64_t chunk = default_ce_chunk_tokens(R, N, chunk_tokens);
  const int64_t rb = row_block > 0 ? row_block : R;
  float* const logits = workspace(static_cast<size_t>(chunk * (R + C)));
  float* const hc = logits + chunk * R;
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t n = std::min(chunk, N - n0);
    const Tensor hrows = h.slice(0, n0, n0 + n);
    for (int64_t r = 0; r < n; ++r) cpu::to_f32(cpu::at(hrows, r), h.dtype(), hc + r * C, C);
    for (int64_t b0 = 0; b0 < R; b0 += rb)
      logits_block(hrows, hc, w_rows, W, bf16_logits, b0, std::min(rb, R - b0), logits + b0, R);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      float* l = logits + r * R;
      const int32_t t = tg[n0 + r];
      if (t < 0) {
        std::fill(l, l + R, 0.0f);
        continue;
      }
      exp_shifted(l, st[2 * (n0 + r)], R);
      scale_row(l, grad_scale / st[2 * (n0 + r) + 1], R);
      if (t >= row0 && t < row0 + R) l[t - row0] -= grad_scale;
    }
    dw_blocks(logits, R, R, rb, hc, n, C, dw_rows.ptr<float>());  // dw_rows [R, C] += dlogits^T @ h
  }
}

}  // namespace llm
