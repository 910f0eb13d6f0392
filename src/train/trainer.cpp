// train(): the loop. Micro-batches are accumulated into fp32 gradients normalised by the target
// tokens of the whole step (all micro-batches, all ranks); the step is then clipped, checked for
// overflow (loss scaling), applied by AdamW, logged, evaluated and checkpointed.
// Data parallel: every rank reads its slice of each step, DataParallel exchanges the gradients
// (plain, ZeRO-1 or ZeRO-2), and only rank 0 prints and writes shared files.
// The parts of a run and its other stages are TrainRun's (train_run.h).
#include "llm/trainer.h"

#include <cmath>

#include "llm/checkpoint.h"
#include "llm/error.h"
#include "llm/optimizer.h"
#include "train/train_run.h"

namespace llm {

using Clock = std::chrono::steady_clock;

double train_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  const ParamTable t(c);
  int64_t matmul_params = 0;  // weights that multiply every token: all but norms, biases, the input lookup
  for (const auto& p : t.params()) {
    if (p.kind == ParamKind::Weight || p.kind == ParamKind::Head) matmul_params += p.numel;
  }
  matmul_params += c.vocab_size * c.hidden_size;                              // the output layer (tied or not)
  if (!c.tie_word_embeddings) matmul_params -= c.vocab_size * c.hidden_size;  // Head counted already
  // causal attention: q.k and p.v, 2 FLOPs per multiply-add, half the keys on average, x3 for backward
  const double attention = 6.0 * double(c.num_hidden_layers) * double(seq_len) * double(c.hidden_size);
  return 6.0 * double(matmul_params) + attention;
}

TrainResult train(const Config& cfg, const TrainOptions& opt) {
  TrainRun run(cfg, opt);  // communicator, data, backend, model, optimizer
  run.start();             // resume or initialise; the start record; evaluation at step 0
  const TrainSection& tc = cfg.train;
  while (run.state.step < run.last_step) {
    run.report(run.step());
    const int64_t done = run.state.step;
    const bool final_step = done == run.last_step;
    if (tc.eval_every > 0 && (done % tc.eval_every == 0 || (final_step && done == tc.steps))) run.evaluate(done);
    const TrainRun::Poll poll = run.poll();  // collective: a stop request or a time-based save
    if ((cfg.io.save_every > 0 && done % cfg.io.save_every == 0) || final_step || poll.save_due || poll.stop) {
      if (!run.try_save(done) && poll.stop) {
        throw CheckpointWriteError(cat("stopped on request after step ", done, " without a new checkpoint"));
      }
    }
    if (poll.stop && !final_step) {
      run.result.stopped = true;
      break;
    }
  }
  if (tc.eval_every == 0 && run.state.step == tc.steps && run.state.step > run.first_step())
    run.evaluate(run.state.step);
  return run.finish();
}

StepStats TrainRun::step() {
  const auto t0 = Clock::now();
  const int64_t n = state.step + 1;  // this step, 1-based
  const int rank = comm_->rank();
  if (opt_.hooks.before_step) opt_.hooks.before_step(n, rank);
  comm_->set_phase(cat("step ", n));
  StepStats s;
  s.lr = static_cast<float>(learning_rate(cfg.optim, state.step, tc.steps));
  int64_t local_targets = 0;
  for (auto& b : micro_) {
    b = data_.loader->next();
    for (int32_t t : b.targets) local_targets += t >= 0;
    if (opt_.hooks.on_batch) opt_.hooks.on_batch(n, rank, b);
  }
  const double targets = comm_->all_reduce_sum(double(local_targets));
  s.scale = scaler_->scale();
  dp_->begin_step();
  double loss_sum = 0;
  for (size_t i = 0; i < micro_.size(); ++i) {
    const Batch& b = micro_[i];
    // LoRA dropout masks: a function of (seed, step, micro-batch, rank), so a resume redraws them.
    model_->set_dropout_seed(tc.seed ^ (uint64_t(n) << 24 | uint64_t(i) << 8 | uint64_t(rank)) * 0x9e3779b97f4a7c15ull);
    const TokenBatch batch{b.B, b.T, b.ids, b.targets, b.positions};
    const double mb_loss = model_->forward(batch, true, float(s.scale / targets)).sum;
    loss_sum += mb_loss;
    model_->backward();
    dp_->after_backward();
    // The first non-finite loss of the run: a forward overflow is not the loss scaler's to fix, so
    // re-run this forward checking each tensor and say where it broke (off the fast path).
    if (!std::isfinite(mb_loss) && nonfinite_.empty()) {
      nonfinite_ = model_->diagnose_nonfinite(batch);
      say(cat("warning: step ", n, ": the loss is not finite (rank ", rank, ", micro-batch ", i, "): ", nonfinite_));
    }
  }
  // The global norm (all ranges, all ranks): every rank clips and skips alike.
  s.grad_norm = std::sqrt(dp_->reduce_gradients()) / s.scale;
  s.loss = comm_->all_reduce_sum(loss_sum) / targets;
  s.applied = scaler_->update(std::isfinite(s.loss) && std::isfinite(s.grad_norm));
  if (s.applied) {
    const double clip =
        cfg.optim.grad_clip > 0 && s.grad_norm > cfg.optim.grad_clip ? cfg.optim.grad_clip / (s.grad_norm + 1e-6) : 1.0;
    dp_->apply(s.lr, ++state.adam_steps, float(clip / s.scale));
  } else if (scaler_->gave_up()) {
    const auto good = latest_checkpoint(cfg.io.run_dir);
    fail("training stopped: the loss or the gradients were not finite for ", scaler_->consecutive_skipped(),
         " steps in a row (step ", state.step, ", loss ", s.loss, ", gradient norm ", s.grad_norm, ", loss scale ",
         s.scale, "). Lower optim.lr, use precision bf16 or fp32, or check the data. The last good checkpoint is ",
         good ? good->string() : std::string("none (nothing was saved)"),
         nonfinite_.empty() ? std::string() : cat(". At the first non-finite loss, ", nonfinite_));
  }
  state.tokens_seen += uint64_t(targets);
  backend_->synchronize();
  s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (opt_.hooks.after_step) s.extra = opt_.hooks.after_step(n, *model_, *comm_);
  ema_step_s_ = state.step == first_step_ ? s.seconds : 0.9 * ema_step_s_ + 0.1 * s.seconds;
  state.step = n;
  result.last_loss = s.loss;
  return s;
}

void TrainRun::report(const StepStats& s) {
  if (!lead_) return;
  const double tps = double(tokens_per_step_) / ema_step_s_;
  nlohmann::json rec = {
      {"step", state.step},          {"loss", s.loss},      {"lr", s.lr},          {"grad_norm", s.grad_norm},
      {"tokens", state.tokens_seen}, {"tokens_per_s", tps}, {"step_s", s.seconds}, {"applied", s.applied}};
  if (mo_.compute_dtype == DType::F16) rec["loss_scale"] = s.scale;
  if (s.extra.is_object()) rec.update(s.extra);
  metrics_->write(rec);
  const bool last = state.step == last_step;
  if (!progress_.due(state.step, last)) return;
  size_t mem = 0;
  for (const Arena* a : model_->arenas()) mem += a->peak_bytes();
  mem += dp_->optimizer_bytes() + dp_->gradient_shard_bytes();
  StepProgress p;
  p.step = state.step;
  p.total_steps = tc.steps;
  p.loss = s.loss;
  p.lr = s.lr;
  p.tokens_per_s = tps;
  p.flops_per_s = flops_per_token_ * tps;
  p.peak_flops = peak_flops_;
  p.mem_bytes = double(mem);
  p.eta_s = ema_step_s_ * double(last_step - state.step);
  p.skipped = !s.applied;
  progress_.step_line(format_progress(p), last);
}

}  // namespace llm
