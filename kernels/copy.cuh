// copy / fill on the device: strided copies with dtype conversion (KV-cache writes, weight
// uploads through an f32 staging buffer, column blocks of fused buffers) and constant fills.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// Up to 4-D with a dense last dim: rows are indexed by (i0, i1, i2) < size, at src + i0 * src_stride[0]
// + i1 * src_stride[1] + i2 * src_stride[2] (elements), each `cols` dense elements; dst likewise.
struct CopyShape {
  int64_t size[3] = {1, 1, 1};
  int64_t src_stride[3] = {0, 0, 0};
  int64_t dst_stride[3] = {0, 0, 0};
  int64_t cols = 0;
};

// dst = src: a bit copy when the dtypes are equal (any dtype), else float -> float with one
// round-to-nearest-even. 128-bit accesses when every row start of both is 16-byte aligned.
void copy_strided(const void* src, DType src_dtype, void* dst, DType dst_dtype, const CopyShape& shape,
                  cudaStream_t stream);

// n elements of elem_bytes (1, 2 or 4) at p set to the low elem_bytes bytes of pattern.
void fill_pattern(void* p, int64_t n, int elem_bytes, uint32_t pattern, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
