// The training loop: data, model, optimizer, precision policy, evaluation, metrics and
// checkpoints, wired from a Config. Written once against Backend and Communicator.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <optional>

#include "llm/backend.h"
#include "llm/comm.h"
#include "llm/config.h"

namespace llm {

struct TrainOptions {
  bool resume = false;           // continue from the newest complete checkpoint of io.run_dir
  int64_t stop_at = -1;          // stop (with a checkpoint) after this step, schedule unchanged
  Communicator* comm = nullptr;  // nullptr: one local rank
  std::ostream* log = nullptr;   // progress and messages (rank 0 only); nullptr: std::cerr
  // nullptr: make_backend(train.device, train.threads, local rank). Otherwise the run uses this
  // backend (owned by the caller, outliving train()) and ignores train.device and train.threads:
  // tests inject a backend the device string cannot name, such as the emulated CudaBackend.
  Backend* backend = nullptr;
};

struct TrainResult {
  int64_t steps_done = 0;             // optimizer steps completed, in all
  double last_loss = 0;               // training loss of the last step
  std::optional<double> first_val_loss, last_val_loss;
  std::filesystem::path last_checkpoint;
  double seconds = 0;
  double tokens_per_s = 0;
  int64_t skipped_steps = 0;
};

TrainResult train(const Config& cfg, const TrainOptions& opt = {});

// FLOPs of one training token (forward + backward, no recompute): 6 per weight-token product,
// including the output layer, plus causal attention.
double train_flops_per_token(const ModelConfig& c, int64_t seq_len);

}  // namespace llm
