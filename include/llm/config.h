// The run configuration: one JSON file with sections model, tokenizer, data, train, optim, dist,
// io; `--set section.key=value` overrides. Everything is validated into typed structs here:
// unknown keys, wrong types and impossible values are errors naming the key.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "llm/backend.h"
#include "llm/data_config.h"
#include "llm/dtype.h"
#include "llm/model.h"

namespace llm {

struct ModelSection {
  ModelConfig arch;
  // An HF Qwen2 directory or one of our run/checkpoint directories to start from (continued
  // pretraining). Its config.json decides the architecture; keys given beside it must agree.
  std::optional<std::filesystem::path> init_from;
};

enum class Precision : uint8_t { FP32, BF16, FP16, Auto };

struct TrainSection {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  int threads = 0;              // CPU threads (0: all cores)
  int64_t seq_len = 256;
  int64_t micro_batch = 8;  // sequences per forward/backward
  int64_t grad_accum = 1;   // micro-batches per optimizer step (per rank)
  int64_t steps = 1000;     // optimizer steps in all
  Precision precision =
      Precision::Auto;  // auto: fp32 on the CPU, bf16 on GPUs of compute capability >= 8.0, fp16 on older ones
  Recompute recompute = Recompute::None;
  uint64_t seed = 1234;
  int64_t ce_chunk_tokens = 0;  // tokens per fused output-layer chunk (0: backend default)
  int64_t log_every = 1;
  int64_t eval_every = 100;  // 0: only at the end
  int64_t eval_batches = 0;  // validation micro-batches per eval (0: the whole validation set)
  // fp16 dynamic loss scaling
  double loss_scale_init = 65536.0;
  int64_t loss_scale_growth_interval = 1000;  // clean steps before the scale doubles
  double loss_scale_backoff = 0.5;
  int64_t max_skipped_steps = 20;  // consecutive non-finite steps before training stops
  // train.lora (absent: full fine-tuning): adapters trained, the base weights frozen. Defaults
  // are PEFT's: rank 8, alpha 8, dropout 0, target_modules q_proj and v_proj.
  LoraConfig lora;
};

enum class LrSchedule : uint8_t { Cosine, Wsd, Constant };

struct OptimSection {
  double lr = 3e-4;
  double min_lr_ratio = 0.1;  // final LR as a fraction of lr (cosine, wsd)
  int64_t warmup_steps = 100;
  LrSchedule schedule = LrSchedule::Cosine;
  double wsd_decay_fraction = 0.2;  // wsd: share of the steps spent decaying at the end
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_norms_and_biases = false;
  double grad_clip = 1.0;  // global norm; 0 disables
};

struct DistSection {
  int zero = 0;            // 0 (plain data parallel), 1 or 2
  double timeout_s = 600;  // a collective that takes longer names the missing rank and stops
  double bucket_mb = 25;   // gradient all-reduce bucket size
};

struct IoSection {
  std::filesystem::path run_dir;  // checkpoints, metrics.jsonl, loss.svg
  int64_t save_every = 0;         // steps between checkpoints (0: only at the end)
  double save_every_minutes = 0;  // also a checkpoint once this much time passed since the last (0: off)
  // A checkpoint that cannot be written (full disk, I/O error): stop the run (exit status 74) or
  // keep training and try again at the next save.
  bool retry_failed_save = false;  // io.on_save_error: "stop" (default) | "retry"
  int64_t keep_last = 3;
  bool resume = false;        // continue from run_dir's newest complete checkpoint
  std::string sample_prompt;  // generated from after training (empty: none)
  int64_t sample_tokens = 64;
};

struct Config {
  std::filesystem::path file;  // where it was read from ("<embedded tiny>" for the default)
  ModelSection model;
  TokenizerConfig tokenizer;
  DataConfig data;
  TrainSection train;
  OptimSection optim;
  DistSection dist;
  IoSection io;
  nlohmann::json effective;        // the merged JSON (with overrides), saved in checkpoints
  std::vector<std::string> notes;  // one per DeepSpeed field translated or ignored (deepspeed_config.h)
};

// Parses config JSON text; base_dir resolves relative paths; overrides are "section.key=value"
// (value parsed as JSON when it parses, else taken as a string). `name` is used in messages.
Config parse_config(const std::string& text, const std::string& name, const std::filesystem::path& base_dir,
                    const std::vector<std::string>& overrides = {});
Config load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});
// Only the "model" section of a config file (other sections unchecked): for tools that need
// just the architecture, such as llmbench.
ModelConfig load_model_section(const std::filesystem::path& file);

// The built-in default: configs/tiny.json compiled into the library (train the demo model).
Config default_config(const std::vector<std::string>& overrides = {});
std::string_view embedded_tiny_config();

// Resolves precision auto against the backend: Backend::auto_compute_dtype, fp32 on the CPU, bf16
// on GPUs of compute capability >= 8.0 (sm_80+), fp16 on older ones. Never fp32 on a GPU.
DType resolve_precision(Precision p, const Backend& backend);
std::string_view precision_name(Precision p);

}  // namespace llm
