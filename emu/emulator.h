// The CUDA emulator as kernel sources see it (through kernels/cuda_compat.cuh when the host
// compiler builds them): CUDA's keywords, built-in variables, device API, runtime and cuBLASLt.
// Everything lives in llm::emu (so nothing collides with the real CUDA libraries when both are
// linked into one program) and is made visible to the including file by one using-directive.
#pragma once

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "block.h"
#include "cublaslt.h"
#include "device_api.h"
#include "device_math.h"
#include "graph.h"
#include "half.h"
#include "launch.h"
#include "profile.h"
#include "runtime.h"
#include "types.h"

// The architecture whose code paths emulated kernels take (LLM_CUDA_ARCH in kernels).
#ifndef LLM_EMU_ARCH
#define LLM_EMU_ARCH 800
#endif

// ---- CUDA keywords on the host compiler ---------------------------------------------------------
// __shared__: one OS thread runs one block at a time, so a static thread_local is exactly one
// copy per running block, shared by its fibers. (Dynamic shared memory: LLM_DYNAMIC_SHARED.)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local
#define __constant__
#define __managed__
#define __grid_constant__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

// Built-in variables: the running fiber's coordinates (read-only, as in CUDA). They are macros,
// so emulated sources cannot use these four names for anything else. warpSize is a constant
// (in device_api.h), so cudaDeviceProp::warpSize keeps working.
#define threadIdx (static_cast<const ::llm::emu::uint3&>(::llm::emu::detail::thread().idx))
#define blockIdx (static_cast<const ::llm::emu::uint3&>(::llm::emu::detail::block().block_idx))
#define blockDim (static_cast<const ::llm::emu::dim3&>(::llm::emu::detail::block().block_dim))
#define gridDim (static_cast<const ::llm::emu::dim3&>(::llm::emu::detail::block().grid_dim))

using namespace ::llm::emu;  // NOLINT: the CUDA API is global in CUDA too
