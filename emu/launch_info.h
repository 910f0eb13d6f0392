// What a kernel launch hands the emulator, the error it throws, and the emulator's settings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "llm/error.h"
#include "types.h"

namespace llm::emu {

// A type-erased launch: invoke(args) runs the kernel body for the current emulated thread.
struct KernelLaunch {
  const char* kernel_name = "";
  const char* file = "";  // where LLM_LAUNCH was written
  unsigned line = 0;
  dim3 grid, block;
  size_t smem_bytes = 0;
  void (*invoke)(const void* args) = nullptr;
  const void* args = nullptr;
  void (*kernel_id)() = nullptr;  // the kernel's address, for cudaFuncSetAttribute limits
  bool strict_shuffles = true;    // from EmuSettings, filled in by the launch
  // Scheduling of the block's threads, from EmuSettings (see there).
  uint8_t schedule = 0;
  uint64_t seed = 0;  // the launch's seed for Schedule::Random (settings seed mixed with the launch count)
  int sm = 80;        // the device profile's compute capability
};

// A kernel misbehaved under emulation (barrier divergence, deadlock, a bad shuffle, an
// out-of-bounds write caught by a red zone, ...). The message names kernel, block, thread
// and source lines; the launch throws it.
class KernelError : public Error {
 public:
  using Error::Error;
};

// Emulator settings; each defaults from an environment variable.
struct EmuSettings {
  unsigned worker_threads = 0;  // LLM_EMU_THREADS: OS threads running blocks (0: all cores)
  size_t stack_bytes = 0;       // LLM_EMU_STACK_KB: per fiber (default 64 KiB, 256 KiB under ASan)
  double watchdog_seconds = 0;  // LLM_EMU_TIMEOUT_S: a launch running longer stops the process
  // LLM_EMU_STRICT (default 1): a shuffle reading a lane outside its mask, or one that exited, is
  // an error. With 0 it yields all-one bits (NaN as a float) instead, for code that reads such
  // lanes and provably discards the value.
  bool strict_shuffles = true;
  // LLM_EMU_PROFILE: the device the emulator pretends to be, "8.0" (A100: the default), "7.5"
  // (T4) or "7.0" (V100): compute capability, shared-memory and thread limits, and the
  // tensor-core instructions that exist (sm_75: f16 m16n8k8 only; sm_70: none the kernels use).
  int sm = 80;
  // LLM_EMU_SCHEDULE: the order in which the threads of a block run between synchronisation
  // points. "order" (default): thread order, the last lane to arrive at a barrier or warp
  // collective goes on first. "reverse": highest thread first. "random" or "random:SEED": a
  // seeded random runnable thread at every switch. Outside "order", a barrier or collective
  // releases all its threads together and the next one to run is chosen again, so only
  // __syncthreads, __syncwarp and the warp collectives order memory accesses between threads.
  enum class Schedule : uint8_t { Order, Reverse, Random };
  Schedule schedule = Schedule::Order;
  uint64_t seed = 1;
  // LLM_EMU_POISON (default 0): new device allocations (cudaMalloc, cudaMallocAsync, so every
  // arena buffer) are filled with 0xff bytes, NaN as f32/f16/bf16, -1 as integers, instead of
  // whatever the host allocator returned (usually zeros), so reads of never-written memory show.
  bool poison = false;
};
// Parses an LLM_EMU_PROFILE value ("7.0", "7.5", "8.0", or 70/75/80); throws Error naming it.
int parse_emu_profile(const std::string& value);
// Parses an LLM_EMU_SCHEDULE value into s.schedule and s.seed; throws Error naming it.
void parse_emu_schedule(const std::string& value, EmuSettings& s);
EmuSettings emu_settings();
// Changes take effect at the next launch. Not while a launch is running.
void set_emu_settings(const EmuSettings& settings);

// "kernels/x.cu" for a path under the project's source tree, the path itself otherwise.
std::string short_path(const char* file);

}  // namespace llm::emu
