// TrainRun: the parts of one training run and the steps train() (trainer.cpp) strings together.
// The constructor wires them in order: communicator, data (train_data.h), backend, model, the
// gradient communicator (dist/make_communicator.h), data parallelism and optimizer, loss scaler;
// then the state comes from the newest checkpoint (resume) or from fresh weights.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "dist/data_parallel.h"
#include "llm/trainer.h"
#include "train/metrics.h"
#include "train/train_data.h"
#include "train/trainer_state.h"

namespace llm {

// What one optimizer step did.
struct StepStats {
  float lr = 0;
  double loss = 0;       // mean over the step's target tokens, all ranks
  double grad_norm = 0;  // global, unscaled, before clipping
  double scale = 1;      // the loss scale it ran with
  bool applied = false;  // false: skipped (non-finite)
  double seconds = 0;
  nlohmann::json extra;  // fields hooks.after_step adds to the metrics record
};

class TrainRun {
 public:
  using Clock = std::chrono::steady_clock;

  TrainRun(const Config& cfg, const TrainOptions& opt);

  // Resumes from the newest checkpoint of io.run_dir (opt.resume) or initialises the weights
  // (init_from or Qwen init); then opens metrics.jsonl and logs the start. True when resumed.
  bool start();
  // One optimizer step (state.step + 1): micro-batches, forward/backward, gradient exchange,
  // loss scaling, clipping, AdamW. Advances state.step.
  StepStats step();
  // Rank 0: the step's metrics record and progress line.
  void report(const StepStats& s);
  // Validation loss after step `at_step`: recorded, printed, plotted.
  void evaluate(int64_t at_step);
  // A checkpoint of the current state as step `at_step`.
  std::filesystem::path save(int64_t at_step);
  // After a step, collectively: whether any rank was asked to stop, and whether rank 0's clock
  // says a time-based checkpoint (io.save_every_minutes) is due. Every rank gets the same answer.
  struct Poll {
    bool stop = false, save_due = false;
  };
  Poll poll();
  // save() under io.on_save_error: true when written; false when it failed and the run goes on
  // ("retry"); a CheckpointWriteError when it failed and the run stops ("stop").
  bool try_save(int64_t at_step);
  // The end: final record, plot and sample (rank 0), and the result.
  TrainResult finish();
  int64_t first_step() const { return first_step_; }  // the step this invocation started from

  const Config& cfg;
  const TrainSection& tc;
  int64_t last_step = 0;  // where this invocation stops (opt.stop_at, at most train.steps)
  TrainerState state;
  TrainResult result;

 private:
  void say(const std::string& s);
  void resume(const std::filesystem::path& ckpt);
  void init_weights();
  std::vector<float> base_weights();  // init_from's weights, else the Qwen initialisation
  void log_start();

  const TrainOptions& opt_;
  const Clock::time_point t_start_;
  double elapsed_before_ = 0;  // elapsed_s of the checkpoint resumed from
  std::unique_ptr<Communicator> local_;
  Communicator* comm_;
  const bool lead_;
  ProgressLog progress_;
  TrainData data_;
  std::unique_ptr<Backend> own_backend_;
  Backend* backend_;
  ModelOptions mo_;
  std::unique_ptr<Qwen2Model> model_;
  std::unique_ptr<Communicator> grad_comm_;  // NCCL on CUDA with several ranks, else none (comm_ serves)
  std::unique_ptr<DataParallel> dp_;
  std::unique_ptr<LossScaler> scaler_;
  std::optional<MetricsLog> metrics_;  // rank 0 alone owns metrics.jsonl
  std::vector<Batch> micro_;
  int64_t tokens_per_step_ = 0;
  double flops_per_token_ = 0, peak_flops_ = 0;
  int64_t first_step_ = 0;
  double ema_step_s_ = 0;
  Clock::time_point loop_start_;
  Clock::time_point last_save_;  // start, or the last checkpoint attempt (io.save_every_minutes)
  std::string nonfinite_;        // where the first non-finite loss's forward broke (Qwen2Model::diagnose_nonfinite)
};

}  // namespace llm
