// train(): the loop. Micro-batches are accumulated into fp32 gradients normalised by the target
// tokens of the whole step (all micro-batches, all ranks); the step is then clipped, checked for
// overflow (loss scaling), applied by AdamW, logged, evaluated and checkpointed.
// Data parallel: every rank reads its slice of each step, DataParallel exchanges the gradients
// (plain, ZeRO-1 or ZeRO-2), and only rank 0 prints and writes shared files.
#include "llm/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "dist/data_parallel.h"
#include "dist/test_hooks.h"
#include "llm/checkpoint.h"
#include "llm/generate.h"
#include "llm/inference.h"
#include "llm/sampler.h"
#if defined(LLM_HAVE_NCCL)
#include "backend/cuda/cuda_factory.h"
#endif
#include "llm/error.h"
#include "llm/hf_weights.h"
#include "llm/loader.h"
#include "llm/optimizer.h"
#include "llm/prepare.h"
#include "train/metrics.h"

namespace llm {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double train_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  const ParamTable t(c);
  int64_t matmul_params = 0;  // weights that multiply every token: all but norms, biases, the input lookup
  for (const auto& p : t.params()) {
    if (p.kind == ParamKind::Weight || p.kind == ParamKind::Head) matmul_params += p.numel;
  }
  matmul_params += c.vocab_size * c.hidden_size;  // the output layer (tied or not)
  if (!c.tie_word_embeddings) matmul_params -= c.vocab_size * c.hidden_size;  // Head counted already
  // causal attention: q.k and p.v, 2 FLOPs per multiply-add, half the keys on average, x3 for backward
  const double attention = 6.0 * double(c.num_hidden_layers) * double(seq_len) * double(c.hidden_size);
  return 6.0 * double(matmul_params) + attention;
}

namespace {

struct StepStats {
  double loss = 0;
  double grad_norm = 0;
  bool applied = false;
  int64_t targets = 0;
};

// Initial weights: a checkpoint's (resume), an HF or run directory's (init_from), or Qwen init.
fs::path resolve_init_dir(const fs::path& p) {
  if (fs::exists(p / "model.safetensors") || fs::exists(p / "model.safetensors.index.json")) return p;
  if (auto ck = latest_checkpoint(p)) return *ck;  // one of our run directories
  fail("model.init_from: ", p.string(), " holds neither model.safetensors nor a checkpoint");
}

double evaluate(Qwen2Model& model, const EvalLoader& val, Communicator& comm) {
  double sum = 0, count = 0;
  for (int64_t i = 0; i < val.num_batches(); ++i) {
    const Batch b = val.batch(i);
    const LossSum l = model.forward(TokenBatch{b.B, b.T, b.ids, b.targets}, false);
    sum += l.sum;
    count += double(l.count);
  }
  double both[2] = {sum, count};
  comm.all_reduce_sum(both);
  sum = both[0];
  count = both[1];
  return count > 0 ? sum / count : NAN;
}

// What the trained model makes of io.sample_prompt: sampled (temperature 0.8, top-p 0.95, a fixed
// seed) so a user sees at once what the run learned. Errors here do not fail a finished run.
void print_sample(const Config& cfg, const Qwen2Model& model, const Tokenizer& tok, std::ostream& log) {
  try {
    InferenceOptions io;
    io.context = std::min<int64_t>(cfg.model.arch.max_position_embeddings, 1024);
    io.dtype = model.weights().dtype();
    InferenceModel inf(cfg.model.arch, download_weights(model), model.backend(), io);
    Session session(inf, tok);
    SamplingParams sp;
    sp.temperature = 0.8f;
    sp.top_p = 0.95f;
    sp.top_k = 0;
    sp.repeat_penalty = 1.1f;
    sp.seed = 1;
    Sampler sampler(sp);
    GenerateOptions go;
    go.max_tokens = cfg.io.sample_tokens;
    const std::vector<int32_t> prompt = tok.encode(cfg.io.sample_prompt);
    log << "sample: " << cfg.io.sample_prompt;
    session.generate(prompt, sampler, go, [&](std::string_view text) { log << text << std::flush; });
    log << "\n";
  } catch (const std::exception& e) {
    log << "\nsample: not generated: " << e.what() << "\n";
  }
}

}  // namespace

TrainResult train(const Config& cfg, const TrainOptions& opt) {
  const auto t_start = Clock::now();
  std::unique_ptr<Communicator> local;
  Communicator* comm = opt.comm;
  if (comm == nullptr) {
    local = make_local_communicator();
    comm = local.get();
  }
  const bool lead = comm->rank() == 0;
  std::ostream& log = opt.log ? *opt.log : std::cerr;
  const bool tty = opt.log == nullptr && ::isatty(STDERR_FILENO);
  auto say = [&](const std::string& s) {
    if (lead) log << s << "\n" << std::flush;
  };
  const TrainSection& tc = cfg.train;
  const fs::path run_dir = cfg.io.run_dir;
  const DistTestHooks hooks = DistTestHooks::from_env();

  // ---- data: prepare once (rank 0), then every rank opens its slice --------------------------------
  PrepareOptions popt = lead ? PrepareOptions::to_stderr() : PrepareOptions{};
  if (lead && opt.log) popt.log = opt.log, popt.tty = false;
  std::unique_ptr<Tokenizer> tokenizer;
  // The others wait for rank 0's preparation without a deadline: it can take hours.
  comm->set_timeout(0);
  comm->set_phase("data preparation (rank 0)");
  if (lead) {
    tokenizer = load_or_train_tokenizer(cfg.tokenizer, cfg.data, popt);
    if (!corpus_up_to_date(cfg.data, *tokenizer)) prepare_corpus(cfg.data, *tokenizer, popt);
  }
  comm->barrier();
  comm->set_timeout(cfg.dist.timeout_s);
  comm->set_phase("setup");
  if (!lead) tokenizer = load_tokenizer(cfg.tokenizer.path);
  LLM_CHECK(tokenizer->vocab_size() <= cfg.model.arch.vocab_size, "tokenizer: ", cfg.tokenizer.path.string(), " has ",
            tokenizer->vocab_size(), " ids but model.vocab_size is ", cfg.model.arch.vocab_size);
  LoaderOptions lo;
  lo.batch_size = tc.micro_batch;
  lo.seq_len = tc.seq_len;
  lo.rank = comm->rank();
  lo.world = comm->world();
  lo.seed = cfg.data.seed;
  lo.prefetch = cfg.data.prefetch_batches;
  ShardLoader loader(TokenStream::from_manifest(cfg.data.out_dir, "train", tokenizer->fingerprint()), lo);
  EvalOptions eo;
  eo.batch_size = tc.micro_batch;
  eo.seq_len = tc.seq_len;
  eo.rank = comm->rank();
  eo.world = comm->world();
  eo.max_batches = tc.eval_batches;
  const EvalLoader val(TokenStream::from_manifest(cfg.data.out_dir, "val", tokenizer->fingerprint()), eo);

  // ---- model, optimizer, precision ------------------------------------------------------------------
  std::unique_ptr<Backend> own_backend;
  Backend* backend = opt.backend;  // injected (tests), else the configured device
  if (backend == nullptr) {
    own_backend = make_backend(tc.device, tc.threads, comm->local_rank());
    backend = own_backend.get();
  }
  ModelOptions mo;
  mo.ce_chunk_tokens = tc.ce_chunk_tokens;
  mo.compute_dtype = resolve_precision(tc.precision, *backend);
  mo.recompute = tc.recompute;
  mo.max_batch = tc.micro_batch;
  mo.max_seq = tc.seq_len;
  Qwen2Model model(cfg.model.arch, *backend, mo);
  // Gradients live on the backend's device: on GPUs they travel over NCCL, scalars over MPI.
  std::unique_ptr<Communicator> device_comm;
  Communicator* grad_comm = comm;
  if (backend->device() == DeviceKind::CUDA && comm->world() > 1) {
#if defined(LLM_HAVE_NCCL)
    device_comm = cuda::make_nccl_communicator(*comm, *backend);
    device_comm->set_timeout(cfg.dist.timeout_s);
    grad_comm = device_comm.get();
#else
    fail("dist: ", comm->world(), " ranks on CUDA need a build with NCCL (found none at configure time)");
#endif
  }
  DataParallel dp(model, cfg.optim, cfg.dist, *grad_comm);
  AdamW& adamw = dp.optimizer();
  LossScaler scaler(mo.compute_dtype == DType::F16, tc.loss_scale_init, tc.loss_scale_growth_interval,
                    tc.loss_scale_backoff, tc.max_skipped_steps);

  int64_t step = 0, adam_steps = 0;
  uint64_t tokens_seen = 0;
  double elapsed_before = 0;
  std::optional<double> first_val;
  std::optional<fs::path> ckpt = opt.resume ? latest_checkpoint(run_dir) : std::nullopt;
  if (opt.resume && !ckpt) say(cat("resume: no checkpoint in ", run_dir.string(), "; starting fresh"));
  if (ckpt) {
    const nlohmann::json st = read_trainer_state(*ckpt);
    const std::string where = (*ckpt / "trainer_state.json").string();
    try {
      step = st.at("step").get<int64_t>();
      adam_steps = st.at("adam_steps").get<int64_t>();
      tokens_seen = st.at("tokens_seen").get<uint64_t>();
      elapsed_before = st.value("elapsed_s", 0.0);
      if (st.contains("first_val_loss") && st["first_val_loss"].is_number()) first_val = st["first_val_loss"].get<double>();
      LLM_CHECK(st.at("compute_dtype").get<std::string>() == dtype_name(mo.compute_dtype), where,
                ": the checkpoint was trained in ", st.at("compute_dtype").get<std::string>(), ", this run uses ",
                dtype_name(mo.compute_dtype));
      // The cursor is a global sample position: re-split over this run's ranks as it stands.
      loader.restore(DataCursor::from_json(st.at("data_cursor"), where + ": data_cursor"));
      scaler.from_json(st.at("loss_scaler"), where);
      const int saved_world = st.value("world_size", 1);
      if (saved_world != comm->world()) {
        say(cat("resume: the checkpoint was written by ", saved_world, saved_world == 1 ? " rank" : " ranks",
                ", continuing with ", comm->world(), ": optimizer state and data re-split"));
      }
    } catch (const nlohmann::json::exception& e) {
      fail(where, ": ", e.what());
    }
    load_optimizer_state(*ckpt, adamw);  // this rank's range, from whichever shards hold it
    dp.sync_weights();
    say(cat("resume: ", ckpt->string(), " (step ", step, ")"));
  } else {
    std::vector<float> flat;
    if (cfg.model.init_from) {
      const fs::path dir = resolve_init_dir(*cfg.model.init_from);
      flat = read_model_weights(dir, model.params(), cfg.model.arch);
      say(cat("init: weights from ", dir.string()));
    } else {
      flat.resize(static_cast<size_t>(model.params().flat_size()));
      init_parameter_values(cfg.model.arch, model.params(), tc.seed, 0, model.params().flat_size(), flat.data());
    }
    adamw.init(flat);
    dp.sync_weights();
  }
  const int64_t last_step = opt.stop_at >= 0 ? std::min(opt.stop_at, tc.steps) : tc.steps;
  // Rank 0 alone owns metrics.jsonl (opening it may rewrite it).
  std::optional<MetricsLog> metrics;
  if (lead) metrics.emplace(run_dir, ckpt ? step : -1);
  // Per-rank memory of the optimizer state (ZeRO shrinks it to 1/world), gathered for the log.
  std::vector<double> mem_slots(2 * size_t(comm->world()), 0.0);
  mem_slots[2 * size_t(comm->rank())] = double(dp.optimizer_bytes());
  mem_slots[2 * size_t(comm->rank()) + 1] = double(dp.gradient_shard_bytes());
  comm->all_reduce_sum(mem_slots);
  nlohmann::json opt_bytes = nlohmann::json::array(), shard_bytes = nlohmann::json::array();
  for (int r = 0; r < comm->world(); ++r) {
    opt_bytes.push_back(int64_t(mem_slots[2 * size_t(r)]));
    shard_bytes.push_back(int64_t(mem_slots[2 * size_t(r) + 1]));
  }
  if (lead) {
    metrics->write({{"event", "start"},
                    {"step", step},
                    {"dist",
                     {{"world", comm->world()},
                      {"zero", dp.zero()},
                      {"communicator", comm->name()},
                      {"optimizer_bytes", opt_bytes},
                      {"grad_shard_bytes", shard_bytes}}},
                    {"config", cfg.effective}});
  }

  const double flops_tok = train_flops_per_token(cfg.model.arch, tc.seq_len);
  const double peak = backend->peak_flops(mo.compute_dtype) * comm->world();
  const int64_t tokens_per_step = tc.micro_batch * tc.seq_len * tc.grad_accum * comm->world();
  say(cat("train: ", format_count(double(model.params().count())), " parameters, ", backend->name(), ", ",
          dtype_name(mo.compute_dtype), ", recompute ", recompute_name(mo.recompute), ", ", comm->world(),
          comm->world() == 1 ? " rank" : " ranks", ", ", tokens_per_step, " tokens/step, steps ", step, " -> ",
          last_step, " of ", tc.steps));
  if (comm->world() > 1) {
    say(cat("dist: ", comm->name(), ", ZeRO-", dp.zero(), ", optimizer state ", format_bytes(mem_slots[0]),
            " per rank, timeout ", cfg.dist.timeout_s, " s"));
  }

  std::optional<double> last_val;
  auto run_eval = [&](int64_t at_step) {
    comm->set_phase(cat("evaluation after step ", at_step));
    const double v = evaluate(model, val, *comm);
    last_val = v;
    if (!first_val) first_val = v;
    if (lead) {
      metrics->write({{"step", at_step}, {"val_loss", v}, {"val_ppl", std::exp(v)}});
      log << (tty ? "\r\033[K" : "") << "eval: step " << at_step << "  val_loss " << std::fixed << std::setprecision(4)
          << v << "  ppl " << std::setprecision(2) << std::exp(v) << std::defaultfloat << "\n"
          << std::flush;
      write_loss_plot(run_dir);
    }
  };
  auto save = [&](int64_t at_step) {
    nlohmann::json state = {{"adam_steps", adam_steps},
                            {"tokens_seen", tokens_seen},
                            {"data_cursor", loader.cursor().to_json()},
                            {"loss_scaler", scaler.to_json()},
                            {"compute_dtype", dtype_name(mo.compute_dtype)},
                            {"seed", tc.seed},
                            {"rng", {{"data_order_seed", cfg.data.seed}, {"init_seed", tc.seed}}},
                            {"elapsed_s", elapsed_before + std::chrono::duration<double>(Clock::now() - t_start).count()},
                            {"config", cfg.effective}};
    if (first_val) state["first_val_loss"] = *first_val;
    comm->set_phase(cat("checkpoint of step ", at_step));
    const fs::path dir =
        save_checkpoint(run_dir, at_step, model, adamw, tokenizer.get(), state, cfg.io.keep_last, *comm);
    say(cat((tty ? "\r\033[K" : ""), "checkpoint: ", dir.string()));
    return dir;
  };

  if (!ckpt && tc.eval_every > 0) run_eval(0);
  TrainResult result;
  double ema_step_s = 0, loss = 0;
  auto last_print = Clock::now();
  const auto loop_start = Clock::now();
  const int64_t first_step = step;
  std::vector<Batch> micro(static_cast<size_t>(tc.grad_accum));

  for (; step < last_step; ++step) {
    const auto t0 = Clock::now();
    hooks.before_step(step + 1, comm->rank());
    comm->set_phase(cat("step ", step + 1));
    const float lr = static_cast<float>(learning_rate(cfg.optim, step, tc.steps));
    int64_t local_targets = 0;
    for (auto& b : micro) {
      b = loader.next();
      for (int32_t t : b.targets) local_targets += t >= 0;
      hooks.log_samples(step + 1, comm->rank(), b);
    }
    const double targets = comm->all_reduce_sum(double(local_targets));
    const double scale = scaler.scale();
    dp.begin_step();
    double loss_sum = 0;
    for (const auto& b : micro) {
      loss_sum += model.forward(TokenBatch{b.B, b.T, b.ids, b.targets}, true, float(scale / targets)).sum;
      model.backward();
      dp.after_backward();
    }
    // The global norm (all ranges, all ranks): every rank clips and skips alike.
    const double grad_norm = std::sqrt(dp.reduce_gradients()) / scale;
    loss = comm->all_reduce_sum(loss_sum) / targets;
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    const bool apply = scaler.update(finite);
    if (apply) {
      const double clip = cfg.optim.grad_clip > 0 && grad_norm > cfg.optim.grad_clip ? cfg.optim.grad_clip / (grad_norm + 1e-6)
                                                                                      : 1.0;
      dp.apply(lr, ++adam_steps, float(clip / scale));
    } else if (scaler.gave_up()) {
      const auto good = latest_checkpoint(run_dir);
      fail("training stopped: the loss or the gradients were not finite for ", scaler.consecutive_skipped(),
           " steps in a row (step ", step, ", loss ", loss, ", gradient norm ", grad_norm, ", loss scale ", scale,
           "). Lower optim.lr, use precision bf16 or fp32, or check the data. The last good checkpoint is ",
           good ? good->string() : std::string("none (nothing was saved)"));
    }
    tokens_seen += uint64_t(targets);
    backend->synchronize();
    const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
    std::vector<std::string> hashes;
    if (hooks.param_hash()) hashes = DistTestHooks::param_hashes(model, *comm);
    ema_step_s = step == first_step ? dt : 0.9 * ema_step_s + 0.1 * dt;

    if (lead) {
      const double tps = double(tokens_per_step) / ema_step_s;
      nlohmann::json rec = {{"step", step + 1},    {"loss", loss},         {"lr", lr},
                            {"grad_norm", grad_norm}, {"tokens", tokens_seen}, {"tokens_per_s", tps},
                            {"step_s", dt},        {"applied", apply}};
      if (mo.compute_dtype == DType::F16) rec["loss_scale"] = scale;
      if (!hashes.empty()) rec["param_hash"] = hashes;
      metrics->write(rec);
      const bool last = step + 1 == last_step;
      const double since = std::chrono::duration<double>(Clock::now() - last_print).count();
      if (tty || last || (step + 1) % tc.log_every == 0 || since > 30) {
        size_t mem = 0;
        for (const Arena* a : model.arenas()) mem += a->peak_bytes();
        mem += dp.optimizer_bytes() + dp.gradient_shard_bytes();
        std::ostringstream line;
        line << "step " << step + 1 << "/" << tc.steps << "  loss " << std::fixed << std::setprecision(4) << loss
             << "  lr " << std::scientific << std::setprecision(2) << lr << std::defaultfloat << "  "
             << format_count(tps) << " tok/s  ";
        const double flops = flops_tok * tps;
        if (peak > 0) {
          line << "MFU " << std::fixed << std::setprecision(1) << 100.0 * flops / peak << "%  " << std::defaultfloat;
        } else {
          line << std::fixed << std::setprecision(1) << flops / 1e9 << " GFLOP/s  " << std::defaultfloat;
        }
        line << "mem " << format_bytes(double(mem)) << "  ETA " << format_duration(ema_step_s * double(last_step - step - 1));
        if (!apply) line << "  [skipped: non-finite]";
        log << (tty ? "\r\033[K" : "") << line.str() << (tty && !last ? "" : "\n") << std::flush;
        last_print = Clock::now();
      }
    }
    const int64_t done = step + 1;
    const bool final_step = done == last_step;
    if (tc.eval_every > 0 && (done % tc.eval_every == 0 || (final_step && done == tc.steps))) run_eval(done);
    if ((cfg.io.save_every > 0 && done % cfg.io.save_every == 0) || final_step) result.last_checkpoint = save(done);
  }
  if (tc.eval_every == 0 && step == tc.steps && step > first_step) run_eval(step);

  result.steps_done = step;
  result.last_loss = loss;
  result.first_val_loss = first_val;
  result.last_val_loss = last_val;
  result.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  const double loop_s = std::chrono::duration<double>(Clock::now() - loop_start).count();
  result.tokens_per_s = loop_s > 0 ? double(tokens_per_step) * double(step - first_step) / loop_s : 0;
  result.skipped_steps = scaler.skipped_total();
  if (lead) {
    metrics->write({{"event", "end"}, {"step", step}, {"seconds", result.seconds}});
    write_loss_plot(run_dir);
    if (!cfg.io.sample_prompt.empty() && step == tc.steps) print_sample(cfg, model, *tokenizer, log);
  }
  return result;
}

}  // namespace llm
