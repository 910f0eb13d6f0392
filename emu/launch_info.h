// What a kernel launch hands the emulator, the error it throws, and the emulator's settings.
#pragma once

#include <cstddef>
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
};
EmuSettings emu_settings();
// Changes take effect at the next launch. Not while a launch is running.
void set_emu_settings(const EmuSettings& settings);

// "kernels/x.cu" for a path under the project's source tree, the path itself otherwise.
std::string short_path(const char* file);

}  // namespace llm::emu
