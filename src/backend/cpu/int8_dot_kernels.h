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
// The k-quants fit the same frame with one more term per block (Int8Scales):
//  - Q4_K (x = d s q - dmin m per 32 values, q in 0..15): offset 0 and, after the block's fma,
//      acc = fma(float(qsum[t, b]), mn[r, b] * dx[t, b], acc)   with mn = -(dmin m) and qsum the
//    sum of the token's 32 q: the min times the block sum of the activations.
//  - Q6_K (x = d s_h (q - 32) per 16 values, q in 0..63): offset 32 and two scales per block, the
//    halves summed and scaled apart, the first then the second:
//      isum_bh = hcorr[t, b, h] + sum_{j < 16} u[r, 32 b + 16 h + j] * q[t, 32 b + 16 h + j]
//      acc = fma(float(isum_bh), dw[r, b, h] * dx[t, b], acc)
// d s, dmin m and d s_h are exact in fp32 (an f16 times an integer of at most 8 bits).
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

// How a format's weight blocks are scaled (the header's comment gives each formula).
enum class Int8Scales : uint8_t { Block, Halves, BlockAndMin };

struct Int8Format {
  bool supported = false;
  int offset = 0;    // of the unsigned bytes: 128 (Q8_0), 32 (Q6_K), 16 (Q5_0), 8 (Q4_0), 0 (Q4_K)
  int max_byte = 0;  // the largest byte value: 255, 63, 31, 15, 15 (the AVX2 kernel's int16 budget)
  Int8Scales scales = Int8Scales::Block;
};
// The repacker's reading of ggml type t (supported false for the types it does not read).
Int8Format int8_dot_format(GgmlType t);
// The same for a matrix: its ggml type, or our Int8 (offset 128) and Int4 (offset 8) with one
// scale per block (group % 32 == 0).
Int8Format int8_dot_format(const QuantizedMatrix& w);
// Whether w is in a format the repacker reads: ggml Q8_0, Q5_0, Q4_0, Q4_K and Q6_K, and Int8 /
// Int4 with group % 32 == 0 that ask for it (QuantizedMatrix::int8_activations).
bool int8_dot_supports(const QuantizedMatrix& w);

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
  const int8_t* q = nullptr;       // [n, cols]
  const float* d = nullptr;        // [n, blocks]: block scales
  const int32_t* corr = nullptr;   // [n, blocks]: -offset * (sum of the block's q)
  const int32_t* qsum = nullptr;   // [n, blocks]: sum of the block's q (BlockAndMin)
  const int32_t* hcorr = nullptr;  // [n, blocks, 2]: -offset * (sum of each half's q) (Halves)
};

struct Int8Panel {
  int64_t groups = 0, blocks = 0;
  // [groups][blocks][8 steps][16 rows][4 bytes]: column 32 b + 4 s + k of row 16 g + i is at
  // ((g * blocks + b) * 8 + s) * 64 + 4 i + k, as value + offset.
  const uint8_t* u = nullptr;
  // [groups][blocks][16] the weight block scales; Halves: [groups][blocks][2][16], half 0 first.
  const float* d = nullptr;
  const float* mn = nullptr;  // BlockAndMin: [groups][blocks][16], -(dmin m)
  int offset = 0;             // Int8Format::offset
  int max_byte = 0;           // Int8Format::max_byte
  Int8Scales scales = Int8Scales::Block;
};

// The kernels: y[t * ldy + r] for every token of a and rows r < valid of the panel (y points at
// the panel's first row; rows past valid are padding and not written).
void int8_dot_panel_portable(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid);
#if defined(__x86_64__)
void int8_dot_panel_avx2(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid);
void int8_dot_panel_avx512vnni(const Int8Panel& p, const Int8Acts& a, float* y, int64_t ldy, int64_t valid);
#endif

}  // namespace llm::cpu
