// CudaBackend: every Backend op on one GPU, through kernels in kernels/ and cuBLASLt. One stream;
// device memory from the stream-ordered allocator; a grow-only device workspace shared by the ops.
// The same source builds for a real GPU (namespace llm::cuda, nvcc + CUDA runtime) and for the
// CPU emulator (namespace llm::cuda_emu, host compiler + emu/), where the tests
// compare every op with CpuBackend. Each op family's launcher is in its own file
// (src/backend/cuda/<op>.cpp) next to kernels/<op>.cu, as on the CPU side; recording ops as CUDA
// graphs (the Backend's recorder()) is in graph.cpp. The arguments are checked by the Backend's
// public ops before any do_<op> here runs; these check only what the kernels add.
#pragma once

#include <memory>
#include <string>

#include "cuda_compat.cuh"
#include "llm/backend.h"

namespace llm::LLM_CUDA_NS {

int cuda_device_count(std::string* why);
std::unique_ptr<Backend> make_cuda_backend(int ordinal);

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int ordinal);
  ~CudaBackend() override;

  DeviceKind device() const override { return DeviceKind::CUDA; }
  std::string name() const override;
  DType auto_compute_dtype() const override;
  double peak_flops(DType compute) const override;
  OpRecorder* recorder() override { return &recorder_; }

  void* raw_alloc(size_t bytes) override;
  void raw_free(void* ptr, size_t bytes) noexcept override;
  void synchronize() override;

  // ---- for the op files -----------------------------------------------------------------------------
  cudaStream_t stream() const { return stream_; }
  const cudaDeviceProp& props() const { return props_; }
  int sm_version() const { return props_.major * 10 + props_.minor; }
  cublasLtHandle_t lt() const { return lt_; }
  void* lt_workspace() const { return lt_workspace_; }
  size_t lt_workspace_bytes() const { return lt_workspace_bytes_; }
  // A grow-only device scratch buffer (stream-ordered: one op uses it at a time). Growing
  // synchronises the stream before releasing the old one (which a recorded graph may still
  // hold: it is freed when the last such graph goes). Growing while capturing is an error.
  void* workspace(size_t bytes);
  // Between recorder()->begin() and end(): ops are recorded, so they must not wait for results
  // (reading a value back is skipped or refused) or allocate.
  bool capturing() const { return capturing_; }

 protected:
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
  void do_decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                           const Tensor& v_cache, const Tensor& pos_dev, int64_t pos, const Tensor& out) override;

 private:
  // Records the backend's stream as a CUDA graph (graph.cpp).
  class Recorder final : public OpRecorder {
   public:
    explicit Recorder(CudaBackend& be) : be_(be) {}
    void begin() override;
    std::unique_ptr<OpGraph> end() override;
    void abort() noexcept override;

   private:
    CudaBackend& be_;
  };

  int ordinal_;
  cudaDeviceProp props_{};
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* lt_workspace_ = nullptr;
  size_t lt_workspace_bytes_ = size_t(32) << 20;
  std::shared_ptr<void> workspace_;  // cudaFree when the backend and every graph using it are done
  size_t workspace_bytes_ = 0;
  bool capturing_ = false;
  Recorder recorder_{*this};
};

}  // namespace llm::LLM_CUDA_NS
