// Internals of Qwen2Model shared by its source files: views of one layer's weights, the
// activation plan, and the buffers behind it.
#pragma once

#include <array>
#include <vector>

#include "llm/model.h"
#include "model/qwen2_block.h"

namespace llm {

// The parameter p of a flat buffer, in its HF shape.
inline Tensor param_view(const Tensor& flat, const ParamInfo& p) {
  const Tensor r = flat.range(p.offset, p.numel);
  switch (p.shape.size()) {
    case 1: return r;
    case 2: return r.view({p.shape[0], p.shape[1]});
    default: fail("parameters: ", p.name, " has an unexpected rank ", p.shape.size());
  }
}

// One layer's weights (compute dtype) and gradients (f32) as views of the flat buffers.
struct Qwen2Model::Layer {
  BlockWeights w;
  BlockGrads g;  // empty for inference
};

// What one layer keeps between its forward and backward, as views of N = B*T rows.
struct Qwen2Model::LayerActs {
  BlockActs b;
  Tensor lse;  // [B, Hq, T] f32 softmax log-sum-exp per query
};

// Every buffer of the activation plan. A kind the recompute policy keeps has one copy per layer,
// a recomputed kind one shared copy; a buffer the mode does not need has none.
enum class Buf : int {
  Ids,
  Targets,    // [maxN] i32
  Positions,  // [maxN] i32 token positions within their documents (document attention)
  Xs,         // [(L + 1), maxN, C] residual stream at each layer boundary
  Ln1,
  Rstd1,
  Qkv,
  Att,
  Lse,
  H2,
  Ln2,
  Rstd2,
  GateUp,
  Act,       // per layer (LayerActs)
  Proj,      // [maxN, C] o_proj / down_proj output before the residual add
  XScratch,  // [maxN, C] a recomputed layer's output (full recompute)
  Hf,
  RstdF,    // final norm output and its rstd
  Losses,   // [maxN] f32
  CeStats,  // [maxN, 2] f32 softmax (max, sum) per token, for the output layer's bucketed dw (ZeRO-2)
  Dhf,
  Dres,
  Dln,
  Datt,
  Dqkv,
  DgateUp,
  Dact,  // backward
  LoraH,
  LoraDh,  // [maxN, r] LoRA adapter scratch (x A^T and its gradient)
  LoraX,   // [maxN, max(C, Hq D, I)] LoRA dropout(x) (training with dropout)
  RopeCos,
  RopeSin,  // [max_seq, D/2] f32
  Count
};

struct BufSpec {
  const char* name;
  bool activation;  // "activations" arena (kept between forward and backward), else "scratch"
  DType dtype;
  int64_t per_copy;  // elements of one copy
  int64_t copies;    // 0: not allocated
};

// The plan for a config and options: the single source of both the allocation and --dry-run.
std::array<BufSpec, static_cast<size_t>(Buf::Count)> buffer_plan(const ModelConfig& cfg, const ModelOptions& opts);

struct ActSlot {
  OwnedTensor storage;
  int64_t per_copy = 0;
  bool per_layer = false;
  Tensor at(int l, int64_t n) const { return storage->range((per_layer ? l : 0) * per_copy, n); }
};

struct Qwen2Model::Buffers {
  std::array<ActSlot, static_cast<size_t>(Buf::Count)> slots;
  const ActSlot& operator[](Buf b) const { return slots[static_cast<size_t>(b)]; }
  const Tensor& t(Buf b) const { return slots[static_cast<size_t>(b)].storage.t(); }
};

}  // namespace llm
