// Emulated device memory: host memory with red zones. Every cudaMalloc'd buffer gets a
// 256-byte-aligned start (as on a GPU) and guard bytes on both sides. Without AddressSanitizer
// the guards hold a canary that is checked after every kernel launch (a launch that wrote past
// a buffer throws KernelError naming the buffer and where it was allocated); under ASan they are
// poisoned, so ASan reports the faulting access itself, with its stack.
// The registry also lets cudaMemcpy and friends reject host pointers passed as device pointers.
#pragma once

#include <cstddef>
#include <source_location>
#include <string>

namespace llm::emu {

// nullptr when out of memory.
void* device_alloc(size_t bytes, const std::source_location& where);
// false when p is not the start of a live device allocation.
bool device_free(void* p);
// [p, p + bytes) lies inside one live device allocation.
bool is_device_range(const void* p, size_t bytes);
// p points into some live device allocation (any byte of it).
bool is_device_pointer(const void* p);

// Page-locked host memory (cudaMallocHost): ordinary memory, tracked so it counts as host.
void* pinned_alloc(size_t bytes);
bool pinned_free(void* p);

size_t device_bytes_in_use();
// Checks and re-arms the canaries of every live allocation; returns what was corrupted
// ("" when nothing was).
std::string check_device_redzones();

}  // namespace llm::emu
