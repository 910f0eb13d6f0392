#include "fiber.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "llm/error.h"

#if defined(__SANITIZE_ADDRESS__)
#define LLM_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LLM_EMU_ASAN 1
#endif
#endif
#ifndef LLM_EMU_ASAN
#define LLM_EMU_ASAN 0
#endif
#if LLM_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !LLM_EMU_USE_UCONTEXT
// llm_emu_switch_context(save, load): pushes the callee-saved registers, stores rsp in *save,
// loads rsp from load and pops the registers saved there. A new fiber's stack is laid out as
// if it had been switched away from at the start of llm_emu_fiber_trampoline, with the entry
// function in r13 and its argument in r12.
// MXCSR and the x87 control word are not switched: kernels do not change rounding modes.
asm(R"(
  .text
  .globl llm_emu_switch_context
  .type llm_emu_switch_context, @function
  .p2align 4
llm_emu_switch_context:
  .cfi_startproc
  endbr64
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .cfi_endproc
  .size llm_emu_switch_context, .-llm_emu_switch_context

  .globl llm_emu_fiber_trampoline
  .type llm_emu_fiber_trampoline, @function
  .p2align 4
llm_emu_fiber_trampoline:
  .cfi_startproc
  .cfi_undefined rip
  endbr64
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size llm_emu_fiber_trampoline, .-llm_emu_fiber_trampoline
  .section .note.GNU-stack,"",@progbits
  .text
)");
extern "C" void llm_emu_switch_context(void** save_sp, void* load_sp);
extern "C" void llm_emu_fiber_trampoline();
#endif

namespace llm::emu {
namespace {

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

// First code to run on a new fiber's stack.
void fiber_start(void* p) {
  auto* ctx = static_cast<FiberContext*>(p);
#if LLM_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  ctx->entry(ctx->arg);
  // Entries end by switching away for good; reaching this is a bug in the emulator itself.
  std::fputs("cuda emulator: internal error: a fiber entry returned\n", stderr);
  std::abort();
}

#if LLM_EMU_USE_UCONTEXT
void ucontext_start(unsigned hi, unsigned lo) {
  const uintptr_t p = (static_cast<uintptr_t>(hi) << 32) | lo;
  fiber_start(reinterpret_cast<void*>(p));
}
#endif

}  // namespace

FiberStack::FiberStack(size_t usable_bytes) {
  const size_t page = page_size();
  size_ = (usable_bytes + page - 1) / page * page;
  mapping_bytes_ = size_ + page;
  void* m = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (m == MAP_FAILED) {
    fail("cuda emulator: cannot map a ", size_, "-byte fiber stack: ", std::strerror(errno));
  }
  mapping_ = static_cast<char*>(m);
  if (mprotect(mapping_, page, PROT_NONE) != 0) {
    munmap(mapping_, mapping_bytes_);
    fail("cuda emulator: cannot protect a fiber stack guard page: ", std::strerror(errno));
  }
  bottom_ = mapping_ + page;
}

FiberStack::~FiberStack() {
  if (mapping_) munmap(mapping_, mapping_bytes_);
}

FiberStack::FiberStack(FiberStack&& other) noexcept
    : mapping_(std::exchange(other.mapping_, nullptr)),
      mapping_bytes_(std::exchange(other.mapping_bytes_, 0)),
      bottom_(std::exchange(other.bottom_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

void StackPool::reserve(size_t n) {
  stacks_.reserve(n);
  while (stacks_.size() < n) stacks_.emplace_back(stack_bytes_);
}

void fiber_init_thread_context(FiberContext& ctx) {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
      ctx.stack_bottom = addr;
      ctx.stack_size = size;
    }
    pthread_attr_destroy(&attr);
  }
}

void fiber_prepare(FiberContext& ctx, const FiberStack& stack, FiberEntry entry, void* arg) {
  ctx.stack_bottom = stack.bottom();
  ctx.stack_size = stack.size();
  ctx.asan_fake_stack = nullptr;
  ctx.entry = entry;
  ctx.arg = arg;
#if LLM_EMU_USE_UCONTEXT
  if (getcontext(&ctx.uc) != 0) fail("cuda emulator: getcontext failed");
  ctx.uc.uc_stack.ss_sp = stack.bottom();
  ctx.uc.uc_stack.ss_size = stack.size();
  ctx.uc.uc_link = nullptr;
  const auto p = reinterpret_cast<uintptr_t>(&ctx);
  makecontext(&ctx.uc, reinterpret_cast<void (*)()>(&ucontext_start), 2, static_cast<unsigned>(p >> 32),
              static_cast<unsigned>(p & 0xffffffffu));
#else
  // Seven words: r15 r14 r13 r12 rbx rbp and the return address (the trampoline). The top of
  // a stack is page aligned, so sp + 56 == top is 16-byte aligned when the trampoline's call
  // pushes its return address, as the ABI wants.
  auto* sp = reinterpret_cast<uint64_t*>(stack.top()) - 7;
  sp[0] = 0;                                         // r15
  sp[1] = 0;                                         // r14
  sp[2] = reinterpret_cast<uint64_t>(&fiber_start);  // r13: function to call
  sp[3] = reinterpret_cast<uint64_t>(&ctx);          // r12: its argument
  sp[4] = 0;                                         // rbx
  sp[5] = 0;                                         // rbp: ends frame-pointer chains
  sp[6] = reinterpret_cast<uint64_t>(&llm_emu_fiber_trampoline);
  ctx.sp = sp;
#endif
}

void fiber_switch(FiberContext& from, FiberContext& to, bool from_finished) {
#if LLM_EMU_ASAN
  __sanitizer_start_switch_fiber(from_finished ? nullptr : &from.asan_fake_stack, to.stack_bottom, to.stack_size);
#else
  (void)from_finished;
#endif
#if LLM_EMU_USE_UCONTEXT
  swapcontext(&from.uc, &to.uc);
#else
  llm_emu_switch_context(&from.sp, to.sp);
#endif
#if LLM_EMU_ASAN
  __sanitizer_finish_switch_fiber(from.asan_fake_stack, nullptr, nullptr);
#endif
}

void asan_poison(const void* p, size_t n) {
#if LLM_EMU_ASAN
  __asan_poison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

void asan_unpoison(const void* p, size_t n) {
#if LLM_EMU_ASAN
  __asan_unpoison_memory_region(p, n);
#else
  (void)p;
  (void)n;
#endif
}

bool asan_enabled() { return LLM_EMU_ASAN != 0; }

}  // namespace llm::emu
