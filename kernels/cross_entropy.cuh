// Device half of CudaBackend::cross_entropy (src/backend/cuda/cross_entropy.cpp): the target check
// and the per-row softmax / loss / dlogits kernel that sits between the chunk's cuBLASLt GEMMs.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// *flag = min(*flag, n) for every n < count with targets[n * stride] >= vocab (negative targets
// are "ignore", not errors). The caller presets *flag to 0x7f7f7f7f and reads it back.
void ce_check_targets(const int32_t* targets, int64_t stride, int64_t count, int64_t vocab, int* flag,
                      cudaStream_t stream);

// For every row r < rows of logits [rows, vocab] (fp32, dense), with t = targets[r * target_stride]:
//   losses[r * loss_stride] = logsumexp(logits[r]) - logits[r, t]     (0 when t < 0)
// and when dlogits is not null, dlogits [rows, vocab] (dtype dt, dense) =
//   (softmax(logits[r]) - onehot(t)) * grad_scale                      (a zero row when t < 0).
// dlogits may alias logits when dt is F32 (each element is read before it is overwritten).
// stats, when not null: [rows, 2] the (max, sum of exp(logit - max)) each row used.
void ce_softmax_rows(float* logits, int64_t rows, int64_t vocab, const int32_t* targets, int64_t target_stride,
                     float* losses, int64_t loss_stride, void* dlogits, DType dt, float grad_scale, float* stats,
                     cudaStream_t stream);

// cross_entropy_dw's rows: logits [rows, cols] fp32 (dense) are columns [col0, col0 + cols) of
// the logits whose row statistics stats [rows, 2] holds; dlogits [rows, cols] (dtype dt, dense,
// may alias logits when F32) = exp(l - max) * (grad_scale / sum) - grad_scale * onehot(t - col0),
// the formula of ce_softmax_rows (a zero row when t < 0).
void ce_dlogits_cols(const float* logits, int64_t rows, int64_t cols, int64_t col0, const int32_t* targets,
                     int64_t target_stride, const float* stats, void* dlogits, DType dt, float grad_scale,
                     cudaStream_t stream);

// dst [rows, cols] (dtype dt, row stride ld elements) = src [rows, cols] fp32 dense, rounded once.
void ce_store_rows(const float* src, int64_t rows, int64_t cols, void* dst, DType dt, int64_t ld, cudaStream_t stream);

}  // namespace llm::LLM_CUDA_NS
