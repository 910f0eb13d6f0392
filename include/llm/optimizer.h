// AdamW over the flat parameter layout: fp32 master weights and moments m, v, each one
// contiguous buffer for this rank's range of the flat parameters (the whole range without ZeRO),
// updated by the backend's adamw op, which also writes the model's compute copy.
#pragma once

#include <vector>

#include "llm/arena.h"
#include "llm/backend.h"
#include "llm/config.h"
#include "llm/model.h"

namespace llm {

// Runs of parameters sharing a weight decay, clipped to [begin, begin + count) and expressed
// relative to begin. Padding between parameter groups belongs to no run.
std::vector<AdamWSegment> adamw_segments(const ParamTable& table, const OptimSection& o, int64_t begin, int64_t count);

// The ZeRO partition of n flat elements over `world` ranks: world + 1 offsets, rank r owning
// [o[r], o[r + 1]). Every range but the last ones has the same length, a multiple of `align`
// (so ranges start on aligned elements); trailing ranges may be shorter or empty.
std::vector<int64_t> zero_partition(int64_t n, int world, int64_t align = 64);

class AdamW {
 public:
  // range [begin, begin + count) of the flat parameters; count < 0: all of them.
  AdamW(Qwen2Model& model, const OptimSection& opt, int64_t begin = 0, int64_t count = -1);

  // Sets the master weights of the range from fp32 host values of the whole flat layout, zeroes
  // the moments, and rounds into the model's compute weights.
  void init(std::span<const float> flat);
  // One update of the range: g = grad * grad_scale; `step` is 1-based.
  void step(float lr, int64_t step, float grad_scale);
  // The same with the range's gradients taken from grad [count] f32 instead of the model's
  // (ZeRO-2 keeps them in a range-sized accumulator).
  void step(float lr, int64_t step, float grad_scale, const Tensor& grad);

  // [count] f32 each. With fp32 compute the master weights are the model's own weights.
  const Tensor& master() const { return master_; }
  const Tensor& m() const { return m_.t(); }
  const Tensor& v() const { return v_.t(); }
  int64_t begin() const { return begin_; }
  int64_t count() const { return count_; }
  const Arena& arena() const { return arena_; }
  // Sets master, m and v of the range [count] each (a checkpoint) and re-derives the compute weights.
  void load_state(std::span<const float> master, std::span<const float> m, std::span<const float> v);
  // Re-derives the compute weights of the range from the master.
  void sync_compute();

 private:
  Qwen2Model& model_;
  OptimSection opt_;
  int64_t begin_, count_;
  Arena arena_;
  OwnedTensor master_own_, m_, v_;
  Tensor master_;
  std::vector<AdamWSegment> segments_;
};

// Learning rate at 0-based step `step` of `total`: linear warmup, then cosine / WSD / constant.
double learning_rate(const OptimSection& o, int64_t step, int64_t total);

// Dynamic loss scaling for fp16 (static 1 otherwise): skip and back off on a non-finite
// gradient, grow after a run of clean steps, stop after too many non-finite steps in a row.
class LossScaler {
 public:
  LossScaler(bool dynamic, double init, int64_t growth_interval, double backoff, int64_t max_skipped);
  double scale() const { return scale_; }
  // Records the outcome of a step; returns true when the update should be applied.
  bool update(bool finite);
  int64_t skipped_total() const { return skipped_total_; }
  int64_t consecutive_skipped() const { return consecutive_skipped_; }
  bool gave_up() const { return consecutive_skipped_ >= max_skipped_; }
  nlohmann::json to_json() const;
  void from_json(const nlohmann::json& j, const std::string& where);

 private:
  bool dynamic_;
  double scale_;
  int64_t growth_interval_;
  double backoff_;
  int64_t max_skipped_;
  int64_t clean_run_ = 0;
  int64_t skipped_total_ = 0;
  int64_t consecutive_skipped_ = 0;
};

}  // namespace llm
