// Fibers for the CUDA emulator: one per emulated CUDA thread, switched cooperatively on the OS
// thread that runs the block. The switch is a few lines of x86-64 assembly (callee-saved
// registers + stack pointer); glibc's swapcontext also saves the signal mask with a system call
// per switch, which made it about 15x slower. Other architectures (or LLM_EMU_UCONTEXT=1) use
// ucontext. Every switch is announced to AddressSanitizer so it follows the stack change.
#pragma once

#include <cstddef>
#include <vector>

#if !defined(LLM_EMU_UCONTEXT) && !defined(__x86_64__)
#define LLM_EMU_UCONTEXT 1
#endif
#if defined(LLM_EMU_UCONTEXT) && LLM_EMU_UCONTEXT
#include <ucontext.h>
#define LLM_EMU_USE_UCONTEXT 1
#else
#define LLM_EMU_USE_UCONTEXT 0
#endif

namespace llm::emu {

// An mmap'd stack with a PROT_NONE guard page below it, so an overflow faults instead of
// silently corrupting the neighbouring fiber's stack.
class FiberStack {
 public:
  explicit FiberStack(size_t usable_bytes);
  ~FiberStack();
  FiberStack(FiberStack&& other) noexcept;
  FiberStack& operator=(FiberStack&&) = delete;
  FiberStack(const FiberStack&) = delete;
  FiberStack& operator=(const FiberStack&) = delete;

  char* bottom() const { return bottom_; }  // lowest usable address
  size_t size() const { return size_; }
  char* top() const { return bottom_ + size_; }

 private:
  char* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  char* bottom_ = nullptr;
  size_t size_ = 0;
};

using FiberEntry = void (*)(void* arg);

// A suspended execution: the saved stack pointer and what AddressSanitizer needs to know
// about the stack it runs on. The OS thread's own stack is a context too (the scheduler's).
struct FiberContext {
#if LLM_EMU_USE_UCONTEXT
  ucontext_t uc{};
#else
  void* sp = nullptr;
#endif
  const void* stack_bottom = nullptr;
  size_t stack_size = 0;
  void* asan_fake_stack = nullptr;
  FiberEntry entry = nullptr;
  void* arg = nullptr;
};

// Describes the calling OS thread's stack in ctx, so fibers can switch back to it.
void fiber_init_thread_context(FiberContext& ctx);
// Makes ctx start entry(arg) on stack at the first switch into it. entry must never return:
// it ends by switching away with from_finished = true.
void fiber_prepare(FiberContext& ctx, const FiberStack& stack, FiberEntry entry, void* arg);
// Saves the running context into from and resumes to. from_finished: from will never be
// resumed (AddressSanitizer then releases its fake stack).
void fiber_switch(FiberContext& from, FiberContext& to, bool from_finished = false);

// Stacks reused across blocks by one worker thread (creating them is the expensive part).
class StackPool {
 public:
  explicit StackPool(size_t stack_bytes) : stack_bytes_(stack_bytes) {}
  // Stacks [0, n) exist after this call.
  void reserve(size_t n);
  const FiberStack& operator[](size_t i) const { return stacks_[i]; }
  size_t stack_bytes() const { return stack_bytes_; }

 private:
  size_t stack_bytes_;
  std::vector<FiberStack> stacks_;
};

// Poisoning helpers that are no-ops without AddressSanitizer.
void asan_poison(const void* p, size_t n);
void asan_unpoison(const void* p, size_t n);
bool asan_enabled();

}  // namespace llm::emu
