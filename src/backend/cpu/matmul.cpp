// matmul / bias_backward on the CPU: OpenBLAS sgemm, f16/bf16 operands converted to fp32 first,
// except bf16 x bf16 products on CPUs with AVX512-BF16, which oneDNN multiplies natively, and
// large fp32 products on AVX-512 CPUs, which go to oneDNN's sgemm (docs/results.md, "CPU GEMM").
#include <cblas.h>

#include <algorithm>
#include <bit>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/onednn_gemm.h"
#include "backend/op_checks.h"

namespace llm {

namespace {

constexpr int64_t kMaxGemvRows = 8;
// fp32 products of at least this many rows go to oneDNN's sgemm on AVX-512 CPUs: it picks its
// kernels by CPUID, where OpenBLAS follows OPENBLAS_CORETYPE from the user's shell, and measured
// 1.14x OpenBLAS (geometric mean, Haswell or SkylakeX kernels) from 512 rows up, mixed at 64
// (bench/gemm_choice, docs/results.md).
constexpr int64_t kOnednnMinRows = 256;

// c[m, n] (+)= alpha * sum_k a[m, k] * w[n, k] for up to kMaxGemvRows rows of a, reading the f16 or
// bf16 weights w [N, K] once and converting in registers: decode with half-precision weights is
// bound by reading them, and widening them to fp32 first would triple the traffic.
template <bool kBf16, int M>
LLM_CPU_CLONES void gemv_half_rows(const uint16_t* w, int64_t ldw, const float* a, int64_t lda, int64_t K, int64_t n0,
                                   int64_t n1, float alpha, float beta, float* c, int64_t ldc) {
  for (int64_t n = n0; n < n1; ++n) {
    const uint16_t* row = w + n * ldw;
    float acc[M][16] = {};
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      float wf[16];
      for (int j = 0; j < 16; ++j) {
        wf[j] = kBf16 ? std::bit_cast<float>(static_cast<uint32_t>(row[k + j]) << 16) : f16_bits_to_f32(row[k + j]);
      }
      for (int m = 0; m < M; ++m)
        for (int j = 0; j < 16; ++j) acc[m][j] += wf[j] * a[m * lda + k + j];
    }
    for (int m = 0; m < M; ++m) {
      float s = 0;
      for (int j = 0; j < 16; ++j) s += acc[m][j];
      for (int64_t kk = k; kk < K; ++kk) {
        const float wv = kBf16 ? std::bit_cast<float>(static_cast<uint32_t>(row[kk]) << 16) : f16_bits_to_f32(row[kk]);
        s += wv * a[m * lda + kk];
      }
      float& out = c[m * ldc + n];
      out = alpha * s + (beta == 0.0f ? 0.0f : beta * out);
    }
  }
}

// Dispatches the row count to a compile-time M so the accumulators live in registers.
template <bool kBf16>
void gemv_half(const uint16_t* w, int64_t ldw, const float* a, int64_t lda, int64_t M, int64_t K, int64_t n0,
               int64_t n1, float alpha, float beta, float* c, int64_t ldc) {
  // clang-format off
  switch (M) {
#define LLM_GEMV_CASE(m) \
    case m: return gemv_half_rows<kBf16, m>(w, ldw, a, lda, K, n0, n1, alpha, beta, c, ldc);
    LLM_GEMV_CASE(1) LLM_GEMV_CASE(2) LLM_GEMV_CASE(3) LLM_GEMV_CASE(4)
    LLM_GEMV_CASE(5) LLM_GEMV_CASE(6) LLM_GEMV_CASE(7) LLM_GEMV_CASE(8)
#undef LLM_GEMV_CASE
    default: fail("matmul: internal: ", M, " rows for the half-precision GEMV");
  }
  // clang-format on
}

// The bias [N] in fp32; empty without one.
std::vector<float> bias_f32(const Tensor* bias, int64_t N) {
  std::vector<float> b(bias != nullptr ? static_cast<size_t>(N) : 0);
  if (bias != nullptr) cpu::to_f32(bias->data(), bias->dtype(), b.data(), N);
  return b;
}

}  // namespace

void CpuBackend::do_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, float alpha,
                           float beta, const Tensor* bias) {
  const char* op = "matmul";
  const int64_t M = trans_a ? a.size(1) : a.size(0);
  const int64_t K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  const bool half_weights = b.dtype() == DType::BF16 || b.dtype() == DType::F16;
  // bf16 x bf16 with native bf16 dot products: oneDNN reads the operands as they are, no widening.
  const bool onednn_bf16 = onednn_bf16_ && a.dtype() == DType::BF16 && b.dtype() == DType::BF16 && K > 0 && M > 0 &&
                           N > 0 && onednn_->bf16_native();
  // A few rows against f16/bf16 weights [N, K] (decode): read the weights in place. From 2 bf16
  // rows on, where the CPU has bf16 dot products, oneDNN's kernels instead: the GEMV's fp32 FMAs
  // bound a batched step by arithmetic (8 rows of the 0.5B MLP's 4864 x 896: 1.5 ms), oneDNN's
  // stays bound by the weights' bandwidth (0.38 ms).
  if (half_weights && trans_b && !trans_a && M <= kMaxGemvRows && K > 0 && !(onednn_bf16 && M >= 2)) {
    const cpu::F32Matrix A = cpu::f32_matrix(a, op, "a");
    std::vector<float> cbuf(c.dtype() == DType::F32 ? 0 : static_cast<size_t>(M * N));
    float* C = c.dtype() == DType::F32 ? c.ptr<float>() : cbuf.data();
    const int64_t ldc = c.dtype() == DType::F32 ? (M > 1 ? c.stride(0) : N) : N;
    if (c.dtype() != DType::F32 && beta != 0.0f) {
      for (int64_t r = 0; r < M; ++r) cpu::to_f32(cpu::at(c, r), c.dtype(), C + r * N, N);
    }
    const auto* w = b.ptr<uint16_t>();
    const int64_t ldw = N > 1 ? b.stride(0) : K;
    const bool bf = b.dtype() == DType::BF16;
    constexpr int64_t kRowsPerTask = 64;
#pragma omp parallel for schedule(static) if (N * K > cpu::kParallelMinWork)
    for (int64_t n0 = 0; n0 < N; n0 += kRowsPerTask) {
      const int64_t n1 = std::min(N, n0 + kRowsPerTask);
      if (bf) {
        gemv_half<true>(w, ldw, A.data, A.ld, M, K, n0, n1, alpha, beta, C, ldc);
      } else {
        gemv_half<false>(w, ldw, A.data, A.ld, M, K, n0, n1, alpha, beta, C, ldc);
      }
    }
    if (bias != nullptr) {
      const std::vector<float> bf32 = bias_f32(bias, N);
      for (int64_t r = 0; r < M; ++r)
        for (int64_t j = 0; j < N; ++j) C[r * ldc + j] += bf32[static_cast<size_t>(j)];
    }
    if (c.dtype() != DType::F32) {
      for (int64_t r = 0; r < M; ++r) cpu::from_f32(C + r * N, cpu::at(c, r), c.dtype(), N);
    }
    return;
  }
  if (onednn_bf16 && c.dtype() == DType::BF16 && (bias == nullptr || alpha == 1.0f)) {
    // bf16 out (the activations of a bf16 step): oneDNN rounds its fp32 accumulators into c and
    // adds the bias itself, with no fp32 copy of c to allocate, fill and round.
    check_rows(a, op, "a");
    check_rows(b, op, "b");
    check_rows(c, op, "c");
    const std::vector<float> bias32 = bias_f32(bias, N);
    const int64_t lda = a.size(0) > 1 ? a.stride(0) : a.size(1), ldb = b.size(0) > 1 ? b.stride(0) : b.size(1);
    onednn_->bf16_to_bf16(trans_a, trans_b, M, N, K, alpha, a.ptr<uint16_t>(), lda, b.ptr<uint16_t>(), ldb, beta,
                          c.ptr<uint16_t>(), M > 1 ? c.stride(0) : N, bias ? bias32.data() : nullptr);
    return;
  }
  // The product lands in fp32: c itself when it is f32, else a scratch copy rounded at the end.
  std::vector<float> cbuf;
  float* C = c.ptr<float>();
  int64_t ldc = M > 1 ? c.stride(0) : N;
  const bool c_f32 = c.dtype() == DType::F32;
  if (!c_f32) {
    cbuf.resize(static_cast<size_t>(M * N));
    C = cbuf.data();
    ldc = N;
    if (beta != 0.0f) {
      for (int64_t r = 0; r < M; ++r) cpu::to_f32(cpu::at(c, r), c.dtype(), C + r * N, N);
    }
  }
  if (bias != nullptr) {
    const std::vector<float> bf = bias_f32(bias, N);
#pragma omp parallel for schedule(static) if (M * N > 65536)
    for (int64_t r = 0; r < M; ++r) {
      float* row = C + r * ldc;
      if (beta == 0.0f) {
        std::copy(bf.begin(), bf.end(), row);
      } else {
        for (int64_t j = 0; j < N; ++j) row[j] = beta * row[j] + bf[static_cast<size_t>(j)];
      }
    }
    beta = 1.0f;
  }
  if (K == 0) {
    if (bias == nullptr) {
      for (int64_t r = 0; r < M; ++r)
        for (int64_t j = 0; j < N; ++j) C[r * ldc + j] = beta == 0.0f ? 0.0f : beta * C[r * ldc + j];
    }
  } else if (onednn_bf16) {
    check_rows(a, op, "a");
    check_rows(b, op, "b");
    const int64_t lda = a.size(0) > 1 ? a.stride(0) : a.size(1), ldb = b.size(0) > 1 ? b.stride(0) : b.size(1);
    onednn_->bf16(trans_a, trans_b, M, N, K, alpha, a.ptr<uint16_t>(), lda, b.ptr<uint16_t>(), ldb, beta, C, ldc);
  } else if (M == 1 && !trans_a) {
    const cpu::F32Matrix A = cpu::f32_matrix(a, op, "a");
    const cpu::F32Matrix B = cpu::f32_matrix(b, op, "b");
    // One row (decode): a matrix-vector product. sgemm's packing would read the matrix twice.
    // c[1, N] = a[1, K] @ op(b): op(b) = b^T [K, N] is b [N, K] times a; else b [K, N] transposed.
    cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, static_cast<blasint>(trans_b ? N : K),
                static_cast<blasint>(trans_b ? K : N), alpha, B.data, static_cast<blasint>(B.ld), A.data, 1, beta, C,
                1);
  } else {
    const cpu::F32Matrix A = cpu::f32_matrix(a, op, "a");
    const cpu::F32Matrix B = cpu::f32_matrix(b, op, "b");
    gemm_f32(trans_a, trans_b, M, N, K, alpha, A.data, A.ld, B.data, B.ld, beta, C, ldc);
  }
  if (!c_f32) {
#pragma omp parallel for schedule(static) if (M * N > 65536)
    for (int64_t r = 0; r < M; ++r) cpu::from_f32(C + r * N, cpu::at(c, r), c.dtype(), N);
  }
}

bool CpuBackend::onednn_bf16_ready() const { return onednn_bf16_ && onednn_->bf16_native(); }

void CpuBackend::gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
                          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (onednn_f32_ && M >= kOnednnMinRows && onednn_->avx512()) {
    cpu::OnednnGemm::f32(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<blasint>(M),
              static_cast<blasint>(N), static_cast<blasint>(K), alpha, a, static_cast<blasint>(lda), b,
              static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}

void CpuBackend::do_bias_backward(const Tensor& dy, const Tensor& db) {
  const int64_t N = dy.size(0), C = dy.size(1);
  float* out = db.ptr<float>();
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (C + kBlock - 1) / kBlock;
  // Column blocks per thread, rows in order: the same sums whatever the thread count.
#pragma omp parallel if (N * C > cpu::kParallelMinWork)
  {
    std::vector<float> acc(kBlock);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kBlock, width = std::min(C, c0 + kBlock) - c0;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t n = 0; n < N; ++n) {
        cpu::add_widened(cpu::at(dy, n) + c0 * int64_t(dtype_size(dy.dtype())), dy.dtype(), acc.data(), width);
      }
      for (int64_t c = 0; c < width; ++c) out[c0 + c] += acc[static_cast<size_t>(c)];
    }
  }
}

}  // namespace llm
