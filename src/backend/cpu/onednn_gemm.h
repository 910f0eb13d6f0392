// Matrix products through oneDNN where its kernels beat the OpenBLAS path: bf16 x bf16 -> fp32 on
// CPUs with AVX512-BF16 or AMX (vdpbf16ps), which OpenBLAS's sgemm after widening cannot use.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace llm::cpu {

class OnednnGemm {
 public:
  OnednnGemm();
  ~OnednnGemm();
  OnednnGemm(const OnednnGemm&) = delete;
  OnednnGemm& operator=(const OnednnGemm&) = delete;

  // True when oneDNN multiplies bf16 with native instructions on this CPU (its effective ISA is
  // avx512_core_bf16 or an AMX level); elsewhere it would emulate them, slower than widening.
  bool bf16_native() const { return bf16_native_; }
  // True when oneDNN's kernels run at AVX-512 or above here, whatever OPENBLAS_CORETYPE says.
  bool avx512() const { return avx512_; }

  // c[M, N] = alpha * op(a) @ op(b) + beta * c, fp32 accumulation. a is bf16 [M, K] with rows lda
  // apart, or [K, M] when ta; b is bf16 [K, N] (ldb), or [N, K] when tb; c is fp32 (ldc). The
  // primitives are cached by shape, strides and scalars (creating one measured 0.06-0.8 ms).
  void bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* a, int64_t lda,
            const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) {
    bf16_product(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, false, ldc, nullptr);
  }
  // The same with a bf16 c, rounded once from the fp32 accumulators (no fp32 copy of c), plus an
  // fp32 bias [N] added to every row when bias is not null (then alpha must be 1).
  void bf16_to_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* a, int64_t lda,
                    const uint16_t* b, int64_t ldb, float beta, uint16_t* c, int64_t ldc, const float* bias) {
    bf16_product(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, true, ldc, bias);
  }

  // The same for fp32 operands (dnnl_sgemm: oneDNN's JIT kernels, chosen by CPUID).
  static void f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
                  const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

 private:
  void bf16_product(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* a, int64_t lda,
                    const uint16_t* b, int64_t ldb, float beta, void* c, bool c_bf16, int64_t ldc, const float* bias);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool bf16_native_ = false;
  bool avx512_ = false;
};

// "oneDNN 2.6.3 (avx512_core_bf16)": the library version and the ISA its kernels run at.
std::string onednn_description();

}  // namespace llm::cpu
