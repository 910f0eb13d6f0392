// CudaBackend: every Backend op on one GPU, through kernels in kernels/ and cuBLASLt. One stream;
// device memory from the stream-ordered allocator; a grow-only device workspace shared by the ops.
// The same source builds for a real GPU (namespace llm::cuda, nvcc + CUDA runtime) and for the
// CPU emulator (namespace llm::cuda_emu, host compiler + emu/), where the tests
// compare every op with CpuBackend. Each op family's launcher is in its own file
// (src/backend/cuda/<op>.cpp) next to kernels/<op>.cu, as on the CPU side; graph capture (the
// Backend's begin_capture / end_capture, CUDA graphs) is in graph.cpp.
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
  void set_ce_chunk_tokens(int64_t n) override { ce_chunk_tokens_ = n; }

  void* raw_alloc(size_t bytes) override;
  void raw_free(void* ptr, size_t bytes) noexcept override;
  void upload(const Tensor& dst, const void* host_src) override;
  void download(const Tensor& src, void* host_dst) override;
  void copy(const Tensor& src, const Tensor& dst) override;
  void zero(const Tensor& t) override;
  void fill(const Tensor& t, float value) override;
  void synchronize() override;

  void embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) override;
  void embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable) override;
  void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) override;
  void add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float eps, const Tensor& s,
                           const Tensor& y, const Tensor& rstd) override;
  void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx,
                        const Tensor& dw, bool accumulate_dx) override;
  void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, float alpha,
              float beta, const Tensor* bias) override;
  void bias_backward(const Tensor& dy, const Tensor& db) override;
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0, bool inverse) override;
  void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                         const Tensor& lse) override;
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, const Tensor& dq, const Tensor& dk, const Tensor& dv) override;
  void swiglu_forward(const Tensor& gate_up, const Tensor& out) override;
  void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) override;
  void add(const Tensor& a, const Tensor& b, const Tensor& out) override;
  void scale(const Tensor& x, float s) override;
  void cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses, const Tensor& dh,
                     const Tensor& dw, float grad_scale) override;
  void quantize(const Tensor& w, const QuantizedMatrix& out) override;
  void quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias) override;
  void quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) override;
  void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& compute,
             std::span<const AdamWSegment> segments, const AdamWHyper& hyper) override;
  double sum(const Tensor& x) override;
  double sum_squares(const Tensor& x) override;
  void decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                        const Tensor& v_cache, const Tensor& pos_dev, int64_t pos, const Tensor& out) override;

  bool supports_graphs() const override { return true; }
  void begin_capture() override;
  std::unique_ptr<OpGraph> end_capture() override;
  void abort_capture() noexcept override;

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
  // Between begin_capture and end_capture: ops are recorded, so they must not wait for results
  // (reading a value back is skipped or refused) or allocate.
  bool capturing() const { return capturing_; }
  int64_t ce_chunk_tokens() const { return ce_chunk_tokens_; }
  // Checks that t lives on this device (a CPU tensor handed to a CUDA op is a bug to report).
  void check_device(const Tensor& t, const char* op, const char* what) const;

 private:
  int ordinal_;
  cudaDeviceProp props_{};
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* lt_workspace_ = nullptr;
  size_t lt_workspace_bytes_ = size_t(32) << 20;
  std::shared_ptr<void> workspace_;  // cudaFree when the backend and every graph using it are done
  size_t workspace_bytes_ = 0;
  bool capturing_ = false;
  int64_t ce_chunk_tokens_ = 0;
};

}  // namespace llm::LLM_CUDA_NS
