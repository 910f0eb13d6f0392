// The harness catches planted bugs: barrier divergence, deadlocks, bad shuffles, out-of-bounds
// writes, misaligned atomics; each is reported naming kernel, block, thread and source lines,
// and the emulator stays usable afterwards. Emulator only.
#include <gmock/gmock.h>

#include <fstream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "harness_kernels.cuh"
#include "test_util.h"

namespace llm::test {
namespace {

namespace harness = ::llm::LLM_CUDA_NS::harness;
using ::testing::HasSubstr;

// "tests/cuda_emu/harness_kernels.cu:<line>" for the n-th line (0-based) containing `text`
// after the line containing `anchor`: the lines diagnostics must name.
std::string site(const std::string& anchor, const std::string& text, int nth = 0) {
  std::ifstream in(std::string(LLM_SOURCE_DIR) + "/tests/cuda_emu/harness_kernels.cu");
  std::string line;
  int number = 0;
  bool after = false;
  while (std::getline(in, line)) {
    ++number;
    if (!after) {
      after = line.find(anchor) != std::string::npos;
      continue;
    }
    if (line.find(text) != std::string::npos && nth-- == 0) return cat("tests/cuda_emu/harness_kernels.cu:", number);
  }
  return "(line not found)";
}

template <class F>
std::string kernel_error(F&& f) {
  try {
    f();
  } catch (const emu::KernelError& e) {
    return e.what();
  }
  return "(no KernelError)";
}

// After a failed launch the emulator must still run kernels correctly.
void expect_emulator_still_works() {
  std::vector<float> in(256, 1.0f);
  DeviceBuffer<float> din(in), dout(1);
  harness::block_reduce_warp0(din.get(), dout.get(), 256);
  EXPECT_EQ(dout.download()[0], 256.0f);
}

TEST(CudaEmuDiagnostics, BarrierDivergenceNamesBothBarriers) {
  // Which thread reports depends on the order threads run: the message below is thread order's.
  const ScopedEmuSettings in_order([](emu::EmuSettings& s) { s.schedule = emu::EmuSettings::Schedule::Order; });
  DeviceBuffer<int> out(32);
  const std::string msg = kernel_error([&] { harness::bug_barrier_divergence(out.get()); });
  EXPECT_THAT(msg, HasSubstr("barrier_divergence_kernel"));
  EXPECT_THAT(msg, HasSubstr("barrier divergence"));
  EXPECT_THAT(msg, HasSubstr("thread (16,0,0)"));
  EXPECT_THAT(msg, HasSubstr(site("void barrier_divergence_kernel", "__syncthreads()", 0)));
  EXPECT_THAT(msg, HasSubstr(site("void barrier_divergence_kernel", "__syncthreads()", 1)));
  EXPECT_THAT(msg, HasSubstr("harness_kernels.cu"));  // the launch site
  expect_emulator_still_works();
}

TEST(CudaEmuDiagnostics, ThreadsReturningWhileOthersWaitAtABarrier) {
  const ScopedEmuSettings in_order([](emu::EmuSettings& s) { s.schedule = emu::EmuSettings::Schedule::Order; });
  DeviceBuffer<int> out(64);
  const std::string msg = kernel_error([&] { harness::bug_exit_before_barrier(out.get()); });
  EXPECT_THAT(msg, HasSubstr("returned from the kernel while threads 0-31 wait at __syncthreads at " +
                             site("void exit_before_barrier_kernel", "__syncthreads()")));
  expect_emulator_still_works();
}

TEST(CudaEmuDiagnostics, DeadlockBetweenABarrierAndAShuffleIsReportedNotHung) {
  DeviceBuffer<int> out(32);
  const std::string msg = kernel_error([&] { harness::bug_barrier_shuffle_deadlock(out.get()); });
  EXPECT_THAT(msg, HasSubstr("deadlock"));
  EXPECT_THAT(msg, HasSubstr("threads 0-15 wait at __syncthreads at " +
                             site("void barrier_shuffle_deadlock_kernel", "__syncthreads()")));
  EXPECT_THAT(msg, HasSubstr("lanes 16-31 wait at __shfl_sync(mask 0xffffffff) at " +
                             site("void barrier_shuffle_deadlock_kernel", "__shfl_sync")));
  expect_emulator_still_works();
}

TEST(CudaEmuDiagnostics, ShuffleReadingALaneThatExited) {
  DeviceBuffer<int> out(32);
  const std::string msg = kernel_error([&] { harness::bug_shuffle_reads_exited(out.get()); });
  EXPECT_THAT(msg, HasSubstr("thread (0,0,0) [warp 0 lane 0]"));
  EXPECT_THAT(msg, HasSubstr("__shfl_xor_sync(mask 0xffffffff) at " +
                             site("void shuffle_reads_exited_kernel", "__shfl_xor_sync")));
  EXPECT_THAT(msg, HasSubstr("reads lane 16, which has already returned from the kernel"));
  expect_emulator_still_works();
}

// Relaxed (LLM_EMU_STRICT=0): the undefined value reads as all-one bits instead of an error.
TEST(CudaEmuDiagnostics, RelaxedShufflesYieldAllOnesForUndefinedReads) {
  const emu::EmuSettings saved = emu::emu_settings();
  emu::EmuSettings relaxed = saved;
  relaxed.strict_shuffles = false;
  emu::set_emu_settings(relaxed);
  DeviceBuffer<int> out(32);
  out.zero();
  harness::bug_shuffle_reads_exited(out.get());
  emu::set_emu_settings(saved);
  const std::vector<int> got = out.download();
  for (int lane = 0; lane < 16; ++lane) EXPECT_EQ(got[static_cast<size_t>(lane)], lane - 1) << "lane " << lane;
}

TEST(CudaEmuDiagnostics, LanesDisagreeingOnTheMask) {
  DeviceBuffer<int> out(32);
  const std::string msg = kernel_error([&] { harness::bug_mask_mismatch(out.get()); });
  EXPECT_THAT(msg, HasSubstr("lane 5]"));
  EXPECT_THAT(msg, HasSubstr("mask 0x0000ffff"));
  EXPECT_THAT(msg, HasSubstr("same intrinsic with the same mask"));
  expect_emulator_still_works();
}

TEST(CudaEmuDiagnostics, MisalignedAtomic) {
  DeviceBuffer<int> buf(4);
  const std::string msg = kernel_error([&] { harness::bug_misaligned_atomic(buf.get()); });
  EXPECT_THAT(msg, HasSubstr("atomicAdd"));
  EXPECT_THAT(msg, HasSubstr("not aligned to 4 bytes"));
  expect_emulator_still_works();
}

// Red zones without AddressSanitizer (checked after each launch), poisoned memory with it (the
// sanitizer stops the process at the faulting write: a death test).
TEST(CudaEmuDiagnostics, OutOfBoundsWriteToDeviceMemory) {
  DeviceBuffer<float> buf(100);
  if (emu::asan_enabled()) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(harness::bug_out_of_bounds(buf.get(), 100), "AddressSanitizer");
    return;
  }
  const std::string msg = kernel_error([&] { harness::bug_out_of_bounds(buf.get(), 100); });
  EXPECT_THAT(msg, HasSubstr("out_of_bounds_kernel"));
  EXPECT_THAT(msg, HasSubstr("out-of-bounds write past the end of a 400-byte device buffer"));
  EXPECT_THAT(msg, HasSubstr("tests/cuda_emu/cuda_test_util.h:"));  // where it was cudaMalloc'd
  EXPECT_THAT(msg, HasSubstr("byte +400"));
  expect_emulator_still_works();
}

TEST(CudaEmuDiagnostics, OutOfBoundsWriteToDynamicSharedMemory) {
  DeviceBuffer<int> out(32);
  if (emu::asan_enabled()) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_DEATH(harness::bug_shared_out_of_bounds(out.get()), "AddressSanitizer");
    return;
  }
  const std::string msg = kernel_error([&] { harness::bug_shared_out_of_bounds(out.get()); });
  EXPECT_THAT(msg, HasSubstr("shared_out_of_bounds_kernel"));
  EXPECT_THAT(msg, HasSubstr("64-byte dynamic shared memory (out of bounds)"));
  expect_emulator_still_works();
}

// A thread spinning on a condition nothing will change cannot be interrupted: the watchdog stops
// the process with a message naming the kernel (a death test, with a 1-second limit).
TEST(CudaEmuDiagnostics, RunawayKernelIsStoppedByTheWatchdog) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  DeviceBuffer<int> flag(1);
  flag.zero();
  EXPECT_DEATH(
      {
        emu::EmuSettings s = emu::emu_settings();
        s.watchdog_seconds = 1;
        emu::set_emu_settings(s);
        harness::bug_spin(flag.get());
      },
      "kernel spin_kernel \\(launched at tests/cuda_emu/harness_kernels.cu:[0-9]+\\) has run for more than 1 s");
}

TEST(CudaEmuDiagnostics, ActiveMaskGroupsTheLanesOfEachBranch) {
  DeviceBuffer<unsigned> out(32);
  harness::activemask_groups(out.get());
  const std::vector<unsigned> masks = out.download();
  for (int lane = 0; lane < 32; ++lane) {
    unsigned want = 0;
    for (int l = 0; l < 32; ++l) want |= (l % 3 == lane % 3 ? 1u : 0u) << l;
    EXPECT_EQ(masks[static_cast<size_t>(lane)], want) << "lane " << lane;
  }
}

TEST(CudaEmuDiagnostics, BadLaunchConfigurationsFailLikeOnAGpu) {
  EXPECT_THAT(kernel_error([] {
                try {
                  harness::empty_kernel(1, 1025);
                } catch (const emu::KernelError&) {
                  throw;
                } catch (const Error& e) {
                  throw emu::KernelError(e.what());  // the launcher's LLM_CUDA_CHECK
                }
              }),
              HasSubstr("cudaErrorInvalidConfiguration"));
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // reading the error cleared it
  EXPECT_THROW(harness::empty_kernel(0, 32), Error);
  expect_emulator_still_works();
}

}  // namespace
}  // namespace llm::test
