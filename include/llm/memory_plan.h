// The memory plan of a training run, computed from the config alone (nothing is allocated):
// what `llmtrain --dry-run` prints. The activation and scratch lines come from the same
// buffer_plan() the model allocates from, so the plan and the arenas agree by construction.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "llm/model.h"

namespace llm {

struct MemoryLine {
  std::string what;
  size_t bytes = 0;
  std::string note;
};

struct MemoryPlan {
  std::vector<MemoryLine> lines;
  size_t total() const;
};

struct PlanOptions {
  DeviceKind device = DeviceKind::CPU;
  int world = 1;
  int zero = 0;                 // ZeRO stage: optimizer state (1, 2) and gradients (2) split W ways
  int64_t ce_chunk_tokens = 0;  // 0: the backend's default
};

MemoryPlan plan_training_memory(const ModelConfig& cfg, const ModelOptions& opts, const PlanOptions& plan);

// Tokens per chunk of the fused output layer + loss: the configured value, else as many as fit
// 256 MiB of fp32 logits (at least 1, at most the micro-batch). Inline: both backends' loss ops
// use it, and the CUDA ops library links only llm_core, not the model.
inline int64_t default_ce_chunk_tokens(int64_t vocab, int64_t tokens, int64_t configured) {
  constexpr int64_t kLogitFloats = int64_t(1) << 26;  // 256 MiB of fp32 logits
  const int64_t chunk = configured > 0 ? configured : kLogitFloats / std::max<int64_t>(vocab, 1);
  return std::clamp<int64_t>(chunk, 1, std::max<int64_t>(tokens, 1));
}

// Bytes of the fused output-layer workspace (logits chunk and its neighbours) on a device.
size_t ce_workspace_bytes(DeviceKind device, const ModelConfig& cfg, const ModelOptions& opts, int64_t chunk_tokens);

// Other per-op workspace the backend keeps (attention, GEMM staging, cuBLASLt).
size_t op_workspace_bytes(DeviceKind device, const ModelConfig& cfg, const ModelOptions& opts);

}  // namespace llm
