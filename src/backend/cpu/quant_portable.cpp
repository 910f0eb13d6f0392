// The portable quant_matmul kernel: plain C++ that spells out the canonical operation order of
// quant_kernels.h (32 lane sums, fma per position, the fixed reduction tree). It is the fallback
// for CPUs without AVX2 and for groups the vector kernels do not take, and the reference the
// vector kernels are tested against bit for bit.
#include <algorithm>
#include <cmath>

#include "backend/cpu/quant_kernels.h"

namespace llm::cpu {

void quant_dequant_rows_portable(const QuantArgs& a, int64_t r0, int64_t r1, float* tile) {
  const int64_t cols = a.cols, group = a.group;
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* q = a.data + r * a.data_ld;
    const float* s = a.scales + r * a.scales_ld;
    float* dst = tile + (r - r0) * cols;
    for (int64_t c0 = 0; c0 < cols; c0 += kQuantChunk) {
      const int64_t m = std::min(kQuantChunk, cols - c0);
      if (a.kind == QuantKind::Int8) {
        for (int64_t p = 0; p < m; ++p) {
          dst[c0 + p] = static_cast<float>(static_cast<int8_t>(q[c0 + p])) * s[(c0 + p) / group];
        }
      } else {
        // Byte j of the chunk holds columns c0 + 2j (low nibble, position j) and c0 + 2j + 1
        // (high nibble, position m/2 + j).
        const int64_t h = m / 2;
        for (int64_t j = 0; j < h; ++j) {
          const int b = q[c0 / 2 + j];
          dst[c0 + j] = static_cast<float>((b & 15) - 8) * s[(c0 + 2 * j) / group];
          dst[c0 + h + j] = static_cast<float>((b >> 4) - 8) * s[(c0 + 2 * j + 1) / group];
        }
      }
    }
  }
}

void quant_rows_portable(const QuantArgs& a, int64_t r0, int64_t r1, float* scratch) {
  const int64_t cols = a.cols;
  for (int64_t r = r0; r < r1; ++r) {
    // One row dequantized once, reused for every token.
    quant_dequant_rows_portable(a, r, r + 1, scratch);
    for (int64_t t = 0; t < a.n; ++t) {
      const float* x = a.x + t * cols;
      float lanes[kQuantChunk] = {};
      for (int64_t c0 = 0; c0 < cols; c0 += kQuantChunk) {
        const int64_t m = std::min(kQuantChunk, cols - c0);
        for (int64_t p = 0; p < m; ++p) lanes[p] = std::fma(scratch[c0 + p], x[c0 + p], lanes[p]);
      }
      a.y[t * a.y_ld + r] = quant_reduce32(lanes);
    }
  }
}

}  // namespace llm::cpu
