// attention_forward / attention_backward on the CPU: causal GQA, blocks of queries against all the
// keys they may see, scores in fp32 through sgemm, never more than a block's scores at once.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "backend/cpu/attention_rows.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/onednn_gemm.h"

namespace llm {

using cpu::first_key;

namespace {

// 64 queries a block: the causal block on the diagonal computes half its scores for nothing, so
// smaller blocks waste less; below 64 the products get too small. Of 32, 64 and 128, 64 trained
// fastest on tiny (seq 128) and bench50m (seq 256).
constexpr int64_t kQueryBlock = 64;

// rows t0..t1 of head h of batch b of x [B, T, H, D] as a dense fp32 [t1 - t0, D] matrix in dst.
void gather_rows(const Tensor& x, int64_t b, int64_t h, int64_t t0, int64_t t1, float* dst) {
  const int64_t D = x.size(3);
  for (int64_t t = t0; t < t1; ++t) cpu::to_f32(cpu::at(x, b, t, h), x.dtype(), dst + (t - t0) * D, D);
}

// Rows t0..t1 of head h of batch b of x as an fp32 matrix: x's own memory (with its row
// stride) when it is f32, else a converted dense copy in `scratch`. Returns the row pointer and
// sets ld.
const float* rows_f32(const Tensor& x, int64_t b, int64_t h, int64_t t0, int64_t t1, std::vector<float>& scratch,
                      int64_t& ld) {
  if (x.dtype() == DType::F32) {
    ld = x.stride(1);
    return reinterpret_cast<const float*>(cpu::at(x, b, t0, h));
  }
  scratch.resize(static_cast<size_t>((t1 - t0) * x.size(3)));
  gather_rows(x, b, h, t0, t1, scratch.data());
  ld = x.size(3);
  return scratch.data();
}

void scatter_rows(const float* src, const Tensor& x, int64_t b, int64_t h, int64_t t0, int64_t t1) {
  const int64_t D = x.size(3);
  for (int64_t t = t0; t < t1; ++t) cpu::from_f32(src + (t - t0) * D, cpu::at(x, b, t, h), x.dtype(), D);
}

// The score and gradient products, one thread each (they run inside the parallel loop over heads
// and blocks): oneDNN's sgemm on AVX-512 CPUs (`dnnl`), whose kernels follow CPUID and measured
// 1.4-1.6x OpenBLAS's at these small shapes under the Haswell kernels OPENBLAS_CORETYPE may pin
// (docs/results.md); OpenBLAS elsewhere.
void gemm(bool dnnl, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (dnnl) return cpu::OnednnGemm::f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<blasint>(M),
              static_cast<blasint>(N), static_cast<blasint>(K), alpha, A, static_cast<blasint>(lda), B,
              static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

// The row reductions keep kLanes partial results, so that they vectorise: one running sum or max
// is a chain of dependent instructions, 4 cycles an element.
constexpr int64_t kLanes = 16;

// Row softmax of s[lo..n) in place; entries 0..lo and n..width are set to 0 (keys of earlier
// documents, future keys). Returns the log-sum-exp.
LLM_CPU_CLONES float softmax_row(float* s, int64_t lo, int64_t n, int64_t width) {
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<float>::infinity());
  int64_t j = lo;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] = std::max(lanes[l], s[j + l]);
  }
  float mx = *std::max_element(lanes, lanes + kLanes);
  for (; j < n; ++j) mx = std::max(mx, s[j]);
  for (int64_t i = 0; i < lo; ++i) s[i] = 0.0f;
  std::fill(lanes, lanes + kLanes, 0.0f);
  for (j = lo; j + kLanes <= n; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) {
      s[j + l] = cpu::fast_exp(s[j + l] - mx);
      lanes[l] += s[j + l];
    }
  }
  float sum = 0.0f;
  for (; j < n; ++j) {
    s[j] = cpu::fast_exp(s[j] - mx);
    sum += s[j];
  }
  for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
  const float inv = 1.0f / sum;
  for (j = lo; j < n; ++j) s[j] *= inv;
  for (j = n; j < width; ++j) s[j] = 0.0f;
  return mx + std::log(sum);
}

// p = exp(s - lse) over the visible keys [lo, n), 0 elsewhere; then ds = p * (dp - di) in place of dp.
LLM_CPU_CLONES void softmax_grad_row(float* s, float* dp, float lse, float di, int64_t lo, int64_t n, int64_t width) {
  for (int64_t j = 0; j < lo; ++j) {
    s[j] = 0.0f;
    dp[j] = 0.0f;
  }
  for (int64_t j = lo; j < n; ++j) {
    s[j] = cpu::fast_exp(s[j] - lse);
    dp[j] = s[j] * (dp[j] - di);
  }
  for (int64_t j = n; j < width; ++j) {
    s[j] = 0.0f;
    dp[j] = 0.0f;
  }
}

struct Dims {
  int64_t B, Tq, Tk, Hq, Hkv, D, group;
};

// The sizes of checked q [B, Tq, Hq, D] and k [B, Tk, Hkv, D].
Dims dims(const Tensor& q, const Tensor& k) {
  Dims d{q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), 0};
  d.group = d.Hq / d.Hkv;
  return d;
}

}  // namespace

void CpuBackend::do_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                      const Tensor& lse, const Tensor& positions) {
  // bf16 prompts and training: vdpbf16ps products (attention_bf16.cpp); one query per row
  // (decode) stays here, on matrix-vector products.
  if (q.size(1) > 1 && native_bf16_attention() && cpu::attention_bf16_applies({&q, &k, &v, &out})) {
    cpu::attention_forward_bf16(q, k, v, out, lse, positions);
    return;
  }
  const Dims d = dims(q, k);
  const int32_t* pos = positions.empty() ? nullptr : positions.ptr<int32_t>();  // [B, T], Tq == Tk
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.D));
  const int64_t blocks = (d.Tq + kQueryBlock - 1) / kQueryBlock;
  const int64_t offset = d.Tk - d.Tq;  // query t is at absolute position offset + t
  const int64_t tasks = d.B * d.Hq * blocks;
  const bool dnnl = onednn_f32_ && onednn_->avx512();
#pragma omp parallel if (tasks * (d.Tk + 1) * d.D > cpu::kParallelMinWork)
  {
    std::vector<float> qb, kb, vb, s, ob;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / (d.Hq * blocks), h = (task / blocks) % d.Hq, blk = task % blocks;
      const int64_t g = h / d.group;
      const int64_t t0 = blk * kQueryBlock, t1 = std::min(d.Tq, t0 + kQueryBlock), nq = t1 - t0;
      const int64_t nk = offset + t1;  // keys visible to the block's last query
      s.resize(static_cast<size_t>(nq * nk));
      ob.resize(static_cast<size_t>(nq * d.D));
      // f32 inputs are read in place (the KV cache, the fused q/k/v buffer); others converted.
      int64_t ldq = 0, ldk = 0, ldv = 0;
      const float* Q = rows_f32(q, b, h, t0, t1, qb, ldq);
      const float* K = rows_f32(k, b, g, 0, nk, kb, ldk);
      const float* V = rows_f32(v, b, g, 0, nk, vb, ldv);
      if (nq == 1) {
        // One query (decode): matrix-vector products. s [nk] = scale * K q; out [D] = V^T p
        cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<blasint>(nk), static_cast<blasint>(d.D), scale, K,
                    static_cast<blasint>(ldk), Q, 1, 0.0f, s.data(), 1);
        const float l = softmax_row(s.data(), first_key(pos, b, d.Tq, t0), offset + t0 + 1, nk);
        if (!lse.empty()) lse.ptr<float>()[(b * d.Hq + h) * d.Tq + t0] = l;
        cblas_sgemv(CblasRowMajor, CblasTrans, static_cast<blasint>(nk), static_cast<blasint>(d.D), 1.0f, V,
                    static_cast<blasint>(ldv), s.data(), 1, 0.0f, ob.data(), 1);
        scatter_rows(ob.data(), out, b, h, t0, t1);
        continue;
      }
      // s [nq, nk] = scale * q [nq, D] @ k^T [D, nk]
      gemm(dnnl, false, true, nq, nk, d.D, scale, Q, ldq, K, ldk, 0.0f, s.data(), nk);
      for (int64_t i = 0; i < nq; ++i) {
        const float l = softmax_row(s.data() + i * nk, first_key(pos, b, d.Tq, t0 + i), offset + t0 + i + 1, nk);
        if (!lse.empty()) lse.ptr<float>()[(b * d.Hq + h) * d.Tq + t0 + i] = l;
      }
      // out [nq, D] = p [nq, nk] @ v [nk, D]
      gemm(dnnl, false, false, nq, d.D, nk, 1.0f, s.data(), nk, V, ldv, 0.0f, ob.data(), d.D);
      scatter_rows(ob.data(), out, b, h, t0, t1);
    }
  }
}

void CpuBackend::do_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                       const Tensor& out, const Tensor& lse, const Tensor& dq, const Tensor& dk,
                                       const Tensor& dv, const Tensor& positions) {
  if (native_bf16_attention() && cpu::attention_bf16_applies({&dout, &q, &k, &v, &out, &dq})) {
    cpu::attention_backward_bf16(dout, q, k, v, out, lse, dq, dk, dv, positions);
    return;
  }
  const Dims d = dims(q, k);
  const int32_t* pos = positions.empty() ? nullptr : positions.ptr<int32_t>();  // [B, T]
  const int64_t T = d.Tq, D = d.D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t blocks = (T + kQueryBlock - 1) / kQueryBlock;
  const bool dnnl = onednn_f32_ && onednn_->avx512();
  // dK and dV of every query head, summed over each kv group afterwards in head order, so the
  // result does not depend on which thread ran which head.
  std::vector<float> dk_heads(static_cast<size_t>(d.B * d.Hq * T * D));
  std::vector<float> dv_heads(static_cast<size_t>(d.B * d.Hq * T * D));
#pragma omp parallel if (d.B * d.Hq * T * T * D > cpu::kParallelMinWork)
  {
    std::vector<float> qb, dob, ob, kb, vb, s, dp, dqb, di;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < d.B * d.Hq; ++task) {
      const int64_t b = task / d.Hq, h = task % d.Hq, g = h / d.group;
      float* dkh = dk_heads.data() + task * T * D;
      float* dvh = dv_heads.data() + task * T * D;
      std::fill(dkh, dkh + T * D, 0.0f);
      std::fill(dvh, dvh + T * D, 0.0f);
      kb.resize(static_cast<size_t>(T * D));
      vb.resize(static_cast<size_t>(T * D));
      gather_rows(k, b, g, 0, T, kb.data());
      gather_rows(v, b, g, 0, T, vb.data());
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t t0 = blk * kQueryBlock, t1 = std::min(T, t0 + kQueryBlock), nq = t1 - t0, nk = t1;
        qb.resize(static_cast<size_t>(nq * D));
        dob.resize(static_cast<size_t>(nq * D));
        ob.resize(static_cast<size_t>(nq * D));
        dqb.resize(static_cast<size_t>(nq * D));
        s.resize(static_cast<size_t>(nq * nk));
        dp.resize(static_cast<size_t>(nq * nk));
        di.resize(static_cast<size_t>(nq));
        gather_rows(q, b, h, t0, t1, qb.data());
        gather_rows(dout, b, h, t0, t1, dob.data());
        gather_rows(out, b, h, t0, t1, ob.data());
        for (int64_t i = 0; i < nq; ++i) {
          float acc = 0.0f;
          for (int64_t c = 0; c < D; ++c)
            acc += dob[static_cast<size_t>(i * D + c)] * ob[static_cast<size_t>(i * D + c)];
          di[static_cast<size_t>(i)] = acc;
        }
        // s = scale q k^T; dp = dout v^T, both [nq, nk]
        gemm(dnnl, false, true, nq, nk, D, scale, qb.data(), D, kb.data(), D, 0.0f, s.data(), nk);
        gemm(dnnl, false, true, nq, nk, D, 1.0f, dob.data(), D, vb.data(), D, 0.0f, dp.data(), nk);
        const float* l = lse.ptr<float>() + (b * d.Hq + h) * T;
        for (int64_t i = 0; i < nq; ++i) {
          softmax_grad_row(s.data() + i * nk, dp.data() + i * nk, l[t0 + i], di[static_cast<size_t>(i)],
                           first_key(pos, b, T, t0 + i), t0 + i + 1, nk);
        }
        // dq [nq, D] = scale ds @ k;  dk [nk, D] += scale ds^T @ q;  dv [nk, D] += p^T @ dout
        gemm(dnnl, false, false, nq, D, nk, scale, dp.data(), nk, kb.data(), D, 0.0f, dqb.data(), D);
        gemm(dnnl, true, false, nk, D, nq, scale, dp.data(), nk, qb.data(), D, 1.0f, dkh, D);
        gemm(dnnl, true, false, nk, D, nq, 1.0f, s.data(), nk, dob.data(), D, 1.0f, dvh, D);
        scatter_rows(dqb.data(), dq, b, h, t0, t1);
      }
    }
    std::vector<float> acc_k(static_cast<size_t>(D)), acc_v(static_cast<size_t>(D));
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < d.B; ++b) {
      for (int64_t t = 0; t < T; ++t) {
        for (int64_t g = 0; g < d.Hkv; ++g) {
          std::fill(acc_k.begin(), acc_k.end(), 0.0f);
          std::fill(acc_v.begin(), acc_v.end(), 0.0f);
          for (int64_t h = g * d.group; h < (g + 1) * d.group; ++h) {
            const float* sk = dk_heads.data() + ((b * d.Hq + h) * T + t) * D;
            const float* sv = dv_heads.data() + ((b * d.Hq + h) * T + t) * D;
            for (int64_t c = 0; c < D; ++c) {
              acc_k[static_cast<size_t>(c)] += sk[c];
              acc_v[static_cast<size_t>(c)] += sv[c];
            }
          }
          cpu::from_f32(acc_k.data(), cpu::at(dk, b, t, g), dk.dtype(), D);
          cpu::from_f32(acc_v.data(), cpu::at(dv, b, t, g), dv.dtype(), D);
        }
      }
    }
  }
}

}  // namespace llm
