// ggml's tensor storage types (the subset a GGUF export writes) and their block formats, computed
// exactly as ggml's reference quantizers (quantize_row_*_ref in ggml-quants.c) compute them, so a
// file written here holds the bytes llama-quantize would write for the same fp32 values (no
// importance matrix). Each type has a dequantize for tests and for reading such files back.
//
// Block layouts (little endian, f16 = IEEE half):
//   Q8_0  32 values:  f16 d, int8 qs[32]                                     34 bytes   x = d*q
//   Q4_0  32 values:  f16 d, u8 qs[16] (lo nibble j, hi nibble j+16)          18 bytes   x = d*(q-8)
//   Q5_0  32 values:  f16 d, u32 qh (5th bits), u8 qs[16]                     22 bytes   x = d*(q-16)
//   Q4_K  256 values: f16 d, f16 dmin, u8 scales[12] (8 x 6-bit scale+min),
//                     u8 qs[128]                                              144 bytes  x = d*sc*q - dmin*m
//   Q6_K  256 values: u8 ql[128], u8 qh[64], int8 scales[16], f16 d           210 bytes  x = d*sc*(q-32)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace llm {

// ggml_type values as GGUF stores them.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q5_0 = 6,
  Q8_0 = 8,
  Q4_K = 12,
  Q6_K = 14,
  BF16 = 30,
};

// "f32", "q8_0", "q4_K", ... (ggml's spelling); "?" for a value outside the enum. Inline: the
// backends name types in their errors without linking the io module.
inline std::string_view ggml_type_name(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return "f32";
    case GgmlType::F16: return "f16";
    case GgmlType::BF16: return "bf16";
    case GgmlType::Q8_0: return "q8_0";
    case GgmlType::Q4_0: return "q4_0";
    case GgmlType::Q5_0: return "q5_0";
    case GgmlType::Q4_K: return "q4_K";
    case GgmlType::Q6_K: return "q6_K";
  }
  return "?";
}
int64_t ggml_block_elems(GgmlType t);  // values per block (1 for f32/f16/bf16)
size_t ggml_block_bytes(GgmlType t);   // bytes per block
// Bytes of n values; n must be a multiple of the block (error naming the type otherwise).
size_t ggml_row_bytes(GgmlType t, int64_t n);

// Encodes n values of x as type t into out (ggml_row_bytes(t, n) bytes). n must be a multiple
// of the block. f16/bf16 round to nearest even, as ggml's conversions do.
void ggml_quantize(GgmlType t, const float* x, int64_t n, uint8_t* out);
// Decodes n values of type t (ggml's dequantize_row_* formulas).
void ggml_dequantize(GgmlType t, const uint8_t* in, int64_t n, float* out);

}  // namespace llm
