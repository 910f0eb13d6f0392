// The device the emulator pretends to be (LLM_EMU_PROFILE): what cudaGetDeviceProperties reports
// and the limits launches and cudaFuncSetAttribute enforce, for the three architectures the
// kernels have paths for. The numbers are NVIDIA's published ones for one card of each.
#pragma once

namespace llm::emu {

struct DeviceProfile {
  int sm;                    // compute capability as 10 * major + minor
  const char* name;          // cudaDeviceProp::name
  int smem_optin_per_block;  // sharedMemPerBlockOptin: the most cudaFuncSetAttribute may allow
  int smem_per_sm;           // sharedMemPerMultiprocessor
  int reserved_smem;         // reservedSharedMemPerBlock (the runtime's 1 KiB on sm_80+)
  int threads_per_sm;        // maxThreadsPerMultiProcessor
  int blocks_per_sm;         // maxBlocksPerMultiProcessor
  int l2_bytes;
  int bus_width_bits;
  int clock_khz;  // cudaDevAttrClockRate (boost clock)
};

// The profile for sm 70, 75 or 80; throws Error for anything else.
const DeviceProfile& device_profile_for(int sm);
// The profile the current settings select.
const DeviceProfile& device_profile();
// Its compute capability (10 * major + minor): emulated code asks this where nvcc code has
// __CUDA_ARCH__ (the tensor-core helpers in kernels/cuda_compat.cuh).
int emulated_sm();
// Fails the running kernel (KernelError naming the thread) when the device profile is older than
// `sm`: the instruction would be illegal on that GPU, and would stop the context there.
void require_sm(int sm, const char* instruction);

}  // namespace llm::emu
