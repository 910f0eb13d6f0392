// DeepSpeed config fields translated into our sections (include/llm/deepspeed_config.h). Each
// field either becomes one of our keys, is ignored with a note saying why (it has no effect on
// how training computes here, e.g. logging to TensorBoard), or is an error because ignoring it
// would silently train something else than the user asked for (ZeRO-3, Lamb, linear decay).
#include "llm/deepspeed_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>

#include "llm/error.h"

namespace llm {

namespace {

using nlohmann::json;

// HF Trainer's DeepSpeed integration writes "auto" for values it fills in itself.
bool is_auto(const json& v) { return v.is_string() && v.get<std::string>() == "auto"; }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

class Translator {
 public:
  explicit Translator(json& root) : root_(root) {}

  // Sets section.key (ours) from a DeepSpeed field, refusing to overwrite a different value
  // that the same file gives for our key.
  // `given` is the field's own value when the translation changes it (a power of two, elements).
  void set(const std::string& field, const json& value, const std::string& section, const std::string& key,
           const json& given = json()) {
    json& sec = root_[section];
    if (sec.is_null()) sec = json::object();
    LLM_CHECK(sec.is_object(), field, ": cannot translate: ", section, " is not a section");
    const std::string ours = section + "." + key;
    if (sec.contains(key) && sec[key] != value) {
      const auto by = set_by_.find(ours);
      fail(field, " = ", value.dump(), " disagrees with ", by != set_by_.end() ? by->second : ours, " = ",
           sec[key].dump(), " in the same file; keep one of them");
    }
    sec[key] = value;
    set_by_.emplace(ours, field);
    notes_.push_back(field + " = " + (given.is_null() ? value : given).dump() + " -> " + ours +
                     (given.is_null() ? "" : " = " + value.dump()));
  }
  void ignore(const std::string& field, const std::string& why) { notes_.push_back(field + ": ignored, " + why); }

  double number(const std::string& field, const json& v) {
    LLM_CHECK(v.is_number() && std::isfinite(v.get<double>()), field, ": expected a number, got ", v.dump());
    return v.get<double>();
  }
  int64_t integer(const std::string& field, const json& v) {
    const double d = number(field, v);
    LLM_CHECK(d == std::floor(d), field, ": expected an integer, got ", v.dump());
    return int64_t(d);
  }
  bool boolean(const std::string& field, const json& v) {
    LLM_CHECK(v.is_boolean(), field, ": expected true or false, got ", v.dump());
    return v.get<bool>();
  }
  const json& object(const std::string& field, const json& v) {
    LLM_CHECK(v.is_object(), field, ": expected an object, got ", v.dump());
    return v;
  }

  void precision(const std::string& field, const json& section, const std::string& name) {
    for (const auto& [k, v] : object(field, section).items()) {
      const std::string f = field + "." + k;
      if (is_auto(v)) {
        ignore(f, "\"auto\" leaves it to train.precision (auto: bf16 on GPUs that have it, else fp16)");
      } else if (k == "enabled") {
        if (boolean(f, v)) {
          set(f, name, "train", "precision", v);
        } else {
          ignore(f, "disabled");
        }
      } else if (name == "fp16" && k == "initial_scale_power") {
        set(f, std::ldexp(1.0, int(integer(f, v))), "train", "loss_scale_init", v);
      } else if (name == "fp16" && k == "loss_scale") {
        if (number(f, v) == 0) {
          ignore(f, "0 means dynamic loss scaling, which fp16 always uses here");
        } else {
          set(f, number(f, v), "train", "loss_scale_init");
          notes_.back() += " (the scale stays dynamic here: it backs off on overflow)";
        }
      } else if (name == "fp16" && k == "loss_scale_window") {
        set(f, integer(f, v), "train", "loss_scale_growth_interval");
      } else if (name == "fp16" && (k == "hysteresis" || k == "consecutive_hysteresis" || k == "min_loss_scale")) {
        ignore(f, "every overflow halves the scale here; train.max_skipped_steps stops a run that keeps overflowing");
      } else if (k == "auto_cast" || k == "fp16_master_weights_and_grads" || k == "immediate_grad_update") {
        ignore(f, "master weights, gradients and optimizer state are always fp32 here");
      } else {
        fail(f, ": not a DeepSpeed ", name, " field this translation knows");
      }
    }
  }

  void zero(const std::string& field, const json& section) {
    for (const auto& [k, v] : object(field, section).items()) {
      const std::string f = field + "." + k;
      if (is_auto(v)) {
        ignore(f, "\"auto\" leaves it to the dist section");
      } else if (k == "stage") {
        const int64_t stage = integer(f, v);
        LLM_CHECK(stage >= 0 && stage <= 2, f, " = ", stage,
                  ": ZeRO-3 (parameter sharding) is not implemented; stages 0, 1 and 2 are (dist.zero)");
        set(f, stage, "dist", "zero");
      } else if (k == "reduce_bucket_size") {
        // DeepSpeed counts elements; ours is megabytes of fp32 gradients.
        set(f, number(f, v) * 4.0 / (1024.0 * 1024.0), "dist", "bucket_mb", v);
        notes_.back() += " (elements x 4 bytes, in MiB)";
      } else if (k == "offload_optimizer" || k == "offload_param") {
        ignore(f, "there is no CPU or NVMe offload here; llmtrain --dry-run shows the memory per rank");
      } else {
        ignore(f, "a communication or buffer setting with no equivalent here (dist.bucket_mb sizes the buckets)");
      }
    }
  }

  void optimizer(const std::string& field, const json& section) {
    const json& o = object(field, section);
    const std::string type = o.contains("type") && o["type"].is_string() ? lower(o["type"].get<std::string>()) : "";
    LLM_CHECK(type == "adam" || type == "adamw", field, ".type = ", o.value("type", json()).dump(),
              ": only Adam/AdamW is implemented (decoupled weight decay, optim section)");
    notes_.push_back(field + ".type = " + o["type"].dump() + " -> AdamW");
    for (const auto& [k, v] : o.items()) {
      const std::string f = field + "." + k;
      if (k == "type") continue;
      if (k != "params") fail(f, ": not a DeepSpeed optimizer field this translation knows");
      for (const auto& [p, pv] : object(f, v).items()) {
        const std::string g = f + "." + p;
        if (is_auto(pv)) {
          ignore(g, "\"auto\" leaves it to the optim section");
        } else if (p == "lr") {
          set(g, number(g, pv), "optim", "lr");
        } else if (p == "betas") {
          LLM_CHECK(pv.is_array() && pv.size() == 2, g, ": expected [beta1, beta2], got ", pv.dump());
          set(g + "[0]", number(g, pv[0]), "optim", "beta1");
          set(g + "[1]", number(g, pv[1]), "optim", "beta2");
        } else if (p == "eps") {
          set(g, number(g, pv), "optim", "eps");
        } else if (p == "weight_decay") {
          set(g, number(g, pv), "optim", "weight_decay");
        } else if (p == "adam_w_mode") {
          LLM_CHECK(boolean(g, pv), g, " = false (Adam with L2 regularisation) is not implemented: ours is AdamW");
          ignore(g, "AdamW is what runs here");
        } else if (p == "torch_adam" || p == "bias_correction" || p == "amsgrad") {
          LLM_CHECK(!(p == "amsgrad" && boolean(g, pv)), g, " = true: AMSGrad is not implemented");
          LLM_CHECK(!(p == "bias_correction" && !boolean(g, pv)), g, " = false: AdamW here always corrects the bias");
          ignore(g, "an implementation choice with no effect on the update here");
        } else {
          fail(g, ": not a DeepSpeed optimizer parameter this translation knows");
        }
      }
    }
  }

  void scheduler(const std::string& field, const json& section) {
    const json& s = object(field, section);
    const std::string type = s.contains("type") && s["type"].is_string() ? s["type"].get<std::string>() : "";
    if (type == "WarmupLR") {
      set(field + ".type", "constant", "optim", "schedule", s["type"]);
    } else if (type == "WarmupCosineLR") {
      set(field + ".type", "cosine", "optim", "schedule", s["type"]);
    } else {
      fail(field, ".type = ", s.value("type", json()).dump(),
           ": only WarmupLR (optim.schedule constant) and WarmupCosineLR (cosine) have an equivalent; linear decay "
           "(WarmupDecayLR) does not: use optim.schedule cosine or wsd");
    }
    for (const auto& [k, v] : s.items()) {
      const std::string f = field + "." + k;
      if (k == "type") continue;
      if (k != "params") fail(f, ": not a DeepSpeed scheduler field this translation knows");
      for (const auto& [p, pv] : object(f, v).items()) {
        const std::string g = f + "." + p;
        if (is_auto(pv)) {
          ignore(g, "\"auto\" leaves it to our config");
        } else if (p == "warmup_num_steps") {
          set(g, integer(g, pv), "optim", "warmup_steps");
        } else if (p == "warmup_max_lr") {
          set(g, number(g, pv), "optim", "lr");
        } else if (p == "total_num_steps") {
          set(g, integer(g, pv), "train", "steps");
        } else if (p == "cos_min_ratio") {
          set(g, number(g, pv), "optim", "min_lr_ratio");
        } else if (p == "warmup_min_lr" || p == "warmup_min_ratio") {
          LLM_CHECK(number(g, pv) == 0, g, " = ", pv.dump(), ": warmup here starts from 0 (linearly to optim.lr)");
          ignore(g, "0, as here");
        } else if (p == "warmup_type") {
          LLM_CHECK(pv == "linear", g, " = ", pv.dump(), ": warmup here is linear");
          ignore(g, "linear, as here");
        } else if (p == "last_batch_iteration") {
          ignore(g, "--resume restores the schedule's position from the checkpoint");
        } else {
          fail(g, ": not a DeepSpeed scheduler parameter this translation knows");
        }
      }
    }
  }

  std::vector<std::string> run() {
    // Fields that change nothing about what is computed here (monitoring, profiling, communication
    // details of DeepSpeed's own engine).
    static const std::set<std::string> no_effect = {"wall_clock_breakdown",
                                                    "dump_state",
                                                    "prescale_gradients",
                                                    "gradient_predivide_factor",
                                                    "sparse_gradients",
                                                    "flops_profiler",
                                                    "tensorboard",
                                                    "wandb",
                                                    "csv_monitor",
                                                    "comet",
                                                    "comms_logger",
                                                    "memory_breakdown",
                                                    "zero_allow_untested_optimizer",
                                                    "zero_force_ds_cpu_optimizer",
                                                    "communication_data_type",
                                                    "steps_per_print_enabled"};
    std::vector<std::string> fields;
    for (const auto& [k, v] : root_.items()) fields.push_back(k);
    for (const auto& k : fields) {
      const json v = root_[k];
      bool handled = true;
      if (is_auto(v)) {
        ignore(k, "\"auto\" leaves it to our config");
      } else if (k == "fp16" || k == "bf16" || k == "bfloat16") {
        precision(k, v, k == "fp16" ? "fp16" : "bf16");
      } else if (k == "zero_optimization") {
        zero(k, v);
      } else if (k == "optimizer") {
        optimizer(k, v);
      } else if (k == "scheduler") {
        scheduler(k, v);
      } else if (k == "gradient_accumulation_steps") {
        set(k, integer(k, v), "train", "grad_accum");
      } else if (k == "train_micro_batch_size_per_gpu") {
        set(k, integer(k, v), "train", "micro_batch");
      } else if (k == "gradient_clipping") {
        set(k, number(k, v), "optim", "grad_clip");
      } else if (k == "steps_per_print") {
        set(k, integer(k, v), "train", "log_every");
      } else if (k == "train_batch_size") {
        ignore(k, "derived here: ranks x train.micro_batch x train.grad_accum");
      } else if (k == "activation_checkpointing") {
        ignore(k,
               "DeepSpeed's model-side settings; set train.recompute (full or selective) for gradient checkpointing");
      } else if (no_effect.count(k)) {
        ignore(k, "no effect on training here (metrics.jsonl and the progress line are the logs)");
      } else {
        handled = false;
      }
      if (handled) root_.erase(k);
    }
    return notes_;
  }

 private:
  json& root_;
  std::map<std::string, std::string> set_by_;  // our key -> the DeepSpeed field that set it
  std::vector<std::string> notes_;
};

}  // namespace

std::vector<std::string> translate_deepspeed_fields(nlohmann::json& root) {
  if (!root.is_object()) return {};
  return Translator(root).run();
}

}  // namespace llm
