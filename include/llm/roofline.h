// The roofline model of one training step on a GPU (docs/roofline.md): for every kernel of the
// step as this engine runs it, its FLOPs and the least bytes it must move, and the time bound
// max(FLOPs / (peak x efficiency), bytes / (bandwidth x efficiency)). A prediction from the specs,
// not a measurement; bench/roofline.py is the same model in Python (tests/model checks they agree).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "llm/model.h"

namespace llm {

struct GpuSpec {
  std::string id;          // what --gpu takes: t4, v100-16, a10, ...
  std::string name;        // "NVIDIA T4"
  int sm = 0;              // compute capability x 10 (75 = sm_75)
  double memory_gib = 0;   // total memory as the driver reports it
  double tensor_peak = 0;  // dense fp16/bf16 tensor-core FLOP/s with fp32 accumulation (spec sheet)
  double sustained = 0;    // what GEMMs can sustain at the card's clocks (T4: power-capped at 70 W)
  double fp32_peak = 0;    // FP32 FMA FLOP/s (the SIMT attention fallback)
  double bandwidth = 0;    // memory bytes/s
  bool bf16 = false;       // bf16 tensor cores (sm_80+)
  std::string note;
};

// Usable memory: the total less the CUDA context and allocator slack (~0.5 GiB).
inline double usable_gib(const GpuSpec& g) { return g.memory_gib - 0.5; }

// The cards the planner knows, in the order --gpu all prints them.
const std::vector<GpuSpec>& known_gpus();
// The card named `id` (case-insensitive); an error naming `where` and listing the ids otherwise.
const GpuSpec& find_gpu(std::string_view id, std::string_view where);

// Assumed efficiencies (not measured): cuBLASLt on large fp16/bf16 GEMMs reaches 75-85% of its
// peak, tiled tensor-core attention 50-70%, streaming kernels ~85% of the bandwidth.
constexpr double kGemmEfficiency = 0.80;
constexpr double kAttentionEfficiency = 0.60;
constexpr double kBandwidthEfficiency = 0.85;

struct KernelTime {
  std::string name;
  double flops = 0;
  double bytes = 0;
  double seconds = 0;
  bool compute_bound = false;
};

struct StepPrediction {
  std::vector<KernelTime> kernels;  // summed over layers and micro-batches, AdamW last
  double seconds = 0;               // one optimizer step
  double tokens_per_s = 0;          // per rank
  double mfu = 0;                   // model FLOPs / (step time x the spec-sheet tensor peak)
};

struct StepShape {
  int64_t micro_batch = 1;
  int64_t seq_len = 1;
  int64_t grad_accum = 1;
  DType dtype = DType::BF16;  // the compute dtype: F16 or BF16 (2 bytes per activation)
  Recompute recompute = Recompute::None;
  int world = 1;  // AdamW touches 1/world of the parameters with ZeRO
  int zero = 0;
};

// Whether the card runs `dtype` on tensor cores (fp16 from sm_70, bf16 from sm_80).
bool tensor_cores_for(const GpuSpec& g, DType dtype);

// One optimizer step of one rank: grad_accum micro-batches of micro_batch x seq_len tokens.
// Collectives between ranks are not modelled.
StepPrediction predict_step(const ModelConfig& cfg, const GpuSpec& gpu, const StepShape& shape);

}  // namespace llm
