// Device half of CudaBackend::quantize / quant_matmul / quant_embedding (src/backend/cuda/quant.cpp).
// Formats: include/llm/backend.h (QuantizedMatrix) and docs/quantization.md; kernel designs: the
// comments of quant.cu and quant_matmul.cu.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"
#include "llm/dtype.h"

namespace llm::LLM_CUDA_NS {

// A QuantizedMatrix on the device as the kernels take it.
struct QuantDev {
  bool int4 = false;
  int64_t rows = 0, cols = 0, group = 0;
  const uint8_t* data = nullptr;  // row r at data + r * data_ld (bytes)
  int64_t data_ld = 0;
  const float* scales = nullptr;  // row r at scales + r * scales_ld (floats)
  int64_t scales_ld = 0;
};

// A float matrix argument: base pointer, dtype (f32, f16, bf16), row stride in elements.
struct FloatRows {
  const void* ptr = nullptr;
  DType type = DType::F32;
  int64_t ld = 0;
};

// q.data / q.scales (written through const_cast: the caller owns them) = quantize(w [rows, cols]).
// *bad_row = min(*bad_row, r) for each row r holding an inf or nan (its groups are skipped); the
// caller presets *bad_row (and *bad below) to 0x7f7f7f7f.
void quant_quantize(const FloatRows& w, const QuantDev& q, int* bad_row, cudaStream_t stream);

// out [n, cols] (dtype out.type, row stride out.ld) = dequant(table)[ids[i]]. *bad = min(*bad, i)
// for each ids[i] outside [0, rows) (that row of out is left as it was).
void quant_embedding_rows(const int32_t* ids, int64_t n, const QuantDev& table, void* out, DType out_type,
                          int64_t out_ld, int* bad, cudaStream_t stream);

// y [n, rows] = x [n, cols] @ dequant(w)^T (+ bias [rows], dense, dtype bias_type), fp32
// accumulation; y of dtype y_type with row stride y_ld. Picks the kernel (quant_matmul.cu).
void quant_matmul_rows(const QuantDev& w, const FloatRows& x, int64_t n, void* y, DType y_type, int64_t y_ld,
                       const void* bias, DType bias_type, cudaStream_t stream);

// Which kernel quant_matmul_rows runs for these arguments (for tests and docs):
//   "gemv" (n <= kQuantGemvMaxTokens, 16-byte aligned rows), "tiled" (larger n, aligned),
//   "generic" (anything else: odd groups, unaligned rows).
constexpr int64_t kQuantGemvMaxTokens = 16;
const char* quant_matmul_path(const QuantDev& w, const FloatRows& x, int64_t n);

}  // namespace llm::LLM_CUDA_NS
