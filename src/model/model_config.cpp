// ModelConfig: reading our configs' "model" section and HF config.json files, validation, and
// writing config.json back out.
#include <fstream>

#include "llm/config_reader.h"
#include "llm/error.h"
#include "llm/model.h"

namespace llm {

namespace {

ModelConfig read_keys(ConfigReader& r) {
  ModelConfig c;
  c.vocab_size = r.require<int64_t>("vocab_size");
  c.hidden_size = r.require<int64_t>("hidden_size");
  c.intermediate_size = r.require<int64_t>("intermediate_size");
  c.num_hidden_layers = r.require<int64_t>("num_hidden_layers");
  c.num_attention_heads = r.require<int64_t>("num_attention_heads");
  c.num_key_value_heads = r.get<int64_t>("num_key_value_heads", c.num_attention_heads);
  c.max_position_embeddings = r.get<int64_t>("max_position_embeddings", c.max_position_embeddings);
  c.rope_theta = r.get<double>("rope_theta", 10000.0);  // HF's Qwen2Config default
  c.rms_norm_eps = r.get<double>("rms_norm_eps", c.rms_norm_eps);
  c.tie_word_embeddings = r.get<bool>("tie_word_embeddings", false);  // HF's default
  c.initializer_range = r.get<double>("initializer_range", c.initializer_range);
  c.bos_token_id = r.get<int64_t>("bos_token_id", c.bos_token_id);
  c.eos_token_id = r.get<int64_t>("eos_token_id", c.eos_token_id);

  // Keys HF writes that either change nothing here or name something we cannot run.
  const std::string act = r.get<std::string>("hidden_act", "silu");
  LLM_CHECK(act == "silu", r.key_path("hidden_act"), ": \"", act, "\" is not supported; Qwen2 uses \"silu\"");
  const std::string type = r.get<std::string>("model_type", "qwen2");
  LLM_CHECK(type == "qwen2", r.key_path("model_type"), ": \"", type, "\" is not supported; expected \"qwen2\"");
  const auto arch = r.get<std::vector<std::string>>("architectures", {"Qwen2ForCausalLM"});
  LLM_CHECK(arch.size() == 1 && arch[0] == "Qwen2ForCausalLM", r.key_path("architectures"),
            ": expected [\"Qwen2ForCausalLM\"]");
  const double dropout = r.get<double>("attention_dropout", 0.0);
  LLM_CHECK(dropout == 0.0, r.key_path("attention_dropout"), ": ", dropout, " is not supported; only 0");
  LLM_CHECK(!r.has("rope_scaling"), r.key_path("rope_scaling"), ": rope scaling is not supported; remove the key");
  const bool sliding = r.get<bool>("use_sliding_window", false);
  LLM_CHECK(!sliding, r.key_path("use_sliding_window"), ": sliding-window attention is not supported");
  r.get<int64_t>("sliding_window", 0);
  r.get<int64_t>("max_window_layers", 0);
  r.get<bool>("use_cache", true);
  r.get<std::string>("torch_dtype", "float32");
  r.get<std::string>("transformers_version", "");
  return c;
}

}  // namespace

void ModelConfig::validate(const std::string& where) const {
  auto positive = [&](int64_t v, const char* key) { LLM_CHECK(v > 0, where, ".", key, ": must be positive, got ", v); };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(intermediate_size, "intermediate_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(num_key_value_heads, "num_key_value_heads");
  positive(max_position_embeddings, "max_position_embeddings");
  LLM_CHECK(vocab_size < (int64_t(1) << 31), where, ".vocab_size: ", vocab_size, " does not fit 32-bit token ids");
  LLM_CHECK(hidden_size % num_attention_heads == 0, where, ".hidden_size: ", hidden_size,
            " is not a multiple of num_attention_heads (", num_attention_heads, ")");
  LLM_CHECK(head_dim() % 2 == 0, where, ": head_dim = hidden_size / num_attention_heads = ", head_dim(),
            " must be even for rotary embeddings");
  LLM_CHECK(num_attention_heads % num_key_value_heads == 0, where, ".num_key_value_heads: ", num_key_value_heads,
            " does not divide num_attention_heads (", num_attention_heads, ")");
  LLM_CHECK(rope_theta > 0, where, ".rope_theta: must be positive, got ", rope_theta);
  LLM_CHECK(rms_norm_eps > 0, where, ".rms_norm_eps: must be positive, got ", rms_norm_eps);
  LLM_CHECK(initializer_range > 0, where, ".initializer_range: must be positive, got ", initializer_range);
}

nlohmann::json ModelConfig::to_hf_json(const std::string& torch_dtype) const {
  return nlohmann::json{
      {"architectures", {"Qwen2ForCausalLM"}},
      {"model_type", "qwen2"},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"max_position_embeddings", max_position_embeddings},
      {"rope_theta", rope_theta},
      {"rms_norm_eps", rms_norm_eps},
      {"tie_word_embeddings", tie_word_embeddings},
      {"initializer_range", initializer_range},
      {"hidden_act", "silu"},
      {"attention_dropout", 0.0},
      {"use_sliding_window", false},
      {"sliding_window", max_position_embeddings},
      {"max_window_layers", num_hidden_layers},
      {"use_cache", true},
      {"bos_token_id", bos_token_id},
      {"eos_token_id", eos_token_id},
      {"torch_dtype", torch_dtype},
  };
}

ModelConfig parse_model_config(ConfigReader& r) {
  ModelConfig c = read_keys(r);
  r.finish();
  c.validate(r.path().empty() ? "model" : r.path());
  return c;
}

ModelConfig read_hf_config(const std::filesystem::path& config_json) {
  const nlohmann::json j = read_json_file(config_json);
  LLM_CHECK(j.is_object(), config_json.string(), ": expected a JSON object");
  for (const char* unsupported : {"quantization_config", "rope_scaling"}) {
    LLM_CHECK(!j.contains(unsupported) || j[unsupported].is_null(), config_json.string(), ": \"", unsupported,
              "\" is not supported");
  }
  // HF's own fields that differ between transformers versions are not ours to police: the keys
  // that define the architecture are read, the rest are ignored.
  ConfigReader r(j, config_json.string());
  ModelConfig c;
  try {
    c = read_keys(r);
  } catch (const Error& e) {
    fail(e.what());
  }
  c.validate(config_json.string());
  return c;
}

}  // namespace llm
