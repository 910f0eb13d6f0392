// Device helpers shared by quant.cu and quant_matmul.cu (device code only: not for host sources).
#pragma once

#include "quant.cuh"

namespace llm::LLM_CUDA_NS::quant_detail {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

// Element i of a float buffer whose dtype is only known at run time (epilogues, tile loads).
__device__ __forceinline__ float load_any(const void* p, DType t, int64_t i) {
  if (t == DType::F16) return __half2float(static_cast<const __half*>(p)[i]);
  if (t == DType::BF16) return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  return static_cast<const float*>(p)[i];
}

// p[i] = v rounded once to dtype t.
__device__ __forceinline__ void store_any(void* p, DType t, int64_t i, float v) {
  if (t == DType::F16) {
    static_cast<__half*>(p)[i] = __float2half_rn(v);
  } else if (t == DType::BF16) {
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
  } else {
    static_cast<float*>(p)[i] = v;
  }
}

// Quantized value q of column c of a row (int8: the byte; int4: the nibble, stored q + 8).
__device__ __forceinline__ int quant_at(const uint8_t* row, int64_t c, bool int4) {
  if (!int4) return static_cast<int8_t>(row[c]);
  return ((row[c >> 1] >> (4 * (c & 1))) & 15) - 8;
}

// Byte i (0..3) of word w as an exact float, without an int-to-float conversion (the I2F pipe is
// a quarter of the FP32 rate): the bits 0x4B000000 | b are the float 2^23 + b, so subtracting
// 2^23 + bias leaves b - bias exactly. One LOP3 (or PRMT) and one FADD.
__device__ __forceinline__ float byte_minus(unsigned w, int i, float bias_plus_2p23) {
  return __uint_as_float(((w >> (8 * i)) & 0xffu) | 0x4B000000u) - bias_plus_2p23;
}
// The same for nibble i (0..7): nibble 2j is the low half of byte j.
__device__ __forceinline__ float nibble_minus(unsigned w, int i, float bias_plus_2p23) {
  return __uint_as_float(((w >> (4 * i)) & 0xfu) | 0x4B000000u) - bias_plus_2p23;
}

}  // namespace llm::LLM_CUDA_NS::quant_detail
