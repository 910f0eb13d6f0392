// The training loop: data, model, optimizer, precision policy, evaluation, metrics and
// checkpoints, wired from a Config. Written once against Backend and Communicator.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>

#include "llm/backend.h"
#include "llm/comm.h"
#include "llm/config.h"

namespace llm {

class Qwen2Model;
struct Batch;

// Callbacks into the loop for tests (fault injection, records of what each rank did); the
// product installs none. Each is optional and runs on every rank unless said otherwise.
struct TrainHooks {
  // Before optimizer step `step` (1-based) starts.
  std::function<void(int64_t step, int rank)> before_step;
  // Each micro-batch of step `step`, as the loader gave it.
  std::function<void(int64_t step, int rank, const Batch& batch)> on_batch;
  // After step `step` is done, on every rank at the same point (it may run collectives on comm).
  // Rank 0's result, a JSON object or null, is merged into the step's metrics.jsonl record.
  std::function<nlohmann::json(int64_t step, const Qwen2Model& model, Communicator& comm)> after_step;
  // Rank 0, when a checkpoint is complete under its temporary name, before it is renamed into place.
  std::function<void(const std::filesystem::path& tmp_dir)> before_checkpoint_commit;
};

struct TrainOptions {
  bool resume = false;           // continue from the newest complete checkpoint of io.run_dir
  int64_t stop_at = -1;          // stop (with a checkpoint) after this step, schedule unchanged
  Communicator* comm = nullptr;  // nullptr: one local rank
  std::ostream* log = nullptr;   // progress and messages (rank 0 only); nullptr: std::cerr
  // nullptr: make_backend(train.device, train.threads, local rank). Otherwise the run uses this
  // backend (owned by the caller, outliving train()) and ignores train.device and train.threads:
  // tests inject a backend the device string cannot name, such as the emulated CudaBackend.
  Backend* backend = nullptr;
  TrainHooks hooks;  // none: a plain run
  // Polled on every rank after each step (e.g. StopSignals::requested, llm/stop_signal.h). When
  // any rank says true, all ranks stop after that step together, with a checkpoint.
  std::function<bool()> stop_requested;
};

struct TrainResult {
  int64_t steps_done = 0;  // optimizer steps completed, in all
  double last_loss = 0;    // training loss of the last step
  std::optional<double> first_val_loss, last_val_loss;
  std::filesystem::path last_checkpoint;
  double seconds = 0;
  double tokens_per_s = 0;
  int64_t skipped_steps = 0;
  // This rank's high-water mark of each arena (weights, grads, activations, scratch, optimizer,
  // zero2 gradients): what the memory plan predicts (tests/train/planner_test.cpp).
  std::map<std::string, size_t> arena_peak_bytes;
  bool stopped = false;  // ended early by stop_requested (after writing last_checkpoint)
};

TrainResult train(const Config& cfg, const TrainOptions& opt = {});

// FLOPs of one training token (forward + backward, no recompute): 6 per weight-token product,
// including the output layer, plus causal attention.
double train_flops_per_token(const ModelConfig& c, int64_t seq_len);

}  // namespace llm
