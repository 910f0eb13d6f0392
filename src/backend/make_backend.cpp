// make_backend: turns a device string from the config or the command line into a backend.
#include <iostream>

#include "backend/cpu/cpu_backend.h"
#include "llm/backend.h"

#if defined(LLM_HAVE_CUDA)
#include "backend/cuda/cuda_factory.h"
#endif

namespace llm {

std::unique_ptr<Backend> make_backend(std::string_view device, int threads, int local_rank) {
  if (device == "cpu") return std::make_unique<CpuBackend>(threads);
  const bool is_auto = device == "auto";
  const bool is_cuda = device == "cuda" || device.starts_with("cuda:");
  LLM_CHECK(is_auto || is_cuda, "device: unknown device \"", device, "\"; valid: auto, cpu, cuda, cuda:N");
#if defined(LLM_HAVE_CUDA)
  int ordinal = local_rank;
  if (device.starts_with("cuda:")) {
    const std::string num(device.substr(5));
    LLM_CHECK(!num.empty() && num.find_first_not_of("0123456789") == std::string::npos, "device: \"", device,
              "\" is not cuda:N with N a device number");
    ordinal = std::stoi(num);
  }
  std::string why;
  if (const int n = cuda::cuda_device_count(&why); n > 0) {
    LLM_CHECK(ordinal < n, "device: ", device, ": this process wants GPU ", ordinal,
              " (its local rank) but the host has ", n, "; start at most ", n,
              " ranks per host or set CUDA_VISIBLE_DEVICES");
    return cuda::make_cuda_backend(ordinal);
  }
  LLM_CHECK(is_auto, "device: ", device, " requested but no CUDA device is usable: ", why);
  std::cerr << "device: auto: no CUDA device (" << why << "), using the CPU\n";
#else
  (void)local_rank;
  LLM_CHECK(is_auto, "device: ", device,
            " requested but this build has no CUDA backend (configure with -DLLM_CUDA=ON)");
#endif
  return std::make_unique<CpuBackend>(threads);
}

}  // namespace llm
