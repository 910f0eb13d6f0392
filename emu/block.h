// One thread block under the emulator: its CUDA threads as fibers on the worker's OS thread,
// the __syncthreads barrier and the warp rendezvous that every *_sync intrinsic goes through.
//
// Scheduling: fibers run until they block (barrier, warp collective) or return; a blocked fiber
// hands the OS thread straight to the next runnable one, chosen by EmuSettings::schedule: in
// thread order (the default), highest thread first, or at random. A warp collective completes
// when every non-exited lane named in its mask has arrived, so results are exact in divergent
// code whatever the order; in thread order the last arriving lane computes all results and goes
// on without a switch, in the other orders every released thread is scheduled anew. When nothing can run and threads
// remain, the block is deadlocked and the diagnosis names what each group of threads waits for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "fiber.h"
#include "launch_info.h"
#include "types.h"

namespace llm::emu {

enum class WarpOp : uint8_t {
  SyncWarp,
  ShflIdx,
  ShflUp,
  ShflDown,
  ShflXor,
  Ballot,
  Any,
  All,
  MatchAny,
  MatchAll,
  ReduceAddU,
  ReduceMinU,
  ReduceMaxU,
  ReduceMinI,
  ReduceMaxI,
  ReduceAnd,
  ReduceOr,
  ReduceXor,
  Custom,
};
const char* warp_op_name(WarpOp op);

// A warp-wide operation the emulator does not know, e.g. a tensor-core MMA: once all lanes of
// the group have arrived, compute() reads every lane's input and writes every lane's output.
struct WarpCustomOp {
  const char* name;
  // inputs[l] / outputs[l] are lane l's buffers (nullptr for lanes outside the group).
  void (*compute)(const void* const* inputs, void* const* outputs, unsigned group_mask);
};

// One lane's arrival at a warp collective.
struct WarpArrival {
  WarpOp op = WarpOp::SyncWarp;
  unsigned mask = 0;
  uint64_t value = 0;  // the lane's operand (bits), predicate, or nothing
  int param = 0;       // srcLane / delta / laneMask
  int width = 32;
  std::source_location where;
  const WarpCustomOp* custom = nullptr;
  const void* custom_in = nullptr;
  void* custom_out = nullptr;
  uint64_t result = 0;  // filled at completion
  int predicate = 0;    // __match_all_sync's *pred
};

enum class BarrierOp : uint8_t { Sync, Count, And, Or };

enum class ThreadState : uint8_t { Ready, AtBarrier, AtWarpOp, AtActiveMask, Exited };

// One emulated CUDA thread.
struct EmuThread {
  FiberContext ctx;
  uint3 idx{};
  unsigned linear = 0, warp = 0, lane = 0;
  ThreadState state = ThreadState::Ready;
  bool started = false;
  bool cancel = false;         // set when the block is abandoned: the fiber unwinds at its next wait
  std::source_location where;  // where it waits
  WarpArrival arrival;
  int barrier_result = 0;
};

// Thrown inside a fiber to unwind it when its block is abandoned; never leaves the emulator.
struct FiberCancel {};

class BlockRunner {
 public:
  explicit BlockRunner(size_t stack_bytes);
  ~BlockRunner();
  BlockRunner(const BlockRunner&) = delete;
  BlockRunner& operator=(const BlockRunner&) = delete;

  // Runs block `block_idx` of `launch` to completion; throws KernelError on a diagnostic.
  void run(const KernelLaunch& launch, uint3 block_idx);

  // ---- called by the device API on the running fiber ----------------------------------------
  int barrier(BarrierOp op, int predicate, const std::source_location& where);
  // Returns the lane's result (arrival.result / arrival.predicate are also set).
  const WarpArrival& warp_collective(const WarpArrival& arrival);
  unsigned activemask(const std::source_location& where);
  // Throws KernelError naming the current thread.
  [[noreturn]] void fail_current(const std::string& what) const;
  const KernelLaunch& launch() const { return *launch_; }

  uint3 block_idx{};
  dim3 block_dim, grid_dim;
  char* dynamic_smem = nullptr;
  size_t dynamic_smem_bytes = 0;

 private:
  struct WarpState {
    unsigned exists = 0, exited = 0, pending = 0, activemask_pending = 0;
  };
  struct Barrier {
    unsigned waiting = 0;
    BarrierOp op = BarrierOp::Sync;
    std::source_location where;
    int count = 0;
    std::vector<EmuThread*> waiters;
  };

  static void thread_main(void* arg);
  EmuThread* current() const;
  void push_ready(EmuThread* t);
  EmuThread* pop_ready();
  void suspend(EmuThread* me);
  [[noreturn]] void finish(EmuThread* me);
  void thread_exited(EmuThread* me);
  // Completes the group of `mask` in warp w if all its non-exited lanes have arrived.
  // Returns true when it completed; throws KernelError on disagreeing lanes or bad reads.
  bool try_complete(unsigned w, unsigned mask, const EmuThread* trigger);
  bool resolve_activemasks();
  void record_failure(std::exception_ptr e);
  void cancel_all();
  std::string deadlock_report() const;
  [[noreturn]] void fail_thread(const EmuThread& t, const std::string& what) const;
  std::string block_prefix() const;
  std::string thread_name(const EmuThread& t) const;
  std::string thread_ranges(const std::vector<unsigned>& linear) const;
  void prepare_smem(size_t bytes);
  void check_smem_redzones() const;

  const KernelLaunch* launch_ = nullptr;
  StackPool stacks_;
  std::vector<EmuThread> threads_;
  std::vector<WarpState> warps_;
  // Runnable threads: a ring buffer in thread order (Schedule::Order), else a bit per thread from
  // which the schedule picks the highest (Reverse) or a random one (Random).
  std::vector<EmuThread*> ready_;
  std::vector<uint64_t> ready_bits_;
  size_t ready_head_ = 0, ready_count_ = 0;
  uint8_t schedule_ = 0;  // EmuSettings::Schedule
  uint64_t rng_ = 0;      // Schedule::Random's state for this block
  unsigned exited_ = 0;
  Barrier barrier_;
  FiberContext scheduler_;
  std::exception_ptr failure_;
  bool cancelling_ = false;
  std::unique_ptr<char[]> smem_buffer_;
  size_t smem_capacity_ = 0;
};

// The block and thread running on this OS thread (null outside kernels). Constant-initialized
// inline thread_locals, so reading them is a plain TLS load with no wrapper call.
inline constinit thread_local BlockRunner* t_block = nullptr;
inline constinit thread_local EmuThread* t_thread = nullptr;

}  // namespace llm::emu
