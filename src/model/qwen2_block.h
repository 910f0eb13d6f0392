// One Qwen2 decoder block, written once for training, fine-tuning and inference:
//
//   x ─► RMSNorm ─► qkv (+bias) ─► attention ─► o_proj ─► (+x) = h2 ─► RMSNorm ─► gate/up ─► SwiGLU ─► down ─► (+h2)
//
// What differs between uses is injected, not copied:
//  - the attention part (BlockAttention): full causal over B rows of T tokens from position 0 with
//    the log-sum-exp kept for the backward (CausalAttention, training), or appending to a KV cache
//    for a batch of sequences, each at its own position and cache slot (KvCacheAttention,
//    src/model/kv_cache_attention.h: prefill, decode, the server's batched decode);
//  - the linear layers (LinearWeight): a dense matrix in the compute dtype or a quantized one,
//    optionally with LoRA adapters (LinearAdapter) on slices of its output, the matrix frozen;
//  - which activations are kept (BlockActs are views the caller places: one copy per layer for
//    training, the same few buffers reused by every layer for inference).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "llm/backend.h"
#include "llm/model.h"

namespace llm {

// Sizes of one block.
struct BlockShape {
  int64_t C = 0;  // hidden_size
  int64_t I = 0;  // intermediate_size
  int64_t Hq = 0, Hkv = 0, D = 0;
  float eps = 0.0f;  // rms_norm_eps
  explicit BlockShape(const ModelConfig& cfg)
      : C(cfg.hidden_size),
        I(cfg.intermediate_size),
        Hq(cfg.num_attention_heads),
        Hkv(cfg.num_key_value_heads),
        D(cfg.head_dim()),
        eps(static_cast<float>(cfg.rms_norm_eps)) {}
  int64_t Q() const { return (Hq + 2 * Hkv) * D; }  // fused q/k/v width
};

// LoRA dropout of the current forward: on only for a training forward; the seed is set per
// micro-batch by the trainer (a function of the step, so a resumed run draws the same masks).
struct LoraDropoutState {
  bool active = false;
  uint64_t seed = 0;
};

// A LoRA adapter (include/llm/lora.h) on output columns [col0, col0 + out) of a linear layer:
//   y[:, col0 : col0 + out] += scale * dropout(x) A^T B^T
// One per HF module, so q/k/v (and gate/up) of a fused matrix each have their own.
struct LinearAdapter {
  Tensor A;       // [r, in]  compute dtype
  Tensor B;       // [out, r] compute dtype
  Tensor dA, dB;  // f32, shapes of A and B; empty for inference
  int64_t col0 = 0, out = 0;
  float scale = 1;                         // alpha / r
  Tensor h, dh;                            // [>= N * r] scratch in the compute dtype (x A^T and its gradient)
  float dropout = 0;                       // p; > 0 needs drop and xd
  const LoraDropoutState* drop = nullptr;  // the model's, read at each call
  uint64_t key = 0;                        // this adapter's stream: the mask is f(drop->seed ^ key, index)
  Tensor xd;                               // [>= N * in] scratch: dropout(x), then the backward's dh A
  bool dropping() const { return dropout > 0.0f && drop != nullptr && drop->active; }
};

// A linear layer's weight W [out, in] (HF layout): dense in the compute dtype, or quantized;
// with adapters when LoRA is on (W then frozen: the backward forms no gradient for it).
struct LinearWeight {
  Tensor dense;                            // [out, in], empty when quantized
  const QuantizedMatrix* quant = nullptr;  // set when quantized
  // quant[0 .. parts) stacked along the output rows: a fused q/k/v or gate/up read from a GGUF
  // file, whose parts may be stored in different ggml types.
  int parts = 1;
  std::vector<LinearAdapter> lora;  // empty: no adapters
  // y [N, out] = x [N, in] @ W^T (+ bias [out]) (+ the adapters)
  void forward(Backend& be, const Tensor& x, const Tensor& y, const Tensor* bias) const;
  // dx [N, in] = d loss / d x (overwritten) from dy [N, out] and the forward's input x; the
  // adapters' gradients add to their dA, dB (their x A^T is recomputed: r columns per token).
  void backward_input(Backend& be, const Tensor& dy, const Tensor& x, const Tensor& dx) const;
};

struct BlockWeights {
  Tensor ln1;            // [C] input_layernorm
  LinearWeight qkv;      // [Q, C] q_proj, k_proj, v_proj stacked
  Tensor qkv_b;          // [Q]
  LinearWeight o;        // [C, Hq D]
  Tensor ln2;            // [C] post_attention_layernorm
  LinearWeight gate_up;  // [2I, C] gate_proj, up_proj stacked
  LinearWeight down;     // [C, I]
};

// Weight gradients, f32, the shapes of BlockWeights; the backward adds to them. Under LoRA the
// frozen matrices' and bias' gradients are empty (skipped); ln1 and ln2 point at a discarded sink.
struct BlockGrads {
  Tensor ln1, qkv, qkv_b, o, ln2, gate_up, down;
};

// The activations of one block over N rows, as views the caller places. Inference may pass the
// same buffer for ln1 and ln2 and for rstd1 and rstd2 (nothing is kept for a backward).
struct BlockActs {
  Tensor ln1;      // [N, C]  input_layernorm out
  Tensor rstd1;    // [N] f32
  Tensor qkv;      // [N, Q]  q and k rotated by the attention
  Tensor att;      // [N, Hq D] attention out, before o_proj
  Tensor h2;       // [N, C]  residual after attention (residual_dtype: f32 under f16)
  Tensor ln2;      // [N, C]  post_attention_layernorm out
  Tensor rstd2;    // [N] f32
  Tensor gate_up;  // [N, 2I]
  Tensor act;      // [N, I]  silu(gate) * up
  Tensor proj;     // [N, C]  o_proj / down_proj out before the residual add (scratch, residual_dtype)
};

// The attention part of a block: rotates q and k of qkv in place and writes att.
class BlockAttention {
 public:
  virtual ~BlockAttention() = default;
  // qkv [N, Q] (bias added), att [N, Hq D]
  virtual void forward(Backend& be, const Tensor& qkv, const Tensor& att) const = 0;
};

// Training: B rows of T tokens, each row one sequence from position 0, causal; or, with positions,
// each row a run of packed documents, each attending only to itself with RoPE positions
// restarting at 0 (document masking). Keeps the log-sum-exp for the backward.
class CausalAttention final : public BlockAttention {
 public:
  // cos, sin [P >= T, D/2] f32; lse [B, Hq, T] f32; positions i32 [B, T] on the device or empty
  CausalAttention(const BlockShape& s, int64_t B, int64_t T, const Tensor& cos, const Tensor& sin, const Tensor& lse,
                  const Tensor& positions = Tensor())
      : s_(s), B_(B), T_(T), cos_(cos), sin_(sin), lse_(lse), positions_(positions) {}
  void forward(Backend& be, const Tensor& qkv, const Tensor& att) const override;
  // dqkv [N, Q] (overwritten) from datt [N, Hq D], with qkv and att from the forward; the
  // rotation is undone so dqkv is the gradient of the projection's output.
  void backward(Backend& be, const Tensor& qkv, const Tensor& att, const Tensor& datt, const Tensor& dqkv) const;

 private:
  BlockShape s_;
  int64_t B_, T_;
  Tensor cos_, sin_, lse_, positions_;
};

// Sees each tensor block_forward writes, right after the op that wrote it, with its name (the HF
// module that produced it): the hook of the non-finite diagnostics (model/finite_check.h). The
// fast path passes none.
using BlockProbe = std::function<void(const char* tensor, const Tensor& t)>;

// x_out [N, C] = block(x_in [N, C]); x_out may alias x_in (inference updates the residual in place).
// x_in, x_out, a.h2 and a.proj are the residual stream (residual_dtype), the rest the compute dtype.
void block_forward(Backend& be, const BlockShape& s, const BlockWeights& w, const BlockAttention& attn,
                   const Tensor& x_in, const Tensor& x_out, const BlockActs& a, const BlockProbe* probe = nullptr);

// Recreates what selective recompute did not keep (ln1, ln2 and their rstd, act), with the same
// ops on the same inputs as the forward, so the backward sees bitwise the same activations.
void block_recompute_selective(Backend& be, const BlockShape& s, const BlockWeights& w, const Tensor& x_in,
                               const BlockActs& a);

// Scratch of the backward, [N, *] views in the compute dtype.
struct BlockBackwardScratch {
  Tensor dln;       // [N, C]
  Tensor dact;      // [N, I]
  Tensor dgate_up;  // [N, 2I]
  Tensor datt;      // [N, Hq D]
  Tensor dqkv;      // [N, Q]
};

// On entry dres [N, C] holds d loss / d x_out; on exit d loss / d x_in. Weight gradients add to g.
void block_backward(Backend& be, const BlockWeights& w, const BlockGrads& g, const CausalAttention& attn,
                    const Tensor& x_in, const BlockActs& a, const Tensor& dres, const BlockBackwardScratch& d);

}  // namespace llm
