// llmbench: throughput measurements of the engine itself, printed as one JSON line per run so
// bench/ scripts can set them beside a baseline measured in the same run. Each line carries "cpu":
// the processor, its vector extensions, the BLAS kernels in use, oneDNN's ISA and the environment
// variables that choose kernels or threads, so that a figure can be reproduced.
//   llmbench train --config FILE --batch B --seq T --steps S [--warmup W] [--threads N]
#include <CLI/CLI.hpp>

#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>

#include <random>
#include <thread>

#include "backend/cpu/cpu_info.h"
#include "llm/backend.h"
#include "llm/config.h"
#include "llm/error.h"
#include "llm/inference.h"
#include "llm/model.h"
#include "llm/profiling_backend.h"
#include "llm/tokenizer.h"
#include "llm/trainer.h"
#include "serve/scheduler.h"

namespace {

void print_profile(const std::map<std::string, llm::OpTime>& times, int steps) {
  double total = 0;
  for (const auto& [op, t] : times) total += t.seconds;
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [op, t] : times) rows.push_back({t.seconds, op});
  std::sort(rows.rbegin(), rows.rend());
  std::fprintf(stderr, "%-24s %10s %8s %8s %8s\n", "op", "ms/step", "share", "calls", "GFLOP/s");
  for (const auto& [sec, op] : rows) {
    const llm::OpTime& t = times.at(op);
    std::fprintf(stderr, "%-24s %10.2f %7.1f%% %8lld", op.c_str(), 1e3 * sec / steps, 100 * sec / total,
                 static_cast<long long>(t.calls / steps));
    if (t.flops > 0 && sec > 0) std::fprintf(stderr, " %8.1f", t.flops / sec / 1e9);
    std::fprintf(stderr, "\n");
  }
}

int bench_train(const std::string& config_file, const std::vector<std::string>& sets, int64_t B, int64_t T, int steps,
                int warmup, int threads, const std::string& device, bool profile) {
  using namespace llm;
  // Only the architecture matters here; precision and recompute come from --set train.* or defaults.
  const Config base = default_config(sets);
  const ModelConfig arch = config_file.empty() ? base.model.arch : load_model_section(config_file);
  auto backend = make_backend(device.empty() ? std::string("cpu") : device, threads);
  std::map<std::string, OpTime> times;
  if (profile) backend = make_profiling_backend(std::move(backend), &times);
  ModelOptions o;
  o.compute_dtype = resolve_precision(base.train.precision, *backend);
  o.recompute = base.train.recompute;
  o.max_batch = B;
  o.max_seq = T;
  Qwen2Model model(arch, *backend, o);
  std::vector<float> w(static_cast<size_t>(model.params().flat_size()));
  init_parameter_values(arch, model.params(), base.train.seed, 0, model.params().flat_size(), w.data());
  model.set_weights(w);
  std::mt19937_64 g(base.train.seed);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(arch.vocab_size - 1));
  std::vector<int32_t> ids(static_cast<size_t>(B * T)), targets(static_cast<size_t>(B * T));
  std::vector<double> step_times;
  double loss = 0;
  for (int s = 0; s < warmup + steps; ++s) {
    for (auto& x : ids) x = id(g);
    for (auto& x : targets) x = id(g);
    const auto t0 = std::chrono::steady_clock::now();
    model.zero_grads();
    loss = model.forward(TokenBatch{B, T, ids, targets, {}}, true, 1.0f / float(B * T)).mean();
    model.backward();
    backend->synchronize();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) step_times.push_back(dt);
    if (s + 1 == warmup) times.clear();
  }
  std::sort(step_times.begin(), step_times.end());
  const double median = step_times[step_times.size() / 2];
  if (profile) print_profile(times, steps);
  size_t peak_bytes = 0;
  for (const Arena* a : model.arenas()) peak_bytes += a->peak_bytes();
  const double flops = train_flops_per_token(arch, T) * double(B * T) / median;
  const double peak = backend->peak_flops(o.compute_dtype);
  std::cout << nlohmann::json{{"tokens_per_s", double(B * T) / median},
                              {"gflops", flops / 1e9},
                              {"mfu", peak > 0 ? flops / peak : 0.0},
                              {"model_peak_bytes", peak_bytes},
                              {"recompute", recompute_name(o.recompute)},
                              {"step_s_median", median},
                              {"params", model.params().count()},
                              {"threads", threads},
                              {"batch", B},
                              {"seq", T},
                              {"steps", steps},
                              {"device", backend->name()},
                              {"dtype", dtype_name(o.compute_dtype)},
                              {"final_loss", loss},
                              {"cpu", llm::cpu::cpu_environment()}}
                   .dump()
            << "\n";
  return 0;
}

// Streaming read bandwidth (GB/s) with `threads` threads over a 1 GiB buffer from the backend's
// allocator, so it sits in the same kind of pages (2 MiB, advised huge) as the weights: the
// floor of decode. The best of several passes.
double read_bandwidth(llm::Backend& backend, int threads) {
  const size_t n = size_t(1) << 28;  // floats
  auto* buf = static_cast<float*>(backend.raw_alloc(n * sizeof(float)));
  if (buf == nullptr) return 0;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < int64_t(n); ++i) buf[i] = 1.0f;
  double best = 0;
  for (int rep = 0; rep < 8; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : total) schedule(static)
    for (int64_t b = 0; b < 256; ++b) {
      const float* p = buf + b * (int64_t(n) / 256);
      float acc[16] = {};
      for (int64_t i = 0; i < int64_t(n) / 256; i += 16)
        for (int j = 0; j < 16; ++j) acc[j] += p[i + j];
      for (float a : acc) total += a;
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (total != double(n)) std::fprintf(stderr, "bandwidth: checksum %g\n", total);
    best = std::max(best, double(n) * 4 / dt / 1e9);
  }
  backend.raw_free(buf, n * sizeof(float));
  return best;
}

// A model for the inference benchmarks: the config's shape (default: the built-in tiny one) with
// Qwen-initialised random weights, the weight format `dtype` / `quant` names (int4: groups of 32).
std::unique_ptr<llm::InferenceModel> random_inference_model(const llm::ModelConfig& arch, llm::Backend& backend,
                                                            llm::InferenceOptions io, const std::string& dtype,
                                                            const std::string& quant) {
  using namespace llm;
  io.dtype = parse_float_dtype(dtype, "--dtype");
  io.quant = parse_quant(quant, "--quant");
  io.quant_group = io.quant == QuantMode::Int4 ? 32 : 0;
  LLM_CHECK(!io.int8_activations || io.quant != QuantMode::None, "--int8-activations: only with --quant int8 or int4");
  const ParamTable table(arch);
  std::vector<float> w(static_cast<size_t>(table.flat_size()));
  init_parameter_values(arch, table, 1234, 0, table.flat_size(), w.data());
  return std::make_unique<InferenceModel>(arch, w, backend, io);
}

llm::ModelConfig bench_arch(const std::string& config_file) {
  return config_file.empty() ? llm::default_config({}).model.arch : llm::load_model_section(config_file);
}

// A model file or directory (a GGUF file computes on its own block formats), else random weights
// of the config's shape.
std::unique_ptr<llm::InferenceModel> bench_model(const std::string& config_file, const std::string& model_path,
                                                 llm::Backend& backend, llm::InferenceOptions io,
                                                 const std::string& dtype, const std::string& quant) {
  using namespace llm;
  if (model_path.empty()) return random_inference_model(bench_arch(config_file), backend, io, dtype, quant);
  io.dtype = parse_float_dtype(dtype, "--dtype");
  io.quant = parse_quant(quant, "--quant");
  return InferenceModel::load(model_path, backend, io);
}

int bench_decode(const std::string& config_file, const std::string& model_path, const std::string& dtype,
                 const std::string& quant, bool int8_acts, int64_t prompt, int64_t tokens, int threads,
                 const std::string& device, bool profile) {
  using namespace llm;
  auto backend = make_backend(device.empty() ? std::string("cpu") : device, threads);
  std::map<std::string, OpTime> times;
  if (profile) backend = make_profiling_backend(std::move(backend), &times);
  InferenceOptions io;
  io.context = prompt + tokens + 1;
  io.prefill_chunk = std::min<int64_t>(prompt, 512);
  io.int8_activations = int8_acts;
  double bw = 0;
  const int bw_threads = threads > 0 ? threads : omp_get_num_procs();
  if (backend->device() == DeviceKind::CPU) bw = read_bandwidth(*backend, bw_threads);
  std::unique_ptr<InferenceModel> model = bench_model(config_file, model_path, *backend, io, dtype, quant);
  const ModelConfig& arch = model->config();
  std::mt19937_64 g(7);
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(arch.vocab_size - 1));
  std::vector<int32_t> ids(static_cast<size_t>(prompt));
  for (auto& x : ids) x = id(g);
  model->forward(std::span(ids).first(std::min<size_t>(ids.size(), 16)));  // warm up
  model->reset();
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = model->forward(ids);
  backend->synchronize();
  const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> step;
  for (int64_t t = 0; t < tokens; ++t) {
    const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    const auto s0 = std::chrono::steady_clock::now();
    logits = model->forward(std::span(&next, 1));
    backend->synchronize();
    step.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count());
  }
  std::sort(step.begin(), step.end());
  const double decode_s = step[step.size() / 2];
  if (profile) print_profile(times, 1);
  // Again after decoding, keeping the higher: a busy neighbour must not flatter the ratio.
  if (backend->device() == DeviceKind::CPU) bw = std::max(bw, read_bandwidth(*backend, bw_threads));
  const double bytes = double(model->weight_bytes());
  nlohmann::json out = {{"dtype", dtype},
                        {"quant", quant},
                        {"int8_activations", int8_acts},
                        {"weight_bytes", bytes},
                        {"prefill_tokens", prompt},
                        {"prefill_tokens_per_s", double(prompt) / prefill_s},
                        {"decode_tokens_per_s", 1.0 / decode_s},
                        {"threads", threads},
                        {"device", backend->name()},
                        {"cpu", llm::cpu::cpu_environment()}};
  if (bw > 0) {
    out["read_gb_per_s"] = bw;
    out["floor_tokens_per_s"] = bw * 1e9 / bytes;
    out["fraction_of_floor"] = (1.0 / decode_s) / (bw * 1e9 / bytes);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

// Continuous batching (the server's engine, without HTTP): for each stream count S, S requests
// of `prompt` random tokens each asking for `tokens` tokens (ignore_eos) submitted at once to the
// scheduler of one model with max(S) slots; aggregate generated tokens/s over the wall time and
// the median time to first token. One JSON line per S.
int bench_serve(const std::string& config_file, const std::string& model_path, const std::string& tokenizer,
                const std::string& dtype, const std::string& quant, bool int8_acts, const std::vector<int64_t>& streams,
                int64_t prompt, int64_t tokens, int threads) {
  using namespace llm;
  const auto tok = load_tokenizer(tokenizer);
  auto backend = make_backend("cpu", threads);
  InferenceOptions io;
  io.context = prompt + tokens + 1;
  io.prefill_chunk = 256;
  io.slots = *std::max_element(streams.begin(), streams.end());
  io.int8_activations = int8_acts;
  const std::unique_ptr<InferenceModel> model = bench_model(config_file, model_path, *backend, io, dtype, quant);
  LLM_CHECK(tok->vocab_size() <= model->config().vocab_size, tokenizer, ": more ids than the model's vocabulary");
  serve::BatchScheduler scheduler(*model, *tok, 0);
  std::mt19937_64 g(7);
  std::uniform_int_distribution<int32_t> id(0, tok->vocab_size() - 1);
  SamplingParams greedy;
  greedy.temperature = 0;
  greedy.repeat_penalty = 1;
  GenerateOptions gen;
  gen.max_tokens = tokens;
  {  // warm up: workspaces, the OpenMP team
    auto job = std::make_shared<serve::GenJob>(std::vector<int32_t>(static_cast<size_t>(prompt), 1), greedy, gen, true);
    scheduler.submit(job);
    for (std::string t; !job->take(t, std::chrono::milliseconds(100));) t.clear();
  }
  for (const int64_t S : streams) {
    // A finished job's slot is freed by the scheduler's thread a moment after the job reports done.
    while (scheduler.stats().active > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::vector<std::shared_ptr<serve::GenJob>> jobs;
    for (int64_t i = 0; i < S; ++i) {
      std::vector<int32_t> p(static_cast<size_t>(prompt));
      for (auto& x : p) x = id(g);
      jobs.push_back(std::make_shared<serve::GenJob>(p, greedy, gen, true));
    }
    std::vector<double> ttft(static_cast<size_t>(S), 0.0);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& j : jobs) {
      LLM_CHECK(scheduler.submit(j) == serve::BatchScheduler::Submit::Accepted, "serve bench: a request was refused");
    }
    std::vector<std::thread> waiters;
    for (int64_t i = 0; i < S; ++i) {
      waiters.emplace_back([&, i] {
        auto& j = *jobs[static_cast<size_t>(i)];
        std::string text;
        bool done = false;
        while (!done) {
          done = j.take(text, std::chrono::milliseconds(1));
          if (ttft[static_cast<size_t>(i)] == 0.0 && j.completion_tokens() > 0) {
            ttft[static_cast<size_t>(i)] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          }
        }
      });
    }
    for (auto& w : waiters) w.join();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t generated = 0;
    for (auto& j : jobs) generated += j->completion_tokens();
    std::sort(ttft.begin(), ttft.end());
    const nlohmann::json out = {{"dtype", dtype},
                                {"quant", quant},
                                {"int8_activations", int8_acts},
                                {"int8_activations", int8_acts},
                                {"model", model_path},
                                {"streams", S},
                                {"prompt_tokens", prompt},
                                {"generated", generated},
                                {"seconds", wall},
                                {"tokens_per_s", double(generated) / wall},
                                {"ttft_median_s", ttft[ttft.size() / 2]},
                                {"threads", threads},
                                {"device", backend->name()},
                                {"cpu", llm::cpu::cpu_environment()}};
    std::cout << out.dump() << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"llmbench: engine throughput, one JSON line per measurement"};
  app.require_subcommand(1);
  auto* train = app.add_subcommand("train", "forward + backward tokens/s on random tokens");
  std::string config, device;
  std::vector<std::string> sets;
  int64_t batch = 4, seq = 256;
  int steps = 5, warmup = 1, threads = 0;
  bool profile = false;
  train->add_option("--config", config, "config file (default: the built-in tiny config)");
  train->add_option("--set", sets, "override section.key=value");
  train->add_option("--batch", batch, "sequences per step")->check(CLI::PositiveNumber);
  train->add_option("--seq", seq, "tokens per sequence")->check(CLI::PositiveNumber);
  train->add_option("--steps", steps, "timed steps")->check(CLI::PositiveNumber);
  train->add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  train->add_option("--threads", threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
  train->add_option("--device", device, "auto | cpu | cuda[:N] (default: the config's)");
  train->add_flag("--profile", profile, "print the time of every op (synchronising after each)");
  auto* decode =
      app.add_subcommand("decode", "prefill and decode tokens/s with a KV cache, beside the bandwidth floor");
  std::string dec_config, dec_model, dec_dtype = "fp32", dec_quant = "none", dec_device;
  int64_t prompt = 512, gen_tokens = 32;
  int dec_threads = 0;
  decode->add_option("--config", dec_config, "config file (its model section; default: the built-in tiny config)");
  decode->add_option("--model", dec_model, "a model directory or GGUF file instead of random weights")
      ->excludes(decode->get_option("--config"));
  decode->add_option("--dtype", dec_dtype, "fp32 | bf16 | f16");
  decode->add_option("--quant", dec_quant, "none | int8 | int4");
  bool dec_int8_acts = false;
  decode->add_flag("--int8-activations", dec_int8_acts,
                   "int8/int4: prompts on int8-quantized activations (integer dot products)");
  decode->add_option("--prompt-tokens", prompt, "prefill length")->check(CLI::PositiveNumber);
  decode->add_option("--tokens", gen_tokens, "decode steps")->check(CLI::PositiveNumber);
  decode->add_option("--threads", dec_threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
  decode->add_option("--device", dec_device, "auto | cpu | cuda[:N] (default: cpu)");
  bool dec_profile = false;
  decode->add_flag("--profile", dec_profile, "print the time of every op over the whole run");
  auto* serve =
      app.add_subcommand("serve", "continuous batching: aggregate tokens/s and time to first token for N streams");
  std::string srv_config, srv_model, srv_tok, srv_dtype = "bf16", srv_quant = "none";
  std::vector<int64_t> streams = {1, 4, 8, 16};
  int64_t srv_prompt = 32, srv_tokens = 64;
  int srv_threads = 0;
  serve->add_option("--config", srv_config, "config file (its model section; default: the built-in tiny config)");
  serve->add_option("--model", srv_model, "a model directory or GGUF file instead of random weights")
      ->check(CLI::ExistingPath);
  serve->add_option("--tokenizer", srv_tok, "tokenizer.json or a sentencepiece .model")->required();
  serve->add_option("--dtype", srv_dtype, "fp32 | bf16 | f16");
  serve->add_option("--quant", srv_quant, "none | int8 | int4");
  bool srv_int8_acts = false;
  serve->add_flag("--int8-activations", srv_int8_acts,
                  "int8/int4: prompts and batched decode on int8-quantized activations (integer dot products)");
  serve->add_option("--streams", streams, "concurrent requests, one measurement each")->check(CLI::PositiveNumber);
  serve->add_option("--prompt-tokens", srv_prompt, "prompt length")->check(CLI::PositiveNumber);
  serve->add_option("--tokens", srv_tokens, "tokens generated per request")->check(CLI::PositiveNumber);
  serve->add_option("--threads", srv_threads, "CPU threads (0: all cores)")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  try {
    if (serve->parsed()) {
      return bench_serve(srv_config, srv_model, srv_tok, srv_dtype, srv_quant, srv_int8_acts, streams, srv_prompt,
                         srv_tokens, srv_threads);
    }
    if (train->parsed()) return bench_train(config, sets, batch, seq, steps, warmup, threads, device, profile);
    if (decode->parsed()) {
      return bench_decode(dec_config, dec_model, dec_dtype, dec_quant, dec_int8_acts, prompt, gen_tokens, dec_threads,
                          dec_device, dec_profile);
    }
  } catch (const std::exception& e) {
    std::cerr << "llmbench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
