// The per-GPU planner behind `llmtrain --dry-run --gpu ID|all [--world N]`: for each precision a
// card runs, each recompute policy and micro-batch 1..16, the peak memory per rank (the same
// arena plan training allocates from, include/llm/memory_plan.h) and the predicted tokens/s and
// MFU (the roofline model, include/llm/roofline.h); then the fastest setting that fits and its
// grad_accum for the configured batch.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "llm/config.h"
#include "llm/memory_plan.h"
#include "llm/roofline.h"

namespace llm {

constexpr int64_t kPlannerMaxMicroBatch = 16;

struct PlanCell {
  DType dtype = DType::BF16;
  Recompute recompute = Recompute::None;
  int64_t micro_batch = 1;
  size_t bytes = 0;  // planned peak per rank
  bool fits = false;
  double tokens_per_s = 0;  // per rank
  double mfu = 0;
};

struct GpuPlan {
  const GpuSpec* gpu = nullptr;
  std::vector<std::string> notes;  // precision choices, card quirks
  std::vector<PlanCell> cells;     // precision x recompute x micro-batch 1..16
  std::optional<PlanCell> best;    // the fastest that fits and divides the batch
  int64_t grad_accum = 0;          // for best: sequences per rank and step / micro_batch
};

// The memory plan of `cfg` for a CUDA rank at these settings (ZeRO and world as given).
MemoryPlan gpu_memory_plan(const Config& cfg, DType dtype, Recompute rc, int64_t micro_batch, int world, int zero);

// The precisions the planner tries on a card: the configured one when the card runs it on tensor
// cores, else fp16 before sm_80 and bf16 from sm_80. Each choice that differs from the config
// is explained in `notes`.
std::vector<DType> planner_precisions(const Config& cfg, const GpuSpec& gpu, std::vector<std::string>& notes);

GpuPlan plan_for_gpu(const Config& cfg, const GpuSpec& gpu, int world);

// `gpu`: an id of known_gpus() or "all". Prints one table per card.
void print_gpu_plans(const Config& cfg, const std::string& gpu, int world, std::ostream& out);

}  // namespace llm
