// Causal GQA attention on the GPU, memory-efficient: the [Tq, Tk] score matrix is never stored.
// Forward: tiled online softmax (FlashAttention-2 style), keeping only the log-sum-exp per row.
// Backward: recomputes the scores tile by tile; one kernel for dK/dV (a block per key tile of a kv
// head, looping over that head's query heads in order) and one for dQ (a block per query tile),
// so no gradient is ever accumulated with atomics and every sum has a fixed order.
// Decode (Tq == 1): the keys are split across blocks and warps; one block serves all query heads
// of a kv head, so K and V are read once per kv group; a second kernel combines the splits.
//
// Three kernel families, picked by the host (src/backend/cuda/attention.cpp):
//   tc     f16 (sm_75+) / bf16 (sm_80+) with head_dim 64 or 128: tensor cores (mma m16n8k16)
//   simt   fp32 FMA tiles for any dtype and any even head_dim <= 128 (fp32 training, other dims)
//   decode one query token, any dtype, even head_dim <= 128
// Tiles and shared memory: the comments of attention_tc_fwd.cu, attention_tc_bwd.cu, attention_simt.cu,
// attention_decode.cu; FLOPs and bytes: docs/roofline.md.
#pragma once

#include <cstdint>

#include "cuda_compat.cuh"

namespace llm::LLM_CUDA_NS {

enum class AttnDtype : int { F32 = 0, F16 = 1, BF16 = 2 };

// A [B, T, H, D] view: element strides of batch, token and head; the last dim is dense.
struct AttnHeads {
  void* ptr = nullptr;
  int64_t sb = 0, st = 0, sh = 0;
};

struct AttnDims {
  int B = 0, Tq = 0, Tk = 0, Hq = 0, Hkv = 0, D = 0;
  int group = 1;       // Hq / Hkv
  float scale = 1.0f;  // 1 / sqrt(D)
  AttnDtype dtype = AttnDtype::F32;
};

struct AttnFwdArgs {
  AttnDims d;
  AttnHeads q, k, v, out;  // q, out [B, Tq, Hq, D]; k, v [B, Tk, Hkv, D]
  float* lse = nullptr;    // [B, Hq, Tq] contiguous, or nullptr (not kept)
  // Decode only: when set, the keys are rows [0, *pos + 1) of k, v and d.Tk is their capacity.
  // Read on the device, so that a decode step captured in a CUDA graph replays at every position.
  const int32_t* pos = nullptr;
  // Document masking (Tq == Tk; FMA kernels only): [B, T] each token's index within its document;
  // query t sees keys t - positions[b, t] .. t. nullptr: plain causal.
  const int32_t* positions = nullptr;
};

struct AttnBwdArgs {
  AttnDims d;                    // Tq == Tk
  AttnHeads q, k, v, out, dout;  // inputs
  AttnHeads dq, dk, dv;          // outputs, overwritten
  const float* lse = nullptr;    // [B, Hq, T] from the forward
  float* delta = nullptr;        // workspace [B, Hq, T]: rowsum(dout * out)
  // dK/dV partials when a kv group's query heads are split over `parts` blocks: workspace
  // [parts, B, Hkv, T, D] f32 each, summed in part order by attn_bwd_reduce_parts.
  float* dk_part = nullptr;
  float* dv_part = nullptr;
  int parts = 1;
  const int32_t* positions = nullptr;  // as AttnFwdArgs::positions
};

// ---- forward ----------------------------------------------------------------------------------
// Tensor cores: dtype F16/BF16, D 64 or 128, pointers 16-byte aligned and strides multiples of 8.
void attn_fwd_tc(const AttnFwdArgs& a, cudaStream_t stream);
// FMA tiles: any dtype, even D <= 128.
void attn_fwd_simt(const AttnFwdArgs& a, cudaStream_t stream);
// Tq == 1: `splits` blocks per (batch, kv head, group of <= 8 query heads), each over
// `keys_per_split` keys (a multiple of 128); partial results in `ws` (attn_decode_workspace
// floats) when splits > 1. Any dtype, even D <= 128. With a.pos set, splits past the keys in use
// leave empty partials.
void attn_decode(const AttnFwdArgs& a, int splits, int keys_per_split, float* ws, cudaStream_t stream);
int64_t attn_decode_workspace(const AttnDims& d, int splits);

// ---- backward ---------------------------------------------------------------------------------
// delta[b, h, t] = sum_d dout * out (fp32), the softmax-gradient row term.
void attn_bwd_delta(const AttnBwdArgs& a, cudaStream_t stream);
void attn_bwd_tc(const AttnBwdArgs& a, cudaStream_t stream);    // same conditions as attn_fwd_tc
void attn_bwd_simt(const AttnBwdArgs& a, cudaStream_t stream);  // any dtype, even D <= 128
// dk, dv = sum over the parts of dk_part, dv_part, in part order (when parts > 1).
void attn_bwd_reduce_parts(const AttnBwdArgs& a, cudaStream_t stream);

// Tile sizes the host needs for grids and split decisions.
inline constexpr int kAttnTcRows = 64;       // query rows per tensor-core block (4 warps x 16)
inline constexpr int kAttnTcKeyRows = 64;    // key rows per tensor-core dK/dV block
inline constexpr int kAttnSimtKeyRows = 32;  // key rows per FMA dK/dV block
inline constexpr int kAttnDecodeKeys = 128;  // key granule of a decode split (4 warps x 32)

}  // namespace llm::LLM_CUDA_NS
