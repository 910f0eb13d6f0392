// Quantized matmul for many tokens (prefill, batched decode, perplexity) on integer dot products,
// as llama.cpp computes it: the activations are quantized on the fly to int8 blocks of 32 values
// with one fp32 scale each, and every 32-value block of a weight row meets a block of a token in
// exact int32 arithmetic; only the per-block scaling and the sum over blocks are floating point.
//
// The weights are repacked, one panel of rows at a time, into groups of 16 rows interleaved by 4
// bytes: 64 bytes hold columns c..c+3 of 16 rows, so one AVX-512 VNNI vpdpbusd multiplies them by
// a broadcast 4 bytes of one token and adds into 16 row sums (AVX2: two halves of 8 rows). The
// bytes are unsigned, value + offset (8 for 4-bit weights, 16 for 5-bit, 128 for 8-bit), which vpdpbusd
// and vpmaddubsw need; the offset times the sum of the token's block is subtracted once per block
// (Int8Acts::corr). So one set of kernels serves every format a repacker writes.
//
// The function is fixed (every ISA path gives the same bits), for each (row r, token t):
//   isum_b = corr[t, b] + sum_{j < 32} u[r, 32 b + j] * q[t, 32 b + j]   (exact: |isum_b| < 2^21)
//   acc    = +0;  for b in order:  acc = fma(float(isum_b), dw[r, b] * dx[t, b], acc)
//   y[t, r] = acc
// and the activation quantization is one portable function: dx = amax / 127 over the block and
// q = round-half-even(x / dx) (q = 0 where dx is 0; dx = nan and q = 0 where the block holds an
// inf or a nan, so that the result is nan as the fp32 product would be).
#pragma once

#include <cstdint>

#include "backend/cpu/quant_kernels.h"
#include "llm/backend.h"

namespace llm::cpu {

enum class Int8DotIsa : uint8_t { Portable, Avx2, Avx512Vnni };

const char* int8_dot_isa_name(Int8DotIsa isa);
bool int8_dot_isa_supported(Int8DotIsa isa);
// The widest path this CPU runs.
Int8DotIsa int8_dot_isa_best();
// The int8 path that goes with the fp32 kernel LLM_CPU_KERNELS picked (avx512 takes VNNI where the
// CPU has it, else AVX2), so that one variable forces every quantized kernel.
Int8DotIsa int8_dot_isa_for(QuantIsa isa);

// Tokens from which ggml_quant_matmul takes the int8 path (below, it decodes rows to fp32 and
// dots them with each token, which is faster for a few tokens and keeps decode exact in fp32).
// Measured with bench/quant_gemv.cpp on the Qwen2.5-0.5B shapes (docs/quantization.md).
constexpr int64_t kInt8DotMinTokens = 4;

// Whether w is in a format the repacker reads (ggml Q8_0, Q5_0 and Q4_0).
bool int8_dot_supports(const QuantizedMatrix& w);
// The offset of a format's unsigned bytes: 128 (Q8_0), 16 (Q5_0: 0..31), 8 (Q4_0: 0..15); 0 for
// the formats the repacker does not read.
int int8_dot_offset(GgmlType t);

// y[t * ldy + r] = sum over blocks as above, for x [n, w.cols] fp32 dense rows; w checked and
// int8_dot_supports(w). Parallel over panels of rows with OpenMP; the result does not depend on
// the thread count.
void int8_dot_matmul(const float* x, int64_t n, const QuantizedMatrix& w, float* y, int64_t ldy, Int8DotIsa isa);

// What the kernels read (int8_dot.cpp fills them).
constexpr int64_t kInt8Block = 32;                                     // values per block (weights and activations)
constexpr int64_t kInt8GroupRows = 16;                                 // rows per interleaved group
constexpr int64_t kInt8GroupBlockBytes = kInt8Block * kInt8GroupRows;  // 512

struct Int8Acts {
  int64_t n = 0, cols = 0, blocks = 0;
  const int8_t* q = nullptr;      // [n, cols]
  const float* d = nullptr;       // [n, blocks]: block scales
  const int32_t* corr = nullptr;  // [n, blocks]: -offset * (sum of the block's q)
};

struct Int8Panel {
  int64_t groups = 0, blocks = 0;
  // [groups][blocks][8 steps][16 rows][4 bytes]: column 32 b + 4 s + k of row 16 g + i is at
  // ((g * blocks + b) * 8 + s) * 64 + 4 i + k, as value + offset.
  const uint8_t* u = nullptr;
  const float* d = nullptr;  // [groups][blocks][16]: the weight block scales
  int offset = 0;            // 8, 16 or 128
};

// The kernels: y[t * ldy + r] for every token of a and rows r < valid of the panel (y points at
// the panel's first row; rows past valid are padding and not written).
void int8_dot_panel_portable(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid);
#if defined(__x86_64__)
void int8_dot_panel_avx2(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid);
void int8_dot_panel_avx512vnni(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid);
#endif

}  // namespace llm::cpu
