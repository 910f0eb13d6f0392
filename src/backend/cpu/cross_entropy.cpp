// cross_entropy on the CPU: the output layer and the loss fused over chunks of tokens.
#include <algorithm>
#include <bit>
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

// Replaces logits l[0..V) by exp(l - max) and returns max and the sum of the exps. Both
// reductions keep 16 partial results so that they vectorise (one running max is a chain of
// dependent instructions: that pass alone took 2.4 ms of tiny's 13 ms loss).
LLM_CPU_CLONES RowMax exp_row(float* l, int64_t V) {
  float lanes[16];
  std::fill(lanes, lanes + 16, -std::numeric_limits<float>::infinity());
  int64_t i = 0;
  for (; i + 16 <= V; i += 16) {
    for (int k = 0; k < 16; ++k) lanes[k] = std::max(lanes[k], l[i + k]);
  }
  float mx = *std::max_element(lanes, lanes + 16);
  for (; i < V; ++i) mx = std::max(mx, l[i]);
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

// dl[j] = bf16(l[j] * s): scale_row and the rounding in one pass (at bf16 only the rounded
// dlogits are read afterwards).
LLM_CPU_CLONES void scale_row_bf16(const float* l, float s, uint16_t* dl, int64_t V) {
  for (int64_t j = 0; j < V; ++j) {
    const uint32_t u = std::bit_cast<uint32_t>(l[j] * s);
    dl[j] = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

// exp(l - max) in place, element by element as exp_row computes it (cross_entropy_dw's rows).
LLM_CPU_CLONES void exp_shifted(float* l, float mx, int64_t V) {
  for (int64_t j = 0; j < V; ++j) l[j] = cpu::fast_exp(l[j] - mx);
}

}  // namespace

// logits[:, 0 .. R) (row stride ld) = h @ w[r0 .. r0 + R)^T: bf16 operands straight into oneDNN's
// bf16 kernels, else fp32 (hc: the chunk's h in fp32; W: w in fp32). The one GEMM per block that
// cross_entropy and cross_entropy_dw share, so that a block's logits are the same bits in both.
void CpuBackend::logits_block(const CeOperands& o, int64_t r0, int64_t R, float* logits, int64_t ld) {
  const int64_t n = o.hrows.size(0), C = o.hrows.size(1);
  if (o.bf16) {
    const int64_t ldh = n > 1 ? o.hrows.stride(0) : C, ldw = o.w.size(0) > 1 ? o.w.stride(0) : C;
    onednn_->bf16(false, true, n, R, C, 1.0f, o.hrows.ptr<uint16_t>(), ldh, o.w.ptr<uint16_t>() + r0 * ldw, ldw, 0.0f,
                  logits, ld);
  } else {
    gemm_f32(false, true, n, R, C, 1.0f, o.hc, C, o.W.data + r0 * o.W.ld, o.W.ld, 0.0f, logits, ld);
  }
}

// dw [R, C] += dlogits^T [R, n] @ h [n, C] (dlogits row stride ld), one GEMM per block of rb rows:
// the dw products cross_entropy and cross_entropy_dw share, as logits_block. At bf16 the dlogits
// are the bf16 copy dl16 and h is read as it is, as the CUDA backend multiplies them.
void CpuBackend::dw_blocks(const CeOperands& o, const float* dlogits, const uint16_t* dl16, int64_t ld, int64_t R,
                           int64_t rb, float* dw) {
  const int64_t n = o.hrows.size(0), C = o.hrows.size(1);
  for (int64_t r0 = 0; r0 < R; r0 += rb) {
    const int64_t rows = std::min(rb, R - r0);
    if (o.bf16) {
      const int64_t ldh = n > 1 ? o.hrows.stride(0) : C;
      onednn_->bf16(true, false, rows, C, n, 1.0f, dl16 + r0, ld, o.hrows.ptr<uint16_t>(), ldh, 1.0f, dw + r0 * C, C);
    } else {
      gemm_f32(true, false, rows, C, n, 1.0f, dlogits + r0, ld, o.hc, C, 1.0f, dw + r0 * C, C);
    }
  }
}

// Chunks of default_ce_chunk_tokens (256 MiB of logits): large chunks keep the dW product
// efficient (its inner dimension is the chunk's token count) while [N, V] never exists at once.
//
// At bf16 (h and w bf16, oneDNN's native bf16 kernels present) the three GEMMs take bf16 operands
// with fp32 accumulation: the dlogits are rounded to bf16 once, as the CUDA backend does and as
// every other activation gradient of a bf16 step is, and w is never widened to fp32 (at a 32000
// vocabulary the widened copy alone was 64 MiB a step and the fp32 gradient GEMMs half the speed).
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

  const bool bf16 = h.dtype() == DType::BF16 && w.dtype() == DType::BF16 && C > 0 && onednn_bf16_ready();
  const cpu::F32Matrix W = bf16 ? cpu::F32Matrix{} : cpu::f32_matrix(w, op, "w");
  const int64_t chunk = default_ce_chunk_tokens(V, N, chunk_tokens);
  const int64_t rb = row_block > 0 ? row_block : std::max<int64_t>(V, 1);
  // One workspace: logits [chunk, V], then the chunk's h and dh [chunk, C] in fp32, then (bf16)
  // the bf16 dlogits [chunk, V] (two to a float).
  const int64_t dl16_floats = bf16 && grad ? (chunk * V + 1) / 2 : 0;
  float* const logits = workspace(static_cast<size_t>(chunk * (V + 2 * C) + dl16_floats));
  float* const hc = logits + chunk * V;
  float* const dhc = hc + chunk * C;
  auto* const dl16 = reinterpret_cast<uint16_t*>(dhc + chunk * C);
  float* loss = losses.ptr<float>();
  float* const st = stats.empty() ? nullptr : stats.ptr<float>();

  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t n = std::min(chunk, N - n0);
    const CeOperands o{h.slice(0, n0, n0 + n), hc, w, W, bf16};
    if (!bf16) {
      for (int64_t r = 0; r < n; ++r) cpu::to_f32(cpu::at(o.hrows, r), h.dtype(), hc + r * C, C);
    }
    // logits [n, V] = h [n, C] @ w^T [C, V], a block of rows of w at a time (row_block).
    for (int64_t r0 = 0; r0 < V; r0 += rb) logits_block(o, r0, std::min(rb, V - r0), logits + r0, V);
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
        const float s = t >= 0 ? grad_scale / m.sum : 0.0f;
        if (bf16) {
          scale_row_bf16(l, s, dl16 + r * V, V);
          if (t >= 0) {
            l[t] *= s;  // as cross_entropy_dw forms it, so that the two round the same value
            l[t] -= grad_scale;
            cpu::from_f32(l + t, dl16 + r * V + t, DType::BF16, 1);
          }
        } else {
          scale_row(l, s, V);
          if (t >= 0) l[t] -= grad_scale;
        }
      }
    }
    if (!grad) continue;
    if (want_dh) {
      // dh [n, C] = dlogits [n, V] @ w [V, C]
      if (bf16) {
        const int64_t ldw = V > 1 ? w.stride(0) : C;
        onednn_->bf16(false, false, n, C, V, 1.0f, dl16, V, w.ptr<uint16_t>(), ldw, 0.0f, dhc, C);
      } else {
        gemm_f32(false, false, n, C, V, 1.0f, logits, V, W.data, W.ld, 0.0f, dhc, C);
      }
      const Tensor drows = dh.slice(0, n0, n0 + n);
      for (int64_t r = 0; r < n; ++r) cpu::from_f32(dhc + r * C, cpu::at(drows, r), dh.dtype(), C);
    }
    if (want_dw) dw_blocks(o, logits, dl16, V, V, rb, dw.ptr<float>());  // dw [V, C] += dlogits^T @ h
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
  const bool bf16 = h.dtype() == DType::BF16 && w_rows.dtype() == DType::BF16 && C > 0 && onednn_bf16_ready();
  const cpu::F32Matrix W = bf16 ? cpu::F32Matrix{} : cpu::f32_matrix(w_rows, op, "w_rows");
  // The caller passes the chunk cross_entropy resolved (0 would size the chunks for R rows, not V).
  const int64_t chunk = default_ce_chunk_tokens(R, N, chunk_tokens);
  const int64_t rb = row_block > 0 ? row_block : R;
  const int64_t dl16_floats = bf16 ? (chunk * R + 1) / 2 : 0;
  float* const logits = workspace(static_cast<size_t>(chunk * (R + C) + dl16_floats));
  float* const hc = logits + chunk * R;
  auto* const dl16 = reinterpret_cast<uint16_t*>(hc + chunk * C);
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t n = std::min(chunk, N - n0);
    const CeOperands o{h.slice(0, n0, n0 + n), hc, w_rows, W, bf16};
    if (!bf16) {
      for (int64_t r = 0; r < n; ++r) cpu::to_f32(cpu::at(o.hrows, r), h.dtype(), hc + r * C, C);
    }
    for (int64_t b0 = 0; b0 < R; b0 += rb) logits_block(o, b0, std::min(rb, R - b0), logits + b0, R);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      float* l = logits + r * R;
      const int32_t t = tg[n0 + r];
      if (t < 0) {
        std::fill(l, l + R, 0.0f);
      } else {
        exp_shifted(l, st[2 * (n0 + r)], R);
        scale_row(l, grad_scale / st[2 * (n0 + r) + 1], R);
        if (t >= row0 && t < row0 + R) l[t - row0] -= grad_scale;
      }
      if (bf16) cpu::from_f32(l, dl16 + r * R, DType::BF16, R);
    }
    dw_blocks(o, logits, dl16, R, R, rb, dw_rows.ptr<float>());  // dw_rows [R, C] += dlogits^T @ h
  }
}

}  // namespace llm
