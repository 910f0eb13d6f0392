// Kernel launch under the emulator: what LLM_LAUNCH expands to on the host compiler.
// Arguments are converted to the kernel's parameter types once (as a real launch does), and
// every emulated thread calls the kernel with its own copies of them.
#pragma once

#include <cstddef>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

#include "graph.h"
#include "launch_info.h"
#include "types.h"

namespace llm::emu {

// Validates the configuration (a bad one sets cudaGetLastError's error and runs nothing, as on
// a GPU), runs all blocks on the worker threads, checks device-memory red zones, and throws
// KernelError when the kernel misbehaved.
void launch_erased(const KernelLaunch& launch, cudaStream_t stream);
// The launch into a capturing stream: validated now (a bad configuration invalidates the
// capture), recorded with `args` (which launch.args points into) kept alive by the graph.
void capture_launch(const KernelLaunch& launch, cudaStream_t stream, std::shared_ptr<const void> args);

template <class... Params, class... Args>
void launch_kernel(const char* name, const char* file, unsigned line, void (*kernel)(Params...), dim3 grid, dim3 block,
                   size_t smem_bytes, cudaStream_t stream, Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "LLM_LAUNCH: wrong number of kernel arguments");
  using Tuple = std::tuple<std::decay_t<Params>...>;
  struct Packed {
    void (*fn)(Params...);
    Tuple args;
  };
  const Packed packed{kernel, Tuple(std::forward<Args>(args)...)};
  KernelLaunch l;
  l.kernel_name = name;
  l.file = file;
  l.line = line;
  l.grid = grid;
  l.block = block;
  l.smem_bytes = smem_bytes;
  l.invoke = [](const void* p) {
    const Packed& pk = *static_cast<const Packed*>(p);
    std::apply(pk.fn, pk.args);  // by-value parameters: each thread gets its own copies
  };
  l.args = &packed;
  l.kernel_id = reinterpret_cast<void (*)()>(kernel);
  if (stream_capturing(stream)) {
    // A graph node keeps its own copy of the arguments, taken now, as a captured launch does.
    auto held = std::make_shared<const Packed>(packed);
    l.args = held.get();
    capture_launch(l, stream, std::move(held));
    return;
  }
  launch_erased(l, stream);
}

// The dynamic shared memory limit of a kernel (cudaFuncSetAttribute).
int max_dynamic_smem(void (*kernel_id)());
cudaError_t set_max_dynamic_smem(void (*kernel_id)(), int bytes);

}  // namespace llm::emu
