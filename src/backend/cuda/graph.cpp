// Recording ops as a CUDA graph (Backend::recorder(), OpRecorder): the backend's stream is
// captured, the graph instantiated once, and each replay is one cudaGraphLaunch instead of a
// launch per op (for a decode step of a small model the launch overhead is most of its time).
// Under the emulator the same calls go to emu/graph.cpp.
//
// What a recorded sequence may contain: kernels, cuBLASLt matmuls, device-side copies and
// memsets. Ops that read a result back on the host skip it while capturing (the id checks of
// the embeddings: the caller validates ids on the host) or refuse (upload, download, sum).
// Growing the workspace is refused too, so a sequence is recorded after it has run once.
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

namespace {

class CudaOpGraph final : public OpGraph {
 public:
  CudaOpGraph(cudaGraphExec_t exec, cudaStream_t stream, std::shared_ptr<void> workspace)
      : exec_(exec), stream_(stream), workspace_(std::move(workspace)) {}
  ~CudaOpGraph() override { cudaGraphExecDestroy(exec_); }
  CudaOpGraph(const CudaOpGraph&) = delete;
  CudaOpGraph& operator=(const CudaOpGraph&) = delete;

  void replay() override { LLM_CUDA_CHECK(cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
  // The workspace the recorded ops point into: the backend may replace its own with a larger
  // one later, but this one must live as long as the graph.
  std::shared_ptr<void> workspace_;
};

}  // namespace

void CudaBackend::Recorder::begin() {
  LLM_CHECK(!be_.capturing_, "recorder begin: ops are already being recorded");
  // ThreadLocal: an unsafe call (cudaMalloc, a synchronous copy) on this thread fails the capture
  // instead of silently running; other threads (another backend) are not affected.
  LLM_CUDA_CHECK(cudaStreamBeginCapture(be_.stream_, cudaStreamCaptureModeThreadLocal));
  be_.capturing_ = true;
}

std::unique_ptr<OpGraph> CudaBackend::Recorder::end() {
  LLM_CHECK(be_.capturing_, "recorder end: no ops are being recorded (begin first)");
  be_.capturing_ = false;
  cudaGraph_t graph = nullptr;
  const cudaError_t e = cudaStreamEndCapture(be_.stream_, &graph);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it: the stream is usable again
    if (graph) cudaGraphDestroy(graph);
    fail("recorder end: cudaStreamEndCapture: ", cudaGetErrorName(e), " (", cudaGetErrorString(e),
         "): an op of the sequence cannot be recorded");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);  // the executable graph does not depend on it
  if (ie != cudaSuccess) {
    cudaGetLastError();
    fail("recorder end: cudaGraphInstantiate: ", cudaGetErrorName(ie), " (", cudaGetErrorString(ie), ")");
  }
  return std::make_unique<CudaOpGraph>(exec, be_.stream_, be_.workspace_);
}

void CudaBackend::Recorder::abort() noexcept {
  if (!be_.capturing_) return;
  be_.capturing_ = false;
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(be_.stream_, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
  cudaGetLastError();
}

}  // namespace llm::LLM_CUDA_NS
