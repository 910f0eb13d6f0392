// TrainerState: what trainer_state.json holds besides the weights and the optimizer shards (DESIGN.md
// section 5). One struct for writing a checkpoint and for resuming from one; the file format is
// unchanged from the first version (kCheckpointFormat), so older checkpoints resume as they are.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "llm/loader.h"

namespace llm {

struct TrainerState {
  int64_t step = 0;        // optimizer steps done (applied or skipped)
  int64_t adam_steps = 0;  // steps AdamW applied (its bias correction counter)
  uint64_t tokens_seen = 0;
  double elapsed_s = 0;  // wall time of all the runs that led here
  std::optional<double> first_val_loss;
  std::string compute_dtype;     // dtype_name of the compute dtype the run trained in
  DataCursor data_cursor;        // global sample position (independent of the world size)
  nlohmann::json loss_scaler;    // LossScaler::to_json
  uint64_t seed = 0;             // train.seed (weight init)
  uint64_t data_order_seed = 0;  // data.seed (sample order)
  int world_size = 1;            // ranks of the run that wrote it
  nlohmann::json config;         // the effective config of that run

  // The JSON of trainer_state.json (save_checkpoint adds "format").
  nlohmann::json to_json() const;
  // Reads a trainer_state.json; `where` (the file) names it in errors. Keys that only inform
  // (seed, rng, config, elapsed_s, first_val_loss, world_size) may be missing.
  static TrainerState from_json(const nlohmann::json& j, const std::string& where);
};

// The train.precision value that selects the compute dtype named `dtype` (dtype_name: "f32",
// "bf16", "f16" -> "fp32", "bf16", "fp16"); empty for another name.
std::string_view precision_setting(std::string_view dtype);

}  // namespace llm
