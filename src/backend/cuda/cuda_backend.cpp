// CudaBackend: device selection, memory, copies between host and device, the workspace, and the
// factory functions. The ops are in their own files (src/backend/cuda/<op>.cpp).
#include "backend/cuda/cuda_backend.h"

#include <cstring>

namespace llm::LLM_CUDA_NS {

int cuda_device_count(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cat("cudaGetDeviceCount: ", cudaGetErrorString(e));
    cudaGetLastError();  // clear the sticky error
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device";
  return n;
}

std::unique_ptr<Backend> make_cuda_backend(int ordinal) { return std::make_unique<CudaBackend>(ordinal); }

CudaBackend::CudaBackend(int ordinal) : ordinal_(ordinal) {
  std::string why;
  const int n = cuda_device_count(&why);
  LLM_CHECK(n > 0, "cuda: no usable device (", why, ")");
  LLM_CHECK(ordinal >= 0 && ordinal < n, "cuda: device ", ordinal, " requested but there are only ", n);
  LLM_CUDA_CHECK(cudaSetDevice(ordinal));
  LLM_CUDA_CHECK(cudaGetDeviceProperties(&props_, ordinal));
  LLM_CHECK(sm_version() >= 70, "cuda: ", props_.name, " is sm_", sm_version(), "; this build needs sm_70 or newer");
  LLM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  LLM_CUBLAS_CHECK(cublasLtCreate(&lt_));
  LLM_CUDA_CHECK(cudaMalloc(&lt_workspace_, lt_workspace_bytes_));
}

CudaBackend::~CudaBackend() {
  // Destructors do not throw: release what exists and ignore errors of a failing device.
  recorder_.abort();
  if (stream_) cudaStreamSynchronize(stream_);
  workspace_.reset();
  if (lt_workspace_) cudaFree(lt_workspace_);
  if (lt_) cublasLtDestroy(lt_);
  if (stream_) cudaStreamDestroy(stream_);
}

std::string CudaBackend::name() const {
  return cat("cuda:", ordinal_, " (", props_.name, ", sm_", sm_version(), ", ",
             props_.totalGlobalMem / (1024 * 1024 * 1024), " GiB)");
}

DType CudaBackend::auto_compute_dtype() const { return sm_version() >= 80 ? DType::BF16 : DType::F16; }

double CudaBackend::peak_flops(DType compute) const {
  // Dense FLOPs per SM per clock: tensor cores for f16/bf16, the FP32 pipes for f32.
  const int sm = sm_version();
  double tensor = 1024, fp32 = 128;  // Volta, Turing (fp16; Turing has no bf16), A10/L4-class
  if (sm == 80) tensor = 2048;       // A100
  if (sm >= 90) tensor = 4096;       // H100
  if (sm == 86 || sm == 89) fp32 = 256;
  if (compute == DType::BF16 && sm < 80) return 0;  // no bf16 tensor cores before Ampere
  int khz = 0;
  if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, ordinal_) != cudaSuccess) return 0;
  const double per_clock = compute == DType::F32 ? fp32 : tensor;
  return per_clock * props_.multiProcessorCount * double(khz) * 1e3;
}

void* CudaBackend::raw_alloc(size_t bytes) {
  LLM_CHECK(!capturing_, "cuda: allocating ", bytes, " bytes while ops are being recorded as a graph");
  void* p = nullptr;
  if (cudaMallocAsync(&p, bytes, stream_) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;  // the arena turns this into an out-of-memory error naming itself
  }
  return p;
}

void CudaBackend::raw_free(void* ptr, size_t /*bytes*/) noexcept { cudaFreeAsync(ptr, stream_); }

void CudaBackend::do_upload(const Tensor& dst, const void* host_src) {
  LLM_CHECK(!capturing_, "upload: not while ops are being recorded as a graph (upload before replaying)");
  LLM_CUDA_CHECK(cudaMemcpyAsync(dst.data(), host_src, dst.nbytes(), cudaMemcpyHostToDevice, stream_));
  // The host buffer may be reused as soon as we return.
  LLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::do_download(const Tensor& src, void* host_dst) {
  LLM_CHECK(!capturing_, "download: not while ops are being recorded as a graph (download after replaying)");
  LLM_CUDA_CHECK(cudaMemcpyAsync(host_dst, src.data(), src.nbytes(), cudaMemcpyDeviceToHost, stream_));
  LLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::synchronize() {
  LLM_CHECK(!capturing_, "synchronize: not while ops are being recorded as a graph");
  LLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void* CudaBackend::workspace(size_t bytes) {
  if (bytes > workspace_bytes_) {
    LLM_CHECK(!capturing_, "cuda: an op needs ", bytes, " bytes of workspace while ops are being recorded as a graph (",
              workspace_bytes_, " allocated): run the same ops once without recording first");
    if (workspace_) {
      LLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
      workspace_.reset();
      workspace_bytes_ = 0;
    }
    void* p = nullptr;
    LLM_CUDA_CHECK(cudaMalloc(&p, bytes));
    workspace_ = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
    workspace_bytes_ = bytes;
  }
  return workspace_.get();
}

}  // namespace llm::LLM_CUDA_NS
