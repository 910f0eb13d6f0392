// cross_entropy on the GPU: the output layer and the loss fused over chunks of tokens, so the
// [N, V] logits never exist at once. Per chunk of n tokens (default_ce_chunk_tokens):
//   logits [n, V] f32      = h [n, C] @ w^T                 cuBLASLt, compute dtype in, fp32 out
//   losses, dlogits [n, V] = softmax rows (kernels/cross_entropy.cu), dlogits in the compute dtype
//   dh [n, C]              = dlogits @ w                    cuBLASLt, fp32 accumulation
//   dw [V, C] f32         += dlogits^T @ h                  cuBLASLt, beta = 1
// cuBLASLt is column-major: a row-major [r, c] matrix with row stride ld is a column-major
// [c, r] matrix with the same ld, which is how every operand below is described.
#include <algorithm>
#include <climits>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/lt_plan.h"
#include "cross_entropy.cuh"
#include "llm/memory_plan.h"

namespace llm::LLM_CUDA_NS {
namespace {

// d = op(a) @ op(b) + beta * d with fp32 compute (no TF32: the op must match the CPU's fp32),
// through the plan cache (lt_plan.h): the heuristic runs once per distinct GEMM, not per call.
void lt_gemm(const CudaBackend& be, bool ta, const LtOperand& a, bool tb, const LtOperand& b, float beta,
             const LtOperand& d) {
  LtGemm g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.a = a;
  g.b = b;
  g.d = d;
  lt_matmul(be, g, 1.0f, beta, [&] {
    return cat("cross_entropy: cuBLASLt has no algorithm for a ", d.rows, " x ", d.cols, " x ", ta ? a.rows : a.cols,
               " product of ", dtype_name(a.type), " into ", dtype_name(d.type));
  });
}

int64_t row_stride(const Tensor& t) { return t.size(0) > 1 ? t.stride(0) : t.size(1); }
int64_t vec_stride(const Tensor& t) { return t.size(0) > 1 ? t.stride(0) : 1; }

constexpr size_t kAlign = 256;
size_t align_up(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

}  // namespace

void CudaBackend::do_cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses,
                                   const Tensor& dh, const Tensor& dw, float grad_scale, int64_t chunk_tokens,
                                   const Tensor& stats, int64_t /*row_block: one GEMM over all rows here*/) {
  const char* op = "cross_entropy";
  const int64_t N = h.size(0), C = h.size(1), V = w.size(0);
  const bool want_dh = !dh.empty(), want_dw = !dw.empty(), grad = want_dh || want_dw;
  // cuBLASLt multiplies two operands of one type; the model keeps h and w in the compute dtype.
  LLM_CHECK(h.dtype() == w.dtype(), op, ": h is ", dtype_name(h.dtype()), " and w is ", dtype_name(w.dtype()),
            "; the CUDA op needs them in one dtype");
  LLM_CHECK(N < 0x7f7f7f7f, op, ": ", N, " tokens are more than the CUDA op handles in one call");

  const DType ct = h.dtype();
  const int64_t chunk = default_ce_chunk_tokens(V, N, chunk_tokens);
  // dlogits in the compute dtype feed the two gradient GEMMs; in fp32 they replace the logits in
  // place. dh goes straight from cuBLASLt when its dtype is f32 or the compute dtype (cuBLASLt's
  // output is one of those), else through fp32 scratch.
  const bool separate_dlogits = grad && ct != DType::F32;
  // An empty vocabulary has no GEMM to write dh (= 0): it goes through the scratch too.
  const bool dh_scratch = want_dh && ((dh.dtype() != DType::F32 && dh.dtype() != ct) || V == 0);
  const auto cv = static_cast<size_t>(chunk * V), cc = static_cast<size_t>(chunk * C);
  const size_t off_logits = kAlign;  // the first bytes hold the target check's flag
  const size_t off_dlogits = off_logits + align_up(cv * 4);
  const size_t off_dh = off_dlogits + (separate_dlogits ? align_up(cv * dtype_size(ct)) : 0);
  const size_t total = off_dh + (dh_scratch ? cc * 4 : 0);
  auto* const base = static_cast<unsigned char*>(workspace(total));
  int* const flag = reinterpret_cast<int*>(base);
  float* const logits = reinterpret_cast<float*>(base + off_logits);
  void* const dlogits = separate_dlogits ? static_cast<void*>(base + off_dlogits) : static_cast<void*>(logits);
  float* const dh_f32 = reinterpret_cast<float*>(base + off_dh);

  // Targets live on the device: one flag (the first bad position), read back once, before
  // anything is written, so a bad batch leaves losses and dw as they were (as on the CPU).
  const int32_t* tg = targets.ptr<int32_t>();
  const int64_t tstride = vec_stride(targets);
  LLM_CUDA_CHECK(cudaMemsetAsync(flag, 0x7f, sizeof(int), stream_));
  ce_check_targets(tg, tstride, N, V, flag, stream_);
  constexpr int kNoFlag = 0x7f7f7f7f;  // the memset's bytes: no position is that large
  int bad = kNoFlag;
  LLM_CUDA_CHECK(cudaMemcpyAsync(&bad, flag, sizeof bad, cudaMemcpyDeviceToHost, stream_));
  LLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (bad != kNoFlag) {
    int32_t value = 0;
    LLM_CUDA_CHECK(cudaMemcpyAsync(&value, tg + bad * tstride, sizeof value, cudaMemcpyDeviceToHost, stream_));
    LLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    fail(op, ": target ", value, " at position ", bad, " is outside the vocabulary [0, ", V, ")");
  }

  const int64_t ldh = row_stride(h), ldw = row_stride(w);
  const size_t hsize = dtype_size(ct);
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t n = std::min(chunk, N - n0);
    const void* hc = h.ptr<unsigned char>() + static_cast<size_t>(n0 * ldh) * hsize;
    // logits^T [V, n] = w [C, V]^T @ h^T [C, n]  (column-major views of w [V, C] and h [n, C])
    if (C > 0 && V > 0) {
      lt_gemm(*this, true, {w.data(), ct, C, V, ldw}, false, {hc, ct, C, n, ldh}, 0.0f, {logits, DType::F32, V, n, V});
    } else {
      LLM_CUDA_CHECK(cudaMemsetAsync(logits, 0, static_cast<size_t>(n * V) * 4, stream_));
    }
    const int64_t lstride = vec_stride(losses);
    ce_softmax_rows(logits, n, V, tg + n0 * tstride, tstride, losses.ptr<float>() + n0 * lstride, lstride,
                    grad ? dlogits : nullptr, ct, grad_scale, stats.empty() ? nullptr : stats.ptr<float>() + 2 * n0,
                    stream_);
    if (!grad || C == 0) continue;
    if (want_dh) {
      // dh^T [C, n] = w^T [C, V] @ dlogits^T [V, n]
      const int64_t lddh = row_stride(dh);
      void* dst =
          dh_scratch
              ? static_cast<void*>(dh_f32)
              : static_cast<void*>(dh.ptr<unsigned char>() + static_cast<size_t>(n0 * lddh) * dtype_size(dh.dtype()));
      if (V > 0) {
        lt_gemm(*this, false, {w.data(), ct, C, V, ldw}, false, {dlogits, ct, V, n, V}, 0.0f,
                {dst, dh_scratch ? DType::F32 : dh.dtype(), C, n, dh_scratch ? C : lddh});
      } else {
        LLM_CUDA_CHECK(cudaMemsetAsync(dh_f32, 0, static_cast<size_t>(n * C) * 4, stream_));
      }
      if (dh_scratch) {
        ce_store_rows(dh_f32, n, C, dh.ptr<unsigned char>() + static_cast<size_t>(n0 * lddh) * dtype_size(dh.dtype()),
                      dh.dtype(), lddh, stream_);
      }
    }
    if (want_dw && V > 0) {
      // dw^T [C, V] += h^T [C, n] @ dlogits [n, V]  (dlogits^T [V, n] transposed)
      lt_gemm(*this, false, {hc, ct, C, n, ldh}, true, {dlogits, ct, V, n, V}, 1.0f, {dw.data(), DType::F32, C, V, C});
    }
  }
}

// Per chunk (the one cross_entropy used): logits [n, R] of w_rows, dlogits from the saved row
// statistics (kernels/cross_entropy.cu), dw_rows += dlogits^T @ h.
void CudaBackend::do_cross_entropy_dw(const Tensor& h, const Tensor& w_rows, int64_t row0, const Tensor& targets,
                                      const Tensor& stats, const Tensor& dw_rows, float grad_scale,
                                      int64_t chunk_tokens, int64_t /*row_block*/) {
  const char* op = "cross_entropy_dw";
  const int64_t N = h.size(0), C = h.size(1), R = w_rows.size(0);
  LLM_CHECK(h.dtype() == w_rows.dtype(), op, ": h is ", dtype_name(h.dtype()), " and w_rows is ",
            dtype_name(w_rows.dtype()), "; the CUDA op needs them in one dtype");
  if (C == 0) return;
  const DType ct = h.dtype();
  const int64_t chunk = default_ce_chunk_tokens(R, N, chunk_tokens);
  const bool separate_dlogits = ct != DType::F32;
  const auto cr = static_cast<size_t>(chunk * R);
  auto* const base =
      static_cast<unsigned char*>(workspace(align_up(cr * 4) + (separate_dlogits ? cr * dtype_size(ct) : 0)));
  float* const logits = reinterpret_cast<float*>(base);
  void* const dlogits = separate_dlogits ? static_cast<void*>(base + align_up(cr * 4)) : static_cast<void*>(logits);
  const int32_t* tg = targets.ptr<int32_t>();
  const int64_t tstride = vec_stride(targets), ldh = row_stride(h), ldw = row_stride(w_rows);
  const size_t hsize = dtype_size(ct);
  for (int64_t n0 = 0; n0 < N; n0 += chunk) {
    const int64_t n = std::min(chunk, N - n0);
    const void* hc = h.ptr<unsigned char>() + static_cast<size_t>(n0 * ldh) * hsize;
    // logits^T [R, n] = w_rows [C, R]^T @ h^T [C, n]
    lt_gemm(*this, true, {w_rows.data(), ct, C, R, ldw}, false, {hc, ct, C, n, ldh}, 0.0f,
            {logits, DType::F32, R, n, R});
    ce_dlogits_cols(logits, n, R, row0, tg + n0 * tstride, tstride, stats.ptr<float>() + 2 * n0, dlogits, ct,
                    grad_scale, stream_);
    // dw_rows^T [C, R] += h^T [C, n] @ dlogits [n, R]
    lt_gemm(*this, false, {hc, ct, C, n, ldh}, true, {dlogits, ct, R, n, R}, 1.0f,
            {dw_rows.data(), DType::F32, C, R, C});
  }
}

}  // namespace llm::LLM_CUDA_NS
