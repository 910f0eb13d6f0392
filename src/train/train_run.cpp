// TrainRun: setting a run up, resuming or initialising it, evaluating, checkpointing, finishing.
// The step itself and the loop are in trainer.cpp.
#include "train/train_run.h"

#include <unistd.h>

#include <cmath>
#include <iostream>

#include "dist/make_communicator.h"
#include "llm/checkpoint.h"
#include "llm/checksum.h"
#include "llm/error.h"
#include "llm/hf_weights.h"
#include "llm/lora.h"
#include "train/evaluation.h"

namespace llm {

namespace fs = std::filesystem;

namespace {

// Initial weights of init_from: an HF directory or checkpoint, or one of our run directories.
fs::path resolve_init_dir(const fs::path& p) {
  if (fs::exists(p / "model.safetensors") || fs::exists(p / "model.safetensors.index.json")) return p;
  if (auto ck = latest_checkpoint(p)) return *ck;  // one of our run directories
  fail("model.init_from: ", p.string(), " holds neither model.safetensors nor a checkpoint");
}

}  // namespace

TrainRun::TrainRun(const Config& c, const TrainOptions& opt)
    : cfg(c),
      tc(c.train),
      opt_(opt),
      t_start_(Clock::now()),
      local_(opt.comm ? nullptr : make_local_communicator()),
      comm_(opt.comm ? opt.comm : local_.get()),
      lead_(comm_->rank() == 0),
      progress_(opt.log ? *opt.log : std::cerr, opt.log == nullptr && ::isatty(STDERR_FILENO), c.train.log_every),
      data_(setup_data(c, *comm_, opt.log)),
      // Injected (tests), else the configured device.
      own_backend_(opt.backend ? nullptr : make_backend(c.train.device, c.train.threads, comm_->local_rank())),
      backend_(opt.backend ? opt.backend : own_backend_.get()) {
  mo_.ce_chunk_tokens = tc.ce_chunk_tokens;
  mo_.compute_dtype = resolve_precision(tc.precision, *backend_);
  mo_.recompute = tc.recompute;
  mo_.max_batch = tc.micro_batch;
  mo_.max_seq = tc.seq_len;
  mo_.lora = tc.lora;
  // ZeRO-2: gradients bucket by bucket (DataParallel); LoRA adapters' gradients are small and stay whole.
  mo_.bucketed_grads = cfg.dist.zero == 2 && !tc.lora.enabled();
  model_ = std::make_unique<Qwen2Model>(cfg.model.arch, *backend_, mo_);
  grad_comm_ = make_gradient_communicator(*comm_, *backend_, cfg.dist.timeout_s);
  dp_ = std::make_unique<DataParallel>(*model_, cfg.optim, cfg.dist, grad_comm_ ? *grad_comm_ : *comm_);
  scaler_ = std::make_unique<LossScaler>(mo_.compute_dtype == DType::F16, tc.loss_scale_init,
                                         tc.loss_scale_growth_interval, tc.loss_scale_backoff, tc.max_skipped_steps);
  micro_.resize(static_cast<size_t>(tc.grad_accum));
  tokens_per_step_ = tc.micro_batch * tc.seq_len * tc.grad_accum * comm_->world();
  flops_per_token_ = train_flops_per_token(cfg.model.arch, tc.seq_len);
  peak_flops_ = backend_->peak_flops(mo_.compute_dtype) * comm_->world();
}

void TrainRun::say(const std::string& s) {
  if (lead_) progress_.say(s);
}

bool TrainRun::start() {
  const fs::path& run_dir = cfg.io.run_dir;
  // What a killed save left behind goes before anyone looks for the newest checkpoint.
  if (lead_) clean_run_dir(run_dir);
  comm_->barrier();
  const std::optional<fs::path> ckpt = opt_.resume ? latest_checkpoint(run_dir) : std::nullopt;
  if (opt_.resume && !ckpt) say(cat("resume: no checkpoint in ", run_dir.string(), "; starting fresh"));
  if (ckpt) {
    resume(*ckpt);
  } else {
    init_weights();
  }
  last_step = opt_.stop_at >= 0 ? std::min(opt_.stop_at, tc.steps) : tc.steps;
  // Rank 0 alone owns metrics.jsonl (opening it may rewrite it).
  if (lead_) metrics_.emplace(run_dir, ckpt ? state.step : -1);
  log_start();
  if (!ckpt && tc.eval_every > 0) evaluate(0);
  first_step_ = state.step;
  loop_start_ = last_save_ = Clock::now();
  progress_.start();
  return ckpt.has_value();
}

void TrainRun::resume(const fs::path& ckpt) {
  // Every file against checksums.json before any byte of it is used.
  verify_checksums(ckpt);
  const std::string where = (ckpt / "trainer_state.json").string();
  state = TrainerState::from_json(read_trainer_state(ckpt), where);
  elapsed_before_ = state.elapsed_s;
  const std::string_view mine = dtype_name(mo_.compute_dtype);
  if (state.compute_dtype != mine) {
    const std::string_view theirs = precision_setting(state.compute_dtype);
    fail(where, ": the checkpoint was trained in ", state.compute_dtype, ", this run uses ", mine, " (train.precision ",
         precision_name(tc.precision), " on ", backend_->name(), ")",
         theirs.empty() ? std::string()
                        : cat("; to resume it, pass --set train.precision=", theirs, " (or set \"precision\": \"",
                              theirs, "\" in the config's train section)"));
  }
  const bool lora_ckpt = fs::exists(ckpt / "adapter_config.json");
  LLM_CHECK(lora_ckpt == (model_->lora() != nullptr), ckpt.string(), ": the checkpoint is ",
            lora_ckpt ? "a LoRA run's" : "a full fine-tuning run's", ", this run ",
            model_->lora() ? "trains LoRA adapters (train.lora is set)" : "has no train.lora");
  if (model_->lora()) model_->set_weights(base_weights());  // frozen: where init_from names them
  // The cursor is a global sample position: re-split over this run's ranks as it stands.
  data_.loader->restore(state.data_cursor);
  scaler_->from_json(state.loss_scaler, where);
  if (state.world_size != comm_->world()) {
    say(cat("resume: the checkpoint was written by ", state.world_size, state.world_size == 1 ? " rank" : " ranks",
            ", continuing with ", comm_->world(), ": optimizer state and data re-split"));
  }
  load_optimizer_state(ckpt, dp_->optimizer());  // this rank's range, from whichever shards hold it
  dp_->sync_weights();
  say(cat("resume: ", ckpt.string(), " (step ", state.step, ")"));
}

std::vector<float> TrainRun::base_weights() {
  std::vector<float> flat;
  if (cfg.model.init_from) {
    const fs::path dir = resolve_init_dir(*cfg.model.init_from);
    flat = read_model_weights(dir, model_->params(), cfg.model.arch);
    say(cat("init: weights from ", dir.string()));
  } else {
    flat.resize(static_cast<size_t>(model_->params().flat_size()));
    init_parameter_values(cfg.model.arch, model_->params(), tc.seed, 0, model_->params().flat_size(), flat.data());
  }
  return flat;
}

void TrainRun::init_weights() {
  if (model_->lora()) {
    // LoRA: the base is frozen in the compute dtype (no master copy); the optimizer owns the adapters.
    model_->set_weights(base_weights());
    dp_->optimizer().init(init_lora_values(*model_->lora(), tc.seed));
  } else {
    dp_->optimizer().init(base_weights());
  }
  dp_->sync_weights();
}

void TrainRun::log_start() {
  Communicator& comm = *comm_;
  // Per-rank memory of the optimizer state (ZeRO shrinks it to 1/world), of the ZeRO-2 gradient
  // shard and of the model's gradient buffers (ZeRO-2: buckets), gathered for the log.
  size_t model_grads = 0;
  for (const Arena* a : model_->arenas()) model_grads += a->name() == "grads" ? a->peak_bytes() : 0;
  std::vector<double> mem_slots(3 * size_t(comm.world()), 0.0);
  mem_slots[3 * size_t(comm.rank())] = double(dp_->optimizer_bytes());
  mem_slots[3 * size_t(comm.rank()) + 1] = double(dp_->gradient_shard_bytes());
  mem_slots[3 * size_t(comm.rank()) + 2] = double(model_grads);
  comm.all_reduce_sum(mem_slots);
  nlohmann::json opt_bytes = nlohmann::json::array(), shard_bytes = nlohmann::json::array(),
                 grad_bytes = nlohmann::json::array();
  for (int r = 0; r < comm.world(); ++r) {
    opt_bytes.push_back(int64_t(mem_slots[3 * size_t(r)]));
    shard_bytes.push_back(int64_t(mem_slots[3 * size_t(r) + 1]));
    grad_bytes.push_back(int64_t(mem_slots[3 * size_t(r) + 2]));
  }
  if (lead_) {
    metrics_->write({{"event", "start"},
                     {"step", state.step},
                     {"dist",
                      {{"world", comm.world()},
                       {"zero", dp_->zero()},
                       {"communicator", comm.name()},
                       {"optimizer_bytes", opt_bytes},
                       {"grad_shard_bytes", shard_bytes},
                       {"grad_bytes", grad_bytes}}},
                     {"config", cfg.effective}});
  }
  if (const LoraTable* l = model_->lora()) {
    say(cat("lora: ", format_count(double(l->count())), " trainable adapter parameters (r ", l->config().rank,
            ", alpha ", l->config().alpha, ", ", l->adapters().size(), " adapters), base frozen"));
  }
  say(cat("train: ", format_count(double(model_->params().count())), " parameters, ", backend_->name(), ", ",
          dtype_name(mo_.compute_dtype), ", recompute ", recompute_name(mo_.recompute), ", ", comm.world(),
          comm.world() == 1 ? " rank" : " ranks", ", ", tokens_per_step_, " tokens/step, steps ", state.step, " -> ",
          last_step, " of ", tc.steps));
  if (comm.world() > 1) {
    say(cat("dist: ", comm.name(), ", ZeRO-", dp_->zero(), ", optimizer state ", format_bytes(mem_slots[0]),
            ", gradients ", format_bytes(mem_slots[1] + mem_slots[2]), " per rank, timeout ", cfg.dist.timeout_s,
            " s"));
  }
}

void TrainRun::evaluate(int64_t at_step) {
  comm_->set_phase(cat("evaluation after step ", at_step));
  const double v = llm::evaluate(*model_, *data_.val, *comm_);
  if (std::isnan(v)) return;  // no validation tokens (data.val_fraction 0, or all masked): nothing to report
  result.last_val_loss = v;
  if (!state.first_val_loss) state.first_val_loss = v;
  if (lead_) {
    metrics_->write({{"step", at_step}, {"val_loss", v}, {"val_ppl", std::exp(v)}});
    progress_.line(format_eval(at_step, v));
    write_loss_plot(cfg.io.run_dir);
  }
}

fs::path TrainRun::save(int64_t at_step) {
  state.data_cursor = data_.loader->cursor();
  state.loss_scaler = scaler_->to_json();
  state.compute_dtype = dtype_name(mo_.compute_dtype);
  state.seed = tc.seed;
  state.data_order_seed = cfg.data.seed;
  state.elapsed_s = elapsed_before_ + std::chrono::duration<double>(Clock::now() - t_start_).count();
  state.config = cfg.effective;
  state.world_size = comm_->world();
  comm_->set_phase(cat("checkpoint of step ", at_step));
  const fs::path dir = save_checkpoint(cfg.io.run_dir, at_step, *model_, dp_->optimizer(), data_.tokenizer.get(),
                                       state.to_json(), cfg.io.keep_last, *comm_, opt_.hooks.before_checkpoint_commit);
  if (lead_) progress_.line(cat("checkpoint: ", dir.string()));
  return dir;
}

TrainRun::Poll TrainRun::poll() {
  const double minutes = std::chrono::duration<double>(Clock::now() - last_save_).count() / 60.0;
  std::vector<double> votes = {
      opt_.stop_requested && opt_.stop_requested() ? 1.0 : 0.0,
      lead_ && cfg.io.save_every_minutes > 0 && minutes >= cfg.io.save_every_minutes ? 1.0 : 0.0};
  comm_->all_reduce_sum(votes);
  return {votes[0] > 0, votes[1] > 0};
}

bool TrainRun::try_save(int64_t at_step) {
  last_save_ = Clock::now();
  try {
    result.last_checkpoint = save(at_step);
    return true;
  } catch (const CheckpointWriteError& e) {
    const auto good = latest_checkpoint(cfg.io.run_dir);
    const std::string kept =
        good ? cat("the last good checkpoint is ", good->string()) : std::string("there is no earlier checkpoint");
    if (!cfg.io.retry_failed_save || at_step == last_step) {
      throw CheckpointWriteError(cat(e.what(), "; ", kept, " (io.on_save_error: stop)"));
    }
    say(cat("warning: ", e.what(), "; training goes on and the next save tries again (io.on_save_error: retry); ",
            kept));
    return false;
  }
}

TrainResult TrainRun::finish() {
  result.steps_done = state.step;
  result.first_val_loss = state.first_val_loss;
  result.seconds = std::chrono::duration<double>(Clock::now() - t_start_).count();
  const double loop_s = std::chrono::duration<double>(Clock::now() - loop_start_).count();
  result.tokens_per_s = loop_s > 0 ? double(tokens_per_step_) * double(state.step - first_step_) / loop_s : 0;
  result.skipped_steps = scaler_->skipped_total();
  for (const Arena* a : model_->arenas()) result.arena_peak_bytes[a->name()] = a->peak_bytes();
  result.arena_peak_bytes["optimizer"] = dp_->optimizer_bytes();
  result.arena_peak_bytes["zero2 gradients"] = dp_->gradient_shard_bytes();
  if (lead_) {
    // Rank 0's arena high-water marks over the whole run.
    metrics_->write({{"event", "end"},
                     {"step", state.step},
                     {"seconds", result.seconds},
                     {"arena_peak_bytes", result.arena_peak_bytes}});
    write_loss_plot(cfg.io.run_dir);
    if (!cfg.io.sample_prompt.empty() && state.step == tc.steps)
      print_sample(cfg, *model_, *data_.tokenizer, progress_.out());
  }
  return result;
}

}  // namespace llm
