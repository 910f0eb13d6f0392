// What CPU attention's fp32 path (attention.cpp) and bf16 path (attention_bf16.cpp) share: the
// first key a query sees, and the bf16 path's entry points.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>

#include "llm/tensor.h"

namespace llm::cpu {

// The first key query t of row b sees: the start of its document with positions [B, T] (clamped
// to [0, t]), else 0.
inline int64_t first_key(const int32_t* pos, int64_t b, int64_t T, int64_t t) {
  return pos ? std::clamp<int64_t>(t - pos[b * T + t], 0, t) : 0;
}

// Whether this CPU runs attention_bf16.cpp's kernels (AVX512-BF16).
bool attention_bf16_supported();
// Whether attention over these checked [B, T, H, D] operands can take the bf16 path: every one
// bf16 with dense head rows of an even size.
bool attention_bf16_applies(std::initializer_list<const Tensor*> operands);

// attention_forward / attention_backward with bf16 operands, on vdpbf16ps (attention_bf16.cpp):
// scores and their softmax in fp32, the probabilities and their gradient rounded to bf16 for the
// products that take them, as the GPU's kernels do; dk and dv summed in fp32, rounded once.
void attention_forward_bf16(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                            const Tensor& positions);
void attention_backward_bf16(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                             const Tensor& lse, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                             const Tensor& positions);

}  // namespace llm::cpu
