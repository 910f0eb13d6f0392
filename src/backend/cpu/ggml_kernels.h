// quant_matmul / quant_embedding on ggml's block formats (QuantKind::Ggml), on the CPU: the
// interface between cpu/quant.cpp (which dispatches here) and ggml_quant_matmul.cpp.
//
// The weights are read as they are stored (the raw blocks of a GGUF file, never expanded to fp32
// as a whole): a row is decoded block by block into fp32 scratch and dotted with fp32
// activations (decode, few tokens), or a tile of rows is decoded once and multiplied by every
// token with sgemm (prefill). From kInt8DotMinTokens tokens on, Q8_0 and Q4_0 take the int8 path
// instead (int8_dot_kernels.h): activations quantized to int8 blocks, integer dot products.
#pragma once

#include <cstdint>

#include "backend/cpu/int8_dot_kernels.h"
#include "llm/backend.h"

namespace llm::cpu {

// y [N, rows] = x [N, cols] @ dequant(w)^T (+ bias); w.kind == Ggml, arguments already checked;
// isa: the int8 kernel for many tokens.
void ggml_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias, Int8DotIsa isa);
// out [N, cols] = dequant(table)[ids[n], :]; table.kind == Ggml, arguments already checked.
void ggml_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out);

// Decodes one row of n values of ggml type t (n a multiple of its block) into out: the values
// ggml's dequantize_row_* gives, in the same float operations.
void ggml_decode_row(GgmlType t, const uint8_t* row, int64_t n, float* out);

}  // namespace llm::cpu
