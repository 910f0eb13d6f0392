#include "profile.h"

#include "block.h"
#include "launch_info.h"
#include "llm/error.h"

namespace llm::emu {
namespace {

// A100 (sm_80): 164 KiB shared memory per SM, 163 KiB of it opt-in for one block.
constexpr DeviceProfile kAmpere{
    80, "LLM CUDA emulator (sm_80 semantics, A100 limits)", 166912, 167936, 1024, 2048, 32, 40 << 20, 5120, 1410000};
// T4 (sm_75): 64 KiB shared memory per SM, all of it opt-in; 1024 threads and 16 blocks per SM.
constexpr DeviceProfile kTuring{
    75, "LLM CUDA emulator (sm_75 semantics, T4 limits)", 65536, 65536, 0, 1024, 16, 4 << 20, 256, 1590000};
// V100 (sm_70): 96 KiB shared memory per SM, all of it opt-in.
constexpr DeviceProfile kVolta{
    70, "LLM CUDA emulator (sm_70 semantics, V100 limits)", 98304, 98304, 0, 2048, 32, 6 << 20, 4096, 1530000};

}  // namespace

const DeviceProfile& device_profile_for(int sm) {
  switch (sm) {
    case 80: return kAmpere;
    case 75: return kTuring;
    case 70: return kVolta;
    default: fail("cuda emulator: no device profile for sm_", sm, " (LLM_EMU_PROFILE is 7.0, 7.5 or 8.0)");
  }
}

const DeviceProfile& device_profile() { return device_profile_for(emu_settings().sm); }

int emulated_sm() { return t_block ? t_block->launch().sm : emu_settings().sm; }

}  // namespace llm::emu

namespace llm::emu {

void require_sm(int sm, const char* instruction) {
  const int have = emulated_sm();
  if (have >= sm) return;
  const std::string what = cat(instruction, " needs sm_", sm, " but the emulated device is sm_", have,
                               " (LLM_EMU_PROFILE): an illegal instruction on that GPU");
  if (!t_block) fail("cuda emulator: ", what, " (outside a kernel)");
  t_block->fail_current(what);
}

}  // namespace llm::emu
