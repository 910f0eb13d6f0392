// Ops of CudaBackend not written yet: each fails with a clear message. An op moves out of this
// file into its own src/backend/cuda/<op>.cpp (with kernels/<op>.cu) when it is implemented;
// this file disappears when every op is done.
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

}  // namespace llm::LLM_CUDA_NS
