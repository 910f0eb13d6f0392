// Config: parsing and validating the run configuration (include/llm/config.h).
#include "llm/config.h"
#include "llm/config_reader.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "llm/checkpoint.h"
#include "llm/deepspeed_config.h"
#include "llm/error.h"

namespace llm {

namespace {

void apply_override(nlohmann::json& root, const std::string& spec) {
  const auto eq = spec.find('=');
  LLM_CHECK(eq != std::string::npos && eq > 0, "--set ", spec, ": expected section.key=value");
  const std::string key = spec.substr(0, eq), text = spec.substr(eq + 1);
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error&) {
    value = text;  // a bare word: a string
  }
  nlohmann::json* node = &root;
  std::string path;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    LLM_CHECK(!part.empty(), "--set ", spec, ": empty key in \"", key, "\"");
    path += (path.empty() ? "" : ".") + part;
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    nlohmann::json& next = (*node)[part];
    if (next.is_null()) next = nlohmann::json::object();
    LLM_CHECK(next.is_object(), "--set ", spec, ": ", path, " is not a section");
    node = &next;
    start = dot + 1;
  }
}

ModelSection parse_model_section(ConfigReader r, const std::filesystem::path& base) {
  ModelSection m;
  if (auto from = r.get_optional<std::string>("init_from")) {
    m.init_from = resolve_path(base, *from);
    // One of our run directories stands for its newest checkpoint.
    if (!std::filesystem::exists(*m.init_from / "config.json")) {
      if (auto ck = latest_checkpoint(*m.init_from)) m.init_from = *ck;
    }
    const std::filesystem::path cfg = *m.init_from / "config.json";
    LLM_CHECK(std::filesystem::exists(cfg), r.key_path("init_from"), ": ", cfg.string(),
              " does not exist (expected an HF model directory, a checkpoint or a run directory holding one)");
    m.arch = read_hf_config(cfg);
    // Architecture keys given beside init_from must agree with the checkpoint's.
    const nlohmann::json have = m.arch.to_hf_json();
    for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                          "num_key_value_heads", "rope_theta"}) {
      if (!r.has(k)) continue;
      const auto mine = r.get<double>(k, 0.0);
      LLM_CHECK(mine == have[k].get<double>(), r.key_path(k), ": ", mine, " disagrees with ", cfg.string(), " (",
                have[k].dump(), ")");
    }
    if (r.has("tie_word_embeddings")) {
      LLM_CHECK(r.get<bool>("tie_word_embeddings", false) == m.arch.tie_word_embeddings,
                r.key_path("tie_word_embeddings"), ": disagrees with ", cfg.string());
    }
    r.ignore({"max_position_embeddings", "rms_norm_eps", "initializer_range", "bos_token_id", "eos_token_id",
              "architectures", "model_type", "hidden_act", "torch_dtype", "use_cache", "attention_dropout",
              "use_sliding_window", "sliding_window", "max_window_layers", "transformers_version"});
    r.finish();
    return m;
  }
  m.arch = parse_model_config(r);
  return m;
}

TrainSection parse_train(ConfigReader r) {
  TrainSection t;
  t.device = r.get<std::string>("device", t.device);
  t.threads = r.get<int>("threads", t.threads);
  t.seq_len = r.get<int64_t>("seq_len", t.seq_len);
  t.micro_batch = r.get<int64_t>("micro_batch", t.micro_batch);
  t.grad_accum = r.get<int64_t>("grad_accum", t.grad_accum);
  t.steps = r.get<int64_t>("steps", t.steps);
  const std::string prec = r.get_choice("precision", "auto", {"auto", "fp32", "bf16", "fp16"});
  t.precision = prec == "fp32"   ? Precision::FP32
                : prec == "bf16" ? Precision::BF16
                : prec == "fp16" ? Precision::FP16
                                 : Precision::Auto;
  t.recompute = parse_recompute(r.get_choice("recompute", "none", {"none", "selective", "full"}), "train.recompute");
  t.seed = static_cast<uint64_t>(r.get<int64_t>("seed", static_cast<int64_t>(t.seed)));
  t.ce_chunk_tokens = r.get<int64_t>("ce_chunk_tokens", t.ce_chunk_tokens);
  t.log_every = r.get<int64_t>("log_every", t.log_every);
  t.eval_every = r.get<int64_t>("eval_every", t.eval_every);
  t.eval_batches = r.get<int64_t>("eval_batches", t.eval_batches);
  t.loss_scale_init = r.get<double>("loss_scale_init", t.loss_scale_init);
  t.loss_scale_growth_interval = r.get<int64_t>("loss_scale_growth_interval", t.loss_scale_growth_interval);
  t.loss_scale_backoff = r.get<double>("loss_scale_backoff", t.loss_scale_backoff);
  t.max_skipped_steps = r.get<int64_t>("max_skipped_steps", t.max_skipped_steps);
  const bool lora = r.has("lora");
  ConfigReader lr = r.section("lora");  // a known key of train even when absent (listed in errors)
  if (lora) {
    t.lora.rank = lr.get<int64_t>("rank", 8);
    t.lora.alpha = lr.get<double>("alpha", 8.0);
    t.lora.dropout = lr.get<double>("dropout", 0.0);
    t.lora.target_modules = lr.get<std::vector<std::string>>("target_modules", {"q_proj", "v_proj"});
    lr.finish();
    validate_lora_config(t.lora, "train.lora");
  }
  r.finish();
  auto positive = [&](int64_t v, const char* k) { LLM_CHECK(v > 0, "train.", k, ": must be positive, got ", v); };
  positive(t.seq_len, "seq_len");
  positive(t.micro_batch, "micro_batch");
  positive(t.grad_accum, "grad_accum");
  positive(t.steps, "steps");
  positive(t.log_every, "log_every");
  LLM_CHECK(t.threads >= 0, "train.threads: must be >= 0, got ", t.threads);
  LLM_CHECK(t.eval_every >= 0 && t.eval_batches >= 0 && t.ce_chunk_tokens >= 0,
            "train: eval_every, eval_batches and ce_chunk_tokens must be >= 0");
  LLM_CHECK(t.loss_scale_init >= 1, "train.loss_scale_init: must be >= 1, got ", t.loss_scale_init);
  LLM_CHECK(t.loss_scale_backoff > 0 && t.loss_scale_backoff < 1, "train.loss_scale_backoff: must be in (0, 1), got ",
            t.loss_scale_backoff);
  positive(t.loss_scale_growth_interval, "loss_scale_growth_interval");
  positive(t.max_skipped_steps, "max_skipped_steps");
  return t;
}

OptimSection parse_optim(ConfigReader r) {
  OptimSection o;
  o.lr = r.get<double>("lr", o.lr);
  o.min_lr_ratio = r.get<double>("min_lr_ratio", o.min_lr_ratio);
  o.warmup_steps = r.get<int64_t>("warmup_steps", o.warmup_steps);
  const std::string s = r.get_choice("schedule", "cosine", {"cosine", "wsd", "constant"});
  o.schedule = s == "cosine" ? LrSchedule::Cosine : s == "wsd" ? LrSchedule::Wsd : LrSchedule::Constant;
  o.wsd_decay_fraction = r.get<double>("wsd_decay_fraction", o.wsd_decay_fraction);
  o.beta1 = r.get<double>("beta1", o.beta1);
  o.beta2 = r.get<double>("beta2", o.beta2);
  o.eps = r.get<double>("eps", o.eps);
  o.weight_decay = r.get<double>("weight_decay", o.weight_decay);
  o.decay_norms_and_biases = r.get<bool>("decay_norms_and_biases", o.decay_norms_and_biases);
  o.grad_clip = r.get<double>("grad_clip", o.grad_clip);
  r.finish();
  LLM_CHECK(o.lr > 0, "optim.lr: must be positive, got ", o.lr);
  LLM_CHECK(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1, "optim.min_lr_ratio: must be in [0, 1], got ", o.min_lr_ratio);
  LLM_CHECK(o.warmup_steps >= 0, "optim.warmup_steps: must be >= 0, got ", o.warmup_steps);
  LLM_CHECK(o.wsd_decay_fraction > 0 && o.wsd_decay_fraction <= 1, "optim.wsd_decay_fraction: must be in (0, 1], got ",
            o.wsd_decay_fraction);
  LLM_CHECK(o.beta1 >= 0 && o.beta1 < 1, "optim.beta1: must be in [0, 1), got ", o.beta1);
  LLM_CHECK(o.beta2 >= 0 && o.beta2 < 1, "optim.beta2: must be in [0, 1), got ", o.beta2);
  LLM_CHECK(o.eps > 0, "optim.eps: must be positive, got ", o.eps);
  LLM_CHECK(o.weight_decay >= 0, "optim.weight_decay: must be >= 0, got ", o.weight_decay);
  LLM_CHECK(o.grad_clip >= 0, "optim.grad_clip: must be >= 0, got ", o.grad_clip);
  return o;
}

DistSection parse_dist(ConfigReader r) {
  DistSection d;
  d.zero = r.get<int>("zero", d.zero);
  d.timeout_s = r.get<double>("timeout_s", d.timeout_s);
  d.bucket_mb = r.get<double>("bucket_mb", d.bucket_mb);
  r.finish();
  LLM_CHECK(d.zero >= 0 && d.zero <= 2, "dist.zero: must be 0, 1 or 2, got ", d.zero);
  LLM_CHECK(d.timeout_s > 0, "dist.timeout_s: must be positive, got ", d.timeout_s);
  LLM_CHECK(d.bucket_mb > 0, "dist.bucket_mb: must be positive, got ", d.bucket_mb);
  return d;
}

IoSection parse_io(ConfigReader r, const std::filesystem::path& base, const std::string& default_name) {
  IoSection io;
  io.run_dir = resolve_path(base, r.get<std::string>("run_dir", "runs/" + default_name));
  io.save_every = r.get<int64_t>("save_every", io.save_every);
  io.keep_last = r.get<int64_t>("keep_last", io.keep_last);
  io.save_every_minutes = r.get<double>("save_every_minutes", io.save_every_minutes);
  io.retry_failed_save = r.get_choice("on_save_error", "stop", {"stop", "retry"}) == "retry";
  io.resume = r.get<bool>("resume", io.resume);
  io.sample_prompt = r.get<std::string>("sample_prompt", io.sample_prompt);
  io.sample_tokens = r.get<int64_t>("sample_tokens", io.sample_tokens);
  r.finish();
  LLM_CHECK(io.save_every >= 0, "io.save_every: must be >= 0, got ", io.save_every);
  LLM_CHECK(io.save_every_minutes >= 0 && std::isfinite(io.save_every_minutes),
            "io.save_every_minutes: must be >= 0, got ", io.save_every_minutes);
  LLM_CHECK(io.keep_last >= 1, "io.keep_last: must be >= 1, got ", io.keep_last);
  LLM_CHECK(io.sample_tokens >= 0, "io.sample_tokens: must be >= 0, got ", io.sample_tokens);
  return io;
}

}  // namespace

Config parse_config(const std::string& text, const std::string& name, const std::filesystem::path& base_dir,
                    const std::vector<std::string>& overrides) {
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail(name, ": not valid JSON at byte ", e.byte, ": ", e.what());
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond 64 bits or double (error 406)
    fail(name, ": ", e.what());
  }
  LLM_CHECK(root.is_object(), name,
            ": expected a JSON object with sections model, tokenizer, data, train, optim, dist, io");
  Config c;
  try {
    c.notes = translate_deepspeed_fields(root);  // before the overrides: --set has the last word
  } catch (const Error& e) {
    fail(name, ": ", e.what());
  }
  for (const auto& o : overrides) apply_override(root, o);
  c.file = name;
  c.effective = root;
  try {
    ConfigReader top(root, "");
    c.model = parse_model_section(top.section("model"), base_dir);
    ConfigReader tok = top.section("tokenizer");
    c.tokenizer = parse_tokenizer_config(tok, base_dir);
    const nlohmann::json data = root.contains("data") ? root["data"] : nlohmann::json::object();
    top.ignore({"data"});
    c.data = parse_data_config(data, base_dir, "data");
    c.train = parse_train(top.section("train"));
    c.optim = parse_optim(top.section("optim"));
    c.dist = parse_dist(top.section("dist"));
    std::string stem = std::filesystem::path(name).stem().string();
    if (stem.empty() || stem.front() == '<') stem = "tiny";
    c.io = parse_io(top.section("io"), base_dir, stem);
    top.ignore({"comment", "description"});
    top.finish();
    LLM_CHECK(c.train.seq_len <= c.model.arch.max_position_embeddings, "train.seq_len: ", c.train.seq_len,
              " exceeds model.max_position_embeddings (", c.model.arch.max_position_embeddings, ")");
  } catch (const Error& e) {
    fail(name, ": ", e.what());
  }
  return c;
}

Config load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  std::ifstream in(file);
  LLM_CHECK(in.good(), file.string(), ": cannot open the config file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), file.string(), std::filesystem::current_path(), overrides);
}

ModelConfig load_model_section(const std::filesystem::path& file) {
  const nlohmann::json j = read_json_file(file, "the config file");
  LLM_CHECK(j.is_object() && j.contains("model"), file.string(), ": no \"model\" section");
  try {
    return parse_model_section(ConfigReader(j["model"], "model"), std::filesystem::current_path()).arch;
  } catch (const Error& e) {
    fail(file.string(), ": ", e.what());
  }
}

Config default_config(const std::vector<std::string>& overrides) {
  return parse_config(std::string(embedded_tiny_config()), "<embedded configs/tiny.json>",
                      std::filesystem::current_path(), overrides);
}

DType resolve_precision(Precision p, const Backend& backend) {
  switch (p) {
    case Precision::FP32: return DType::F32;
    case Precision::BF16: return DType::BF16;
    case Precision::FP16: return DType::F16;
    case Precision::Auto: return backend.auto_compute_dtype();
  }
  return DType::F32;
}

std::string_view precision_name(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::BF16: return "bf16";
    case Precision::FP16: return "fp16";
    case Precision::Auto: return "auto";
  }
  return "?";
}

}  // namespace llm
