// Built against the real CUDA runtime (cudart static, cuBLASLt and NCCL dynamic) when LLM_CUDA is
// on, and run as a ctest: the binary must start and answer on a machine without a GPU driver,
// which it cannot if anything linked libcuda (the driver). Exit 0 on success.
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <link.h>
#ifdef LLM_HAVE_NCCL
#include <nccl.h>
#endif

#include <cstdio>
#include <cstring>

namespace {

// Shared objects loaded at startup (the DT_NEEDED closure), before cudart may dlopen the driver.
int count_libcuda(dl_phdr_info* info, size_t, void* data) {
  if (info->dlpi_name && std::strstr(info->dlpi_name, "libcuda.so")) {
    std::fprintf(stderr, "cuda_runtime_probe: linked against the driver library %s\n", info->dlpi_name);
    ++*static_cast<int*>(data);
  }
  return 0;
}

}  // namespace

int main() {
  int libcuda = 0;
  dl_iterate_phdr(&count_libcuda, &libcuda);
  if (libcuda != 0) return 1;

  std::printf("cuda_runtime_probe: cuBLASLt %zu", cublasLtGetVersion());
#ifdef LLM_HAVE_NCCL
  int nccl = 0;
  if (ncclGetVersion(&nccl) == ncclSuccess) std::printf(", NCCL %d", nccl);
#endif
  std::printf("\n");

  int count = -1;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
    std::printf("cuda_runtime_probe: no usable GPU here (%s, error %d): fine, the binary started without a driver\n",
                cudaGetErrorName(e), static_cast<int>(e));
    return 0;
  }
  if (e != cudaSuccess) {
    std::fprintf(stderr, "cuda_runtime_probe: cudaGetDeviceCount failed unexpectedly: %s (%d)\n", cudaGetErrorName(e),
                 static_cast<int>(e));
    return 1;
  }
  std::printf("cuda_runtime_probe: %d CUDA device(s)\n", count);
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, d) == cudaSuccess) {
      std::printf("  %d: %s, compute capability %d.%d\n", d, prop.name, prop.major, prop.minor);
    }
  }
  return 0;
}
