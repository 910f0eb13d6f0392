// llmbench: throughput measurements of the engine itself, printed as one JSON line per run so
// bench/ scripts can set them beside a baseline measured in the same run.
//   llmbench train --config FILE --batch B --seq T --steps S [--warmup W] [--threads N]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <iostream>
#include <random>

#include "llm/backend.h"
#include "llm/config.h"
#include "llm/error.h"
#include "llm/model.h"
#include "llm/profiling_backend.h"
#include "llm/trainer.h"

namespace {

int bench_train(const std::string& config_file, const std::vector<std::string>& sets, int64_t B, int64_t T,
                int steps, int warmup, int threads, const std::string& device, bool profile) {
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
    loss = model.forward(TokenBatch{B, T, ids, targets}, true, 1.0f / float(B * T)).mean();
    model.backward();
    backend->synchronize();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s >= warmup) step_times.push_back(dt);
    if (s + 1 == warmup) times.clear();
  }
  std::sort(step_times.begin(), step_times.end());
  const double median = step_times[step_times.size() / 2];
  if (profile) {
    double total = 0;
    for (const auto& [op, t] : times) total += t.seconds;
    std::vector<std::pair<double, std::string>> rows;
    for (const auto& [op, t] : times) rows.push_back({t.seconds, op});
    std::sort(rows.rbegin(), rows.rend());
    std::fprintf(stderr, "%-22s %10s %8s %8s\n", "op", "ms/step", "share", "calls");
    for (const auto& [sec, op] : rows) {
      std::fprintf(stderr, "%-22s %10.2f %7.1f%% %8lld\n", op.c_str(), 1e3 * sec / steps, 100 * sec / total,
                   static_cast<long long>(times[op].calls / steps));
    }
  }
  std::cout << nlohmann::json{{"tokens_per_s", double(B * T) / median},
                              {"gflops", train_flops_per_token(arch, T) * double(B * T) / median / 1e9},
                              {"step_s_median", median},
                              {"params", model.params().count()},
                              {"threads", threads},
                              {"batch", B},
                              {"seq", T},
                              {"steps", steps},
                              {"device", backend->name()},
                              {"dtype", dtype_name(o.compute_dtype)},
                              {"final_loss", loss}}
                   .dump()
            << "\n";
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
  CLI11_PARSE(app, argc, argv);
  try {
    if (train->parsed()) return bench_train(config, sets, batch, seq, steps, warmup, threads, device, profile);
  } catch (const std::exception& e) {
    std::cerr << "llmbench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
