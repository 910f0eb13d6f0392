// swiglu_forward / swiglu_backward on the device. Rows may be strided (ld in elements).
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// out[n, i] = silu(g) * u, g = gate_up[n, i], u = gate_up[n, I + i]; gate_up [N, 2I], out [N, I].
void swiglu_forward_rows(const void* gate_up, DType gt, int64_t ld_gu, void* out, DType ot, int64_t ld_out, int64_t N,
                         int64_t I, cudaStream_t stream);
// dgate_up [N, 2I] (overwritten) from dout [N, I] and gate_up [N, 2I].
void swiglu_backward_rows(const void* dout, DType dt, int64_t ld_dout, const void* gate_up, DType gt, int64_t ld_gu,
                          void* dgate_up, DType dgt, int64_t ld_dgu, int64_t N, int64_t I, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
