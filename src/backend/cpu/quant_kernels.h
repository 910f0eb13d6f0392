// Weight-only int8/int4 quant_matmul on the CPU: the kernel interface shared by quant.cpp (checks,
// threading, dtype conversion) and one kernel file per instruction set (quant_portable.cpp,
// quant_avx2.cpp, quant_avx512.cpp).
//
// Every kernel computes the same function bit for bit, because the order of the fp32 operations
// is fixed here, not left to each kernel ("the canonical order"):
//  - A row of w is cut into chunks of 32 columns (a shorter last chunk when 32 does not divide
//    cols). A chunk's columns have "positions" 0..m-1: for int8 position p is column p of the
//    chunk; for int4 the chunk's m/2 bytes give positions 0..m/2-1 to the even columns (low
//    nibbles) and m/2..m-1 to the odd columns (high nibbles), so one byte load feeds two vectors.
//    quant.cpp stores x in the same permuted order (QuantArgs::x), so position p of w meets
//    position p of x.
//  - Each (row, token) has 32 fp32 lane sums A[0..31] = +0. For each chunk in order and each
//    position p: w = float(q) * scale (one rounding), A[p] = fma(w, x[p], A[p]).
//  - The sum is reduced as a tree: A[k] += A[k + 16], then + 8, + 4, + 2, + 1 (k below the half),
//    and y = A[0] (+ bias, added by quant.cpp).
// An AVX-512 register holds 16 lanes (two per row), AVX2 eight (four per row); the portable
// kernel keeps the 32 sums in an array. Lanes are independent, so a kernel may walk them in any
// grouping as long as each lane sees its chunks in order. The vector kernels handle
// group % 32 == 0 (every chunk has one scale); anything else runs the portable kernel, which is
// the same function. N does not change the order either: token n's result does not depend on
// the other tokens in the batch (prefill and decode agree bit for bit).
#pragma once

#include <cstdint>
#include <vector>

#include "llm/backend.h"

namespace llm::cpu {

enum class QuantIsa : uint8_t { Portable, Avx2, Avx512 };

const char* quant_isa_name(QuantIsa isa);
// Whether this CPU can run the kernel (Portable always can).
bool quant_isa_supported(QuantIsa isa);
// Every kernel this CPU can run, Portable first.
std::vector<QuantIsa> quant_isas_supported();
// The kernel LLM_CPU_KERNELS names (portable | avx2 | avx512 | auto; unset = auto, the widest
// supported). A value the CPU cannot run is an error that starts with `op`.
QuantIsa quant_isa_from_env(const char* op);

// quant_matmul with the kernel chosen by the caller (the tests run every path through this):
// checks the arguments as Backend::quant_matmul does (check_quant_matmul), then runs
// quant_matmul_checked, which takes them as checked.
void quant_matmul_isa(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias, QuantIsa isa);
void quant_matmul_checked(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias, QuantIsa isa);

// Everything a kernel needs for rows [r0, r1) of one call.
struct QuantArgs {
  QuantKind kind = QuantKind::Int8;
  int64_t cols = 0, group = 0;
  const uint8_t* data = nullptr;  // row r at data + r * data_ld (bytes)
  int64_t data_ld = 0;
  const float* scales = nullptr;  // row r at scales + r * scales_ld
  int64_t scales_ld = 0;
  const float* x = nullptr;  // [n_pad, cols] fp32 in position order (see above); padding rows 0
  int64_t n = 0;             // tokens
  int64_t n_pad = 0;         // n rounded up to kQuantTokenPad
  float* y = nullptr;        // y[t * y_ld + r]: the lane-sum results, without bias
  int64_t y_ld = 0;
};

constexpr int64_t kQuantChunk = 32;    // columns per chunk
constexpr int64_t kQuantTokenPad = 6;  // x rows are padded to a multiple of this for the tile kernels
constexpr int64_t kQuantTileRows = 4;  // rows of a dequantized tile are padded to a multiple of this
// How far ahead of the rows being read the decode kernels prefetch (bytes; at least one block
// of rows).
constexpr int64_t kQuantPrefetchBytes = 16384;
// Tokens from which the kernels dequantize a block of rows to fp32 once and reuse it for every
// token (below, they stream the quantized bytes once per token).
constexpr int64_t kQuantTileMinTokens = 4;

// The blocking of the prefill (tile) kernels: rows dequantized per tile (about 256 KiB of fp32,
// in L2), tokens per block whose lane sums are kept (tile_rows * tokens * 32 floats), and
// columns per inner block (the x and weight rows of one micro-kernel call stay in L1).
struct QuantTilePlan {
  int64_t tile_rows = 0, tokens = 0, cols = 0;
};
QuantTilePlan quant_tile_plan(const QuantArgs& a);
// Floats of per-thread scratch a kernel needs for a call with these arguments.
int64_t quant_scratch_floats(const QuantArgs& a);

// The kernels: rows [r0, r1) of y for all n tokens. scratch: quant_scratch_floats(a) floats.
void quant_rows_portable(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch);
#if defined(__x86_64__)
void quant_rows_avx2(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch);
void quant_rows_avx512(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch);
#endif

// The canonical reduction of 32 lane sums (shared by the portable kernel and the tile kernels'
// epilogue, which store their lanes to memory first).
inline float quant_reduce32(const float* a) {
  float t[16];
  for (int k = 0; k < 16; ++k) t[k] = a[k] + a[k + 16];
  for (int k = 0; k < 8; ++k) t[k] = t[k] + t[k + 8];
  for (int k = 0; k < 4; ++k) t[k] = t[k] + t[k + 4];
  for (int k = 0; k < 2; ++k) t[k] = t[k] + t[k + 2];
  return t[0] + t[1];
}

// Dequantizes rows [r0, r1) of w into tile rows of `cols` floats in position order (the portable
// version, also the reference the vector tile loaders must equal).
void quant_dequant_rows_portable(const QuantArgs& a, int64_t r0, int64_t r1, float* tile);

}  // namespace llm::cpu
