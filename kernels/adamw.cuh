// AdamW on the device: one launch over every segment of the flat fp32 buffers (multi-tensor).
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// One segment as the kernel sees it: elements [offset, offset + count), multiplied by `decay`
// (1 - lr * weight_decay) first; its chunks (kAdamWChunk elements each) are numbered from first_chunk.
struct AdamWSeg {
  int64_t offset = 0, count = 0, first_chunk = 0;
  float decay = 1.0f;
};
constexpr int64_t kAdamWChunk = 4096;

struct AdamWArgs {
  float* param = nullptr;
  const float* grad = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  void* compute = nullptr;  // nullptr: no compute copy
  DType compute_dtype = DType::F32;
  float grad_scale = 1.0f, beta1 = 0.9f, beta2 = 0.95f, one_minus_beta1 = 0.1f, one_minus_beta2 = 0.05f;
  float step_size = 0.0f, bc2_sqrt = 1.0f, eps = 1e-8f;
};

// segs: a device array of nseg segments (first_chunk ascending), total_chunks chunks in all.
void adamw_segments(const AdamWArgs& args, const AdamWSeg* segs, int nseg, int64_t total_chunks, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
