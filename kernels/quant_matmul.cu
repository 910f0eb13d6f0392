// quant_matmul kernels: y [n, rows] = x [n, cols] @ dequant(w)^T (+ bias), fp32 accumulation.
//  gemv     n <= 16 (decode): streams the quantized rows once per pass of up to 4 tokens with
//           128-bit loads; a group of G lanes (8..256, about two 16-byte chunks per lane) shares
//           4 rows, so each x load feeds 4 rows; shuffle (+ shared memory) reduction.
//  tiled    larger n (prefill): a 64-row weight tile is dequantized to fp32 in shared memory once
//           per 32 columns and reused by 64 tokens; 4x4 outputs per thread.
//  generic  odd groups or unaligned rows: one warp per row, plain loads; correct, not fast.
// The products are the CPU op's (float(q) * scale, or q * x summed per chunk and then scaled),
// summed in a different order: equal to the CPU op within fp32 rounding, not bit for bit.
#include "quant_device.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

using namespace quant_detail;

constexpr float kInt8Bias = 8388608.0f + 128.0f;  // 2^23 + 128: the bytes are stored q ^ 0x80 below
constexpr float kInt4Bias = 8388608.0f + 8.0f;    // 2^23 + 8: nibbles hold q + 8

struct OutArgs {
  void* y = nullptr;
  DType y_type = DType::F32;
  int64_t y_ld = 0;
  const void* bias = nullptr;
  DType bias_type = DType::F32;
};

__device__ __forceinline__ void write_out(const OutArgs& o, int64_t t, int64_t r, float v) {
  if (o.bias != nullptr) v += load_any(o.bias, o.bias_type, r);
  store_any(o.y, o.y_type, t * o.y_ld + r, v);
}

// ---- gemv ------------------------------------------------------------------------------------------
constexpr int kGemvThreads = 256;
constexpr int kGemvRows = 4;

// Four consecutive x values (16-byte aligned for f32, 8-byte for the 16-bit types).
__device__ __forceinline__ float4 load_x4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float half_bits(unsigned b) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(b)));
}
__device__ __forceinline__ float4 load_x4(const __half* p) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  return make_float4(half_bits(u.x & 0xffffu), half_bits(u.x >> 16), half_bits(u.y & 0xffffu), half_bits(u.y >> 16));
}
__device__ __forceinline__ float4 load_x4(const __nv_bfloat16* p) {  // bf16 is the top half of an f32
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                     __uint_as_float(u.y & 0xffff0000u));
}

__device__ __forceinline__ unsigned word_of(const uint4& q, int i) {
  return i == 0 ? q.x : (i == 1 ? q.y : (i == 2 ? q.z : q.w));
}

// Block: 256 / G groups of G lanes, each group kGemvRows consecutive rows. Lane l of a group takes
// the row's 16-byte chunks l, l + G, ... (the next one is loaded while the current one is summed).
// Per chunk and (row, token): part = sum q * x over the chunk's 16 (int8) or 32 (int4) columns,
// then acc = fma(part, scale, acc): one scale multiply per chunk instead of one per weight.
// Four tokens x four rows of accumulators need ~170 registers: one block per SM there (spilling
// under the default 128-register cap), two for the decode path (T = 1).
template <bool kInt4, int T, class XT>
__global__ void __launch_bounds__(kGemvThreads, T >= 4 ? 1 : 2)
    gemv_kernel(QuantDev w, int log2_g, const XT* __restrict__ x, int64_t x_ld, int ntok, OutArgs o) {
  constexpr int R = kGemvRows;
  constexpr int kCols = kInt4 ? 32 : 16;  // columns per 16-byte chunk
  const int tid = static_cast<int>(threadIdx.x);
  const int g = 1 << log2_g, lane_g = tid & (g - 1), grp = tid >> log2_g;
  const int64_t row0 = (static_cast<int64_t>(blockIdx.x) * (kGemvThreads >> log2_g) + grp) * R;
  const int chunks = static_cast<int>(w.cols / kCols);
  const unsigned chunks_per_group = static_cast<unsigned>(w.group / kCols);

  const XT* xr[T];
#pragma unroll
  for (int t = 0; t < T; ++t) xr[t] = x + (t < ntok ? t : ntok - 1) * x_ld;  // a padding token rereads the last row
  const uint4* wr[R];
  const float* sr[R];
  bool ok[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    ok[r] = row0 + r < w.rows;
    const int64_t rr = ok[r] ? row0 + r : 0;
    wr[r] = reinterpret_cast<const uint4*>(w.data + rr * w.data_ld);
    sr[r] = w.scales + rr * w.scales_ld;
  }

  float acc[R][T];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int t = 0; t < T; ++t) acc[r][t] = 0.0f;
  }
  uint4 qn[R];
  float sn[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    qn[r] = make_uint4(0u, 0u, 0u, 0u);
    sn[r] = 0.0f;
  }
  auto fetch = [&](int k) {
    const unsigned gi = static_cast<unsigned>(k) / chunks_per_group;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      qn[r] = ok[r] ? __ldg(wr[r] + k) : make_uint4(0u, 0u, 0u, 0u);
      sn[r] = ok[r] ? __ldg(sr[r] + gi) : 0.0f;
    }
  };
  if (lane_g < chunks) fetch(lane_g);
  for (int k = lane_g; k < chunks; k += g) {
    uint4 q[R];
    float s[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      q[r] = qn[r];
      s[r] = sn[r];
    }
    if (k + g < chunks) fetch(k + g);
    float part[R][T];
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int t = 0; t < T; ++t) part[r][t] = 0.0f;
    }
    const int c0 = k * kCols;
#pragma unroll
    for (int word = 0; word < 4; ++word) {
      unsigned u[R];
#pragma unroll
      for (int r = 0; r < R; ++r) u[r] = kInt4 ? word_of(q[r], word) : word_of(q[r], word) ^ 0x80808080u;
#pragma unroll
      for (int t = 0; t < T; ++t) {
        if constexpr (kInt4) {
          // Byte j of the word holds columns 2j (low nibble) and 2j + 1: nibble i is column i.
          const float4 xa = load_x4(xr[t] + c0 + 8 * word), xb = load_x4(xr[t] + c0 + 8 * word + 4);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            float p = part[r][t];
            p = fmaf(nibble_minus(u[r], 0, kInt4Bias), xa.x, p);
            p = fmaf(nibble_minus(u[r], 1, kInt4Bias), xa.y, p);
            p = fmaf(nibble_minus(u[r], 2, kInt4Bias), xa.z, p);
            p = fmaf(nibble_minus(u[r], 3, kInt4Bias), xa.w, p);
            p = fmaf(nibble_minus(u[r], 4, kInt4Bias), xb.x, p);
            p = fmaf(nibble_minus(u[r], 5, kInt4Bias), xb.y, p);
            p = fmaf(nibble_minus(u[r], 6, kInt4Bias), xb.z, p);
            p = fmaf(nibble_minus(u[r], 7, kInt4Bias), xb.w, p);
            part[r][t] = p;
          }
        } else {
          const float4 xa = load_x4(xr[t] + c0 + 4 * word);
#pragma unroll
          for (int r = 0; r < R; ++r) {
            float p = part[r][t];
            p = fmaf(byte_minus(u[r], 0, kInt8Bias), xa.x, p);
            p = fmaf(byte_minus(u[r], 1, kInt8Bias), xa.y, p);
            p = fmaf(byte_minus(u[r], 2, kInt8Bias), xa.z, p);
            p = fmaf(byte_minus(u[r], 3, kInt8Bias), xa.w, p);
            part[r][t] = p;
          }
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int t = 0; t < T; ++t) acc[r][t] = fmaf(part[r][t], s[r], acc[r][t]);
    }
  }

  // Sum over the group's lanes: butterflies within the warp (groups of G <= 32 lanes are aligned
  // runs of a warp), then for G > 32 the warps' sums through shared memory, in warp order.
  const int width = g < 32 ? g : 32;
  for (int off = width / 2; off > 0; off /= 2) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int t = 0; t < T; ++t) acc[r][t] += __shfl_xor_sync(0xffffffffu, acc[r][t], off);
    }
  }
  if (g <= 32) {  // the same for the whole block
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int t = 0; t < T; ++t) {
        if (lane_g == (r * T + t) % g && ok[r] && t < ntok) write_out(o, t, row0 + r, acc[r][t]);
      }
    }
    return;
  }
  __shared__ float warp_sums[kGemvThreads / 32][R * T];
  const int warp = tid >> 5;
  if ((tid & 31) == 0) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int t = 0; t < T; ++t) warp_sums[warp][r * T + t] = acc[r][t];
    }
  }
  __syncthreads();
  if (lane_g < R * T) {
    const int r = lane_g / T, t = lane_g % T, warps = g >> 5;
    float v = 0.0f;
    for (int i = 0; i < warps; ++i) v += warp_sums[grp * warps + i][lane_g];
    if (row0 + r < w.rows && t < ntok) write_out(o, t, row0 + r, v);
  }
}

// ---- tiled ------------------------------------------------------------------------------------------
constexpr int kTileM = 64, kTileN = 64, kTileK = 32, kTileThreads = 256, kTilePad = 4;

// Block (i, j): rows [64i, 64i + 64) x tokens [64j, 64j + 64). Per 32 columns the block dequantizes
// its weight tile (float(q) * scale, the CPU's weights) and converts its x tile into shared memory,
// both k-major so the inner loop reads one float4 of each per k; thread (tx, ty) owns rows
// 4tx..4tx+3 and tokens 4ty..4ty+3.
template <bool kInt4>
__global__ void __launch_bounds__(kTileThreads) tiled_kernel(QuantDev w, FloatRows x, int64_t n, OutArgs o) {
  __shared__ __align__(16) float ws[kTileK][kTileM + kTilePad];
  __shared__ __align__(16) float xs[kTileK][kTileN + kTilePad];
  constexpr int kCols = kInt4 ? 32 : 16;      // columns per 16-byte load
  constexpr int kPerRow = kTileK / kCols;     // loads per tile row
  constexpr int kLoaders = kTileM * kPerRow;  // 128 (int8) or 64 (int4) threads
  const int tid = static_cast<int>(threadIdx.x), tx = tid & 15, ty = tid >> 4;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTileM, n0 = static_cast<int64_t>(blockIdx.y) * kTileN;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
  }
  for (int64_t k0 = 0; k0 < w.cols; k0 += kTileK) {
    if (tid < kLoaders) {
      const int row = tid / kPerRow, kc = (tid % kPerRow) * kCols;
      const int64_t r = m0 + row, c = k0 + kc;
      if (r < w.rows && c < w.cols) {
        const uint4 q = __ldg(reinterpret_cast<const uint4*>(w.data + r * w.data_ld + (kInt4 ? c / 2 : c)));
        const float s = w.scales[r * w.scales_ld + c / w.group];
#pragma unroll
        for (int word = 0; word < 4; ++word) {
          if constexpr (kInt4) {
            const unsigned u = word_of(q, word);
#pragma unroll
            for (int i = 0; i < 8; ++i) ws[kc + 8 * word + i][row] = nibble_minus(u, i, kInt4Bias) * s;
          } else {
            const unsigned u = word_of(q, word) ^ 0x80808080u;
#pragma unroll
            for (int i = 0; i < 4; ++i) ws[kc + 4 * word + i][row] = byte_minus(u, i, kInt8Bias) * s;
          }
        }
      } else {
#pragma unroll
        for (int i = 0; i < kCols; ++i) ws[kc + i][row] = 0.0f;
      }
    }
#pragma unroll
    for (int j = 0; j < kTileN * kTileK / kTileThreads; ++j) {
      const int col = tid & 31, tok = (tid >> 5) + (kTileThreads / 32) * j;
      const int64_t c = k0 + col, t = n0 + tok;
      xs[col][tok] = t < n && c < w.cols ? load_any(x.ptr, x.type, t * x.ld + c) : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kTileK; ++kk) {
      const float4 a = *reinterpret_cast<const float4*>(&ws[kk][tx * 4]);
      const float4 b = *reinterpret_cast<const float4*>(&xs[kk][ty * 4]);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t r = m0 + tx * 4 + i, t = n0 + ty * 4 + j;
      if (r < w.rows && t < n) write_out(o, t, r, acc[i][j]);
    }
  }
}

// ---- generic ----------------------------------------------------------------------------------------
constexpr int kGenericThreads = 256;

__global__ void __launch_bounds__(kGenericThreads) generic_kernel(QuantDev w, FloatRows x, int64_t n, OutArgs o) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * (kGenericThreads / 32) + (threadIdx.x >> 5);
  if (r >= w.rows) return;  // the whole warp; no barrier below
  const uint8_t* row = w.data + r * w.data_ld;
  const float* s = w.scales + r * w.scales_ld;
  // 32-bit column arithmetic (rows are far shorter than 2^31): a 64-bit division is a runtime call
  // that makes ptxas spill.
  const int cols = static_cast<int>(w.cols), group = static_cast<int>(w.group);
  for (int64_t t = 0; t < n; ++t) {
    float acc = 0.0f;
    for (int c = lane; c < cols; c += 32) {
      const float wv = static_cast<float>(quant_at(row, c, w.int4)) * s[c / group];
      acc = fmaf(wv, load_any(x.ptr, x.type, t * x.ld + c), acc);
    }
    for (int off = 16; off > 0; off /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) write_out(o, t, r, acc);
  }
}

// ---- dispatch -----------------------------------------------------------------------------------------
bool rows_aligned(const QuantDev& w) {
  const int64_t cols = w.int4 ? 32 : 16;
  return w.group % cols == 0 && w.cols % cols == 0 && reinterpret_cast<uintptr_t>(w.data) % 16 == 0 &&
         w.data_ld % 16 == 0;
}

bool x_aligned(const FloatRows& x) {
  return reinterpret_cast<uintptr_t>(x.ptr) % 16 == 0 && (x.ld * static_cast<int64_t>(dtype_size(x.type))) % 16 == 0;
}

// log2 of the lanes per row group: about two 16-byte chunks per lane, 8 to 256 lanes.
int gemv_log2_group(int64_t chunks) {
  int lg = 3;
  while (lg < 8 && (int64_t(2) << lg) < chunks) ++lg;
  return lg;
}

template <bool kInt4, int T, class XT>
void launch_gemv(const QuantDev& w, const FloatRows& x, int ntok, const OutArgs& o, cudaStream_t stream) {
  const int lg = gemv_log2_group(w.cols / (kInt4 ? 32 : 16));
  const int64_t rows_per_block = int64_t(kGemvRows) * (kGemvThreads >> lg);
  const auto blocks = static_cast<unsigned>((w.rows + rows_per_block - 1) / rows_per_block);
  LLM_LAUNCH((gemv_kernel<kInt4, T, XT>), dim3(blocks), dim3(kGemvThreads), 0, stream, w, lg,
             static_cast<const XT*>(x.ptr), x.ld, ntok, o);
  LLM_CUDA_CHECK(cudaGetLastError());
}

template <bool kInt4, int T>
void launch_gemv_x(const QuantDev& w, const FloatRows& x, int ntok, const OutArgs& o, cudaStream_t stream) {
  switch (x.type) {
    case DType::F16: return launch_gemv<kInt4, T, __half>(w, x, ntok, o, stream);
    case DType::BF16: return launch_gemv<kInt4, T, __nv_bfloat16>(w, x, ntok, o, stream);
    default: return launch_gemv<kInt4, T, float>(w, x, ntok, o, stream);
  }
}

template <bool kInt4>
void launch_gemv_t(const QuantDev& w, const FloatRows& x, int ntok, const OutArgs& o, cudaStream_t stream) {
  if (ntok == 1) return launch_gemv_x<kInt4, 1>(w, x, ntok, o, stream);
  if (ntok == 2) return launch_gemv_x<kInt4, 2>(w, x, ntok, o, stream);
  launch_gemv_x<kInt4, 4>(w, x, ntok, o, stream);  // 3 runs as 4 with a padding token
}

enum class Path { Gemv, Tiled, Generic };

Path pick_path(const QuantDev& w, const FloatRows& x, int64_t n) {
  if (!rows_aligned(w)) return Path::Generic;
  return n <= kQuantGemvMaxTokens && x_aligned(x) ? Path::Gemv : Path::Tiled;
}

}  // namespace

const char* quant_matmul_path(const QuantDev& w, const FloatRows& x, int64_t n) {
  switch (pick_path(w, x, n)) {
    case Path::Gemv: return "gemv";
    case Path::Tiled: return "tiled";
    case Path::Generic: break;
  }
  return "generic";
}

void quant_matmul_rows(const QuantDev& w, const FloatRows& x, int64_t n, void* y, DType y_type, int64_t y_ld,
                       const void* bias, DType bias_type, cudaStream_t stream) {
  if (n == 0 || w.rows == 0) return;
  const OutArgs o{y, y_type, y_ld, bias, bias_type};
  const Path path = pick_path(w, x, n);
  if (path == Path::Gemv) {  // passes of up to 4 tokens, each streaming the weights once
    const size_t xs = dtype_size(x.type), ys = dtype_size(y_type);
    for (int64_t p = 0; p < n; p += 4) {
      const int ntok = static_cast<int>(n - p < 4 ? n - p : 4);
      const FloatRows xp{static_cast<const unsigned char*>(x.ptr) + static_cast<size_t>(p * x.ld) * xs, x.type, x.ld};
      OutArgs op = o;
      op.y = static_cast<unsigned char*>(y) + static_cast<size_t>(p * y_ld) * ys;
      if (w.int4) {
        launch_gemv_t<true>(w, xp, ntok, op, stream);
      } else {
        launch_gemv_t<false>(w, xp, ntok, op, stream);
      }
    }
    return;
  }
  if (path == Path::Tiled) {
    const dim3 grid(static_cast<unsigned>((w.rows + kTileM - 1) / kTileM),
                    static_cast<unsigned>((n + kTileN - 1) / kTileN));
    if (w.int4) {
      LLM_LAUNCH(tiled_kernel<true>, grid, dim3(kTileThreads), 0, stream, w, x, n, o);
    } else {
      LLM_LAUNCH(tiled_kernel<false>, grid, dim3(kTileThreads), 0, stream, w, x, n, o);
    }
    LLM_CUDA_CHECK(cudaGetLastError());
    return;
  }
  const auto blocks = static_cast<unsigned>((w.rows + kGenericThreads / 32 - 1) / (kGenericThreads / 32));
  LLM_LAUNCH(generic_kernel, dim3(blocks), dim3(kGenericThreads), 0, stream, w, x, n, o);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
