// embedding_forward / embedding_backward on the device.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// *bad = min(*bad, n) for every n < N whose ids[n] is outside [0, V). The caller sets *bad first.
void embedding_validate(const int32_t* ids, int64_t N, int64_t V, int* bad, cudaStream_t stream);

// out[n, :] = table[ids[n], :]   table [V, C] (row stride ld_table), out [N, C] (ld_out); ids valid.
void embedding_gather(const int32_t* ids, int64_t N, const void* table, DType tt, int64_t ld_table, void* out, DType ot,
                      int64_t ld_out, int64_t C, cudaStream_t stream);

// Device scratch bytes embedding_scatter_add needs for N tokens.
size_t embedding_scatter_scratch(int64_t N);
// dtable[ids[n] - row0, :] += dout[n, :] for the ids in [row0, row0 + rows), with each row of
// dtable [rows, C] (dense f32) adding its tokens in token order, the CPU's order, so the result is
// bitwise the CPU's and the same on every run. ids valid; scratch: embedding_scatter_scratch(N)
// bytes, 16-byte aligned.
void embedding_scatter_add(const int32_t* ids, int64_t N, const void* dout, DType dt, int64_t ld_dout, float* dtable,
                           int64_t row0, int64_t rows, int64_t C, void* scratch, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
