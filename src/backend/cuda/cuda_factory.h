// The CUDA backend's entry points, without CUDA types, for make_backend (src/backend/make_backend.cpp)
// and tools. Defined in src/backend/cuda/cuda_backend.cpp (real build: namespace llm::cuda).
#pragma once

#include <memory>
#include <string>

#include "llm/backend.h"

namespace llm {
class Communicator;
}

namespace llm::cuda {

// Usable CUDA devices; 0 with *why set (e.g. "cudaGetDeviceCount: insufficient driver") if none.
int cuda_device_count(std::string* why);
std::unique_ptr<Backend> make_cuda_backend(int ordinal);

#if defined(LLM_HAVE_NCCL)
// Device collectives over NCCL on the backend's stream; rank, world, host scalars, barriers and
// the bootstrap (NCCL's unique id) through `host`, the MPI communicator, which must outlive it.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host, Backend& backend);
#endif

}  // namespace llm::cuda
