// quant_matmul / quant_embedding on ggml's block formats (QuantKind::Ggml), on the CPU: the
// interface between cpu/quant.cpp (which dispatches here) and ggml_quant_matmul.cpp.
//
// The weights are read as they are stored (the raw blocks of a GGUF file, never expanded to fp32
// as a whole): a row is decoded block by block into fp32 scratch and dotted with fp32
// activations (decode, few tokens; Q4_0 on AVX-512 without the scratch: ggml_gemv_avx512), or a tile of rows is decoded
// once and multiplied by every token with sgemm (prefill). From kInt8DotMinTokens tokens on, Q8_0 and Q4_0 take the
// int8 path instead (int8_dot_kernels.h): activations quantized to int8 blocks, integer dot products.
#pragma once

#include <cstdint>

#include "backend/cpu/int8_dot_kernels.h"
#include "llm/backend.h"
#include "llm/dtype.h"

namespace llm::cpu {

// y [N, rows] = x [N, cols] @ dequant(w)^T (+ bias); w.kind == Ggml, arguments already checked;
// isa: the int8 kernel for many tokens.
void ggml_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias, Int8DotIsa isa);
// out [N, cols] = dequant(table)[ids[n], :]; table.kind == Ggml, arguments and ids already checked.
void ggml_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out);

// The little-endian f16 at p, as fp32.
inline float ggml_f16_at(const uint8_t* p) { return f16_bits_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// The 6-bit scale and min of sub-block j of a q4_K super-block's 12 scale bytes q (ggml's
// get_scale_min_k4).
inline void ggml_scale_min_k4(int j, const uint8_t* q, int& d, int& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Decode with AVX-512 straight from the blocks (ggml_gemv_avx512.cpp): y[t * ldy + r] = the fp32
// dot product of row r (r0 <= r < r1) with token t's x [n, cols] (dense rows), without bias. For
// the types ggml_gemv_avx512_supports names, on a CPU with AVX-512F/BW/DQ/VL and F16C.
bool ggml_gemv_avx512_supports(GgmlType t);
void ggml_gemv_avx512(GgmlType t, const uint8_t* data, int64_t data_ld, int64_t r0, int64_t r1, int64_t cols,
                      const float* x, int64_t n, float* y, int64_t ldy);

// Decodes one row of n values of ggml type t (n a multiple of its block) into out: the values
// ggml's dequantize_row_* gives, in the same float operations.
void ggml_decode_row(GgmlType t, const uint8_t* row, int64_t n, float* out);

}  // namespace llm::cpu
