// matmul / bias_backward on the CPU: OpenBLAS sgemm, f16/bf16 operands converted to fp32 first.
#include <cblas.h>

#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace llm {

void CpuBackend::matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, float alpha,
                        float beta, const Tensor* bias) {
  const char* op = "matmul";
  LLM_CHECK(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, op, ": a, b, c must be 2-D, got ", a.shape_str(), ", ",
            b.shape_str(), ", ", c.shape_str());
  const int64_t M = trans_a ? a.size(1) : a.size(0);
  const int64_t K = trans_a ? a.size(0) : a.size(1);
  const int64_t Kb = trans_b ? b.size(1) : b.size(0);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  LLM_CHECK(K == Kb, op, ": inner dimensions differ: op(a) is [", M, ", ", K, "], op(b) is [", Kb, ", ", N, "]");
  check_shape(c, {M, N}, op, "c");
  cpu::check_rows(c, op, "c");
  if (bias != nullptr) {
    cpu::check_rows(*bias, op, "bias");
    check_shape(*bias, {N}, op, "bias");
  }
  if (M == 0 || N == 0) return;

  const cpu::F32Matrix A = cpu::f32_matrix(a, op, "a");
  const cpu::F32Matrix B = cpu::f32_matrix(b, op, "b");
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
    std::vector<float> bf(static_cast<size_t>(N));
    cpu::to_f32(bias->data(), bias->dtype(), bf.data(), N);
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
  } else if (M == 1 && !trans_a) {
    // One row (decode): a matrix-vector product. sgemm's packing would read the matrix twice.
    // c[1, N] = a[1, K] @ op(b): op(b) = b^T [K, N] is b [N, K] times a; else b [K, N] transposed.
    cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans, static_cast<blasint>(trans_b ? N : K),
                static_cast<blasint>(trans_b ? K : N), alpha, B.data, static_cast<blasint>(B.ld), A.data, 1, beta, C, 1);
  } else {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A.data,
                static_cast<blasint>(A.ld), B.data, static_cast<blasint>(B.ld), beta, C, static_cast<blasint>(ldc));
  }
  if (!c_f32) {
#pragma omp parallel for schedule(static) if (M * N > 65536)
    for (int64_t r = 0; r < M; ++r) cpu::from_f32(C + r * N, cpu::at(c, r), c.dtype(), N);
  }
}

void CpuBackend::bias_backward(const Tensor& dy, const Tensor& db) {
  const char* op = "bias_backward";
  cpu::check_rows(dy, op, "dy");
  LLM_CHECK(dy.ndim() == 2, op, ": dy must be [N, C], got ", dy.shape_str());
  check_dtype(db, DType::F32, op, "db");
  check_shape(db, {dy.size(1)}, op, "db");
  const int64_t N = dy.size(0), C = dy.size(1);
  float* out = db.ptr<float>();
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (C + kBlock - 1) / kBlock;
  // Column blocks per thread, rows in order: the same sums whatever the thread count.
#pragma omp parallel if (N * C > cpu::kParallelMinWork)
  {
    std::vector<float> row(kBlock), acc(kBlock);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kBlock, width = std::min(C, c0 + kBlock) - c0;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t n = 0; n < N; ++n) {
        cpu::to_f32(cpu::at(dy, n) + c0 * int64_t(dtype_size(dy.dtype())), dy.dtype(), row.data(), width);
        for (int64_t c = 0; c < width; ++c) acc[static_cast<size_t>(c)] += row[static_cast<size_t>(c)];
      }
      for (int64_t c = 0; c < width; ++c) out[c0 + c] += acc[static_cast<size_t>(c)];
    }
  }
}

}  // namespace llm
