// CpuBackend: the reference backend. The plainest correct loops, OpenMP over rows, OpenBLAS sgemm
// for the matrix products (oneDNN for bf16 x bf16 on AVX512-BF16 and for large fp32 ones on
// AVX-512: matmul.cpp), fp32 math whatever the storage dtype. Deterministic for a fixed thread
// count; the ops whose result could depend on the thread count (sums, dW, dE) reduce in a fixed
// order over fixed blocks instead.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "llm/backend.h"

namespace llm::cpu {
struct F32Matrix;
}

namespace llm {

namespace cpu {
class OnednnGemm;
}

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int threads = 0);
  ~CpuBackend() override;

  DeviceKind device() const override { return DeviceKind::CPU; }
  std::string name() const override;
  DType auto_compute_dtype() const override { return DType::F32; }
  int threads() const { return threads_; }
  // A grow-only fp32 scratch buffer shared by the ops (uninitialised; one op uses it at a time).
  float* workspace(size_t floats);
  // Whether bf16 x bf16 products use the CPU's native bf16 instructions where it has them
  // (default): oneDNN's AVX512-BF16 kernels, attention's vdpbf16ps kernels; or are widened to fp32
  // for OpenBLAS, the path on every other CPU (tests compare both).
  void set_onednn_bf16(bool on) { onednn_bf16_ = on; }
  // Whether fp32 products of many rows go to oneDNN's sgemm on AVX-512 CPUs (default) or OpenBLAS.
  void set_onednn_f32(bool on) { onednn_f32_ = on; }

  void* raw_alloc(size_t bytes) override;
  void raw_free(void* ptr, size_t bytes) noexcept override;
  void synchronize() override {}

 protected:
  // The ops (Backend's public ones check the arguments first); one file per op family.
  void do_upload(const Tensor& dst, const void* host_src) override;
  void do_download(const Tensor& src, void* host_dst) override;
  void do_copy(const Tensor& src, const Tensor& dst) override;
  void do_zero(const Tensor& t) override;
  void do_fill(const Tensor& t, float value) override;

  void do_embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) override;
  void do_embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable, int64_t row0,
                             int64_t vocab) override;

  void do_rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) override;
  void do_add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float eps, const Tensor& s,
                              const Tensor& y, const Tensor& rstd) override;
  void do_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx,
                           const Tensor& dw, bool accumulate_dx) override;

  void do_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, float alpha, float beta,
                 const Tensor* bias) override;
  void do_bias_backward(const Tensor& dy, const Tensor& db) override;

  void do_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0, bool inverse,
               const Tensor& positions) override;

  void do_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                            const Tensor& positions) override;
  void do_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                             const Tensor& lse, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                             const Tensor& positions) override;
  void do_decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                           const Tensor& v_cache, const Tensor& pos_dev, int64_t pos, const Tensor& out) override;

  void do_swiglu_forward(const Tensor& gate_up, const Tensor& out) override;
  void do_swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) override;

  void do_add(const Tensor& a, const Tensor& b, const Tensor& out) override;
  void do_scale(const Tensor& x, float s) override;
  void do_dropout(const Tensor& x, float p, uint64_t seed) override;

  void do_cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses, const Tensor& dh,
                        const Tensor& dw, float grad_scale, int64_t chunk_tokens, const Tensor& stats,
                        int64_t row_block) override;
  void do_cross_entropy_dw(const Tensor& h, const Tensor& w_rows, int64_t row0, const Tensor& targets,
                           const Tensor& stats, const Tensor& dw_rows, float grad_scale, int64_t chunk_tokens,
                           int64_t row_block) override;

  void do_quantize(const Tensor& w, const QuantizedMatrix& out) override;
  void do_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias) override;
  void do_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) override;

  void do_adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& compute,
                std::span<const AdamWSegment> segments, const AdamWHyper& hyper) override;
  double do_sum(const Tensor& x) override;
  double do_sum_squares(const Tensor& x) override;

 private:
  // One chunk of cross_entropy's operands: h's rows (as stored, and in fp32 as hc when not bf16)
  // and w (as stored, and in fp32 as W when not bf16); bf16: the GEMMs take bf16 operands.
  struct CeOperands {
    Tensor hrows;
    const float* hc;
    const Tensor& w;
    const cpu::F32Matrix& W;
    bool bf16;
  };
  void logits_block(const CeOperands& o, int64_t r0, int64_t R, float* logits, int64_t ld);
  void dw_blocks(const CeOperands& o, const float* dlogits, const uint16_t* dl16, int64_t ld, int64_t R, int64_t rb,
                 float* dw);
  // c[M, N] = alpha * op(a) @ op(b) + beta * c in fp32, row-major: oneDNN's sgemm or OpenBLAS's,
  // whichever measured faster for the shape on this CPU (matmul.cpp).
  void gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
  // The same for bf16 a and b: oneDNN's native kernels when the CPU has them and they are enabled.
  bool onednn_bf16_ready() const;
  bool native_bf16_attention() const { return onednn_bf16_ && attention_bf16_; }

  int threads_;
  std::unique_ptr<float[]> workspace_;
  size_t workspace_floats_ = 0;
  std::unique_ptr<cpu::OnednnGemm> onednn_;
  bool onednn_bf16_ = true;
  const bool attention_bf16_;  // the CPU runs attention_bf16.cpp's AVX512-BF16 kernels
  bool onednn_f32_ = true;
};

}  // namespace llm
