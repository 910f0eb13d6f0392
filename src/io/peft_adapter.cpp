// HF PEFT LoRA directories: adapter_config.json and adapter_model.safetensors as
// peft.PeftModel.save_pretrained writes them (src/peft/utils/save_and_load.py drops the adapter
// name from the tensor names: base_model.model.<module>.lora_A.weight [r, in], .lora_B.weight
// [out, r]), so peft.PeftModel.from_pretrained loads ours and we load theirs.
#include <fstream>
#include <set>

#include "llm/atomic_file.h"
#include "llm/config_reader.h"
#include "llm/error.h"
#include "llm/lora.h"
#include "llm/safetensors.h"

namespace llm {

namespace fs = std::filesystem;

void write_peft_adapter(const fs::path& dir, const LoraTable& t, std::span<const float> flat,
                        const std::string& base_model_name_or_path) {
  LLM_CHECK(static_cast<int64_t>(flat.size()) == t.flat_size(), "write_peft_adapter: ", flat.size(),
            " values, expected ", t.flat_size());
  fs::create_directories(dir);
  const LoraConfig& c = t.config();
  const int64_t r = c.rank;
  SafetensorsWriter w;
  w.add_metadata("format", "pt");
  for (const LoraAdapterInfo& a : t.adapters()) {
    w.add(a.peft_prefix + ".lora_A.weight", DType::F32, {r, a.in}, flat.data() + a.a_offset);
    w.add(a.peft_prefix + ".lora_B.weight", DType::F32, {a.out, r}, flat.data() + a.b_offset);
  }
  w.write(dir / "adapter_model.safetensors");
  nlohmann::json targets = nlohmann::json::array();
  for (int m : c.module_indices()) targets.push_back(std::string(kLoraModules[static_cast<size_t>(m)]));
  // The keys of PEFT's LoraConfig (tuners/lora/config.py) that describe what we trained; PEFT
  // fills the rest with its defaults.
  const nlohmann::json cfg = {{"peft_type", "LORA"},
                              {"task_type", "CAUSAL_LM"},
                              {"base_model_name_or_path", base_model_name_or_path},
                              {"r", r},
                              {"lora_alpha", c.alpha},
                              {"lora_dropout", c.dropout},
                              {"target_modules", targets},
                              {"bias", "none"},
                              {"fan_in_fan_out", false},
                              {"inference_mode", true},
                              {"init_lora_weights", true},
                              {"use_rslora", false},
                              {"use_dora", false},
                              {"modules_to_save", nullptr},
                              {"layers_to_transform", nullptr},
                              {"layers_pattern", nullptr},
                              {"rank_pattern", nlohmann::json::object()},
                              {"alpha_pattern", nlohmann::json::object()},
                              {"revision", nullptr}};
  write_file_atomic(dir / "adapter_config.json", cfg.dump(2) + "\n");
}

namespace {

nlohmann::json read_json(const fs::path& file) {
  return read_json_file(file, "a PEFT adapter directory holds adapter_config.json");
}

// key must be absent, null, false, empty or equal to `fine` (what we compute).
void require_default(const nlohmann::json& j, const fs::path& file, const char* key, const nlohmann::json& fine,
                     const char* why) {
  if (!j.contains(key)) return;
  const nlohmann::json& v = j[key];
  if (v.is_null() || v == false || (v.is_object() && v.empty()) || (v.is_array() && v.empty()) || v == fine) return;
  fail(file.string(), ": ", key, " = ", v.dump(), " is not supported (", why, ")");
}

}  // namespace

PeftAdapter read_peft_adapter(const fs::path& where, const ModelConfig& model) {
  const fs::path dir = locate_adapter(where);
  const fs::path file = dir / "adapter_config.json";
  const nlohmann::json j = read_json(file);
  LLM_CHECK(j.is_object(), file.string(), ": expected a JSON object");
  auto need = [&](const char* key) -> const nlohmann::json& {
    LLM_CHECK(j.contains(key) && !j[key].is_null(), file.string(), ": missing key \"", key, "\"");
    return j[key];
  };
  LLM_CHECK(need("peft_type") == "LORA", file.string(), ": peft_type is ", need("peft_type").dump(),
            ", only \"LORA\" is supported");
  PeftAdapter out;
  try {
    // An integer, not any number: get<int64_t> of a double beyond int64 is undefined.
    LLM_CHECK(need("r").is_number_integer(), file.string(), ": r must be an integer, got ", need("r").dump());
    out.config.rank = need("r").get<int64_t>();
    out.config.alpha = need("lora_alpha").get<double>();
    out.config.dropout =
        j.contains("lora_dropout") && !j["lora_dropout"].is_null() ? j["lora_dropout"].get<double>() : 0;
    const nlohmann::json& tm = need("target_modules");
    LLM_CHECK(tm.is_array(), file.string(), ": target_modules must be a list of module names (a regular expression is ",
              "not supported), got ", tm.dump());
    out.config.target_modules = tm.get<std::vector<std::string>>();
  } catch (const nlohmann::json::type_error& e) {
    fail(file.string(), ": r, lora_alpha, lora_dropout or target_modules has the wrong type (", e.what(), ")");
  }
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    out.base_model_name_or_path = j["base_model_name_or_path"].get<std::string>();
  require_default(j, file, "bias", "none", "adapters with trained biases");
  require_default(j, file, "use_dora", false, "DoRA");
  require_default(j, file, "use_rslora", false, "rank-stabilised scaling");
  require_default(j, file, "fan_in_fan_out", false, "transposed Conv1D weights");
  require_default(j, file, "modules_to_save", nullptr, "fully trained extra modules");
  require_default(j, file, "layers_to_transform", nullptr, "a subset of layers");
  require_default(j, file, "rank_pattern", nullptr, "per-module ranks");
  require_default(j, file, "alpha_pattern", nullptr, "per-module alphas");
  validate_lora_config(out.config, file.string() + ": lora");

  const fs::path wfile = dir / "adapter_model.safetensors";
  LLM_CHECK(fs::exists(wfile), wfile.string(), ": missing (adapter_model.bin, PyTorch pickles, is not read)");
  // Every rank row takes bytes of the file: a larger r is wrong, and sizing the table by it could
  // overflow or exhaust memory before the tensors are looked at.
  LLM_CHECK(static_cast<uint64_t>(out.config.rank) <= fs::file_size(wfile), file.string(), ": r = ", out.config.rank,
            " is more than ", wfile.string(), " could hold (", fs::file_size(wfile), " bytes)");
  const LoraTable table(model, out.config);
  const SafetensorsReader r(wfile);
  const int64_t rank = out.config.rank;
  // Every tensor present with its shape before the buffer is sized by r.
  for (const LoraAdapterInfo& a : table.adapters()) {
    const std::string an = a.peft_prefix + ".lora_A.weight", bn = a.peft_prefix + ".lora_B.weight";
    LLM_CHECK(r.find(an) && r.find(bn), wfile.string(), ": missing tensor ", r.find(an) ? bn : an,
              " (target_modules lists ", kLoraModules[static_cast<size_t>(a.module)], " and the model has ",
              model.num_hidden_layers, " layers)");
    for (const auto& [name, shape] : {std::pair{an, std::vector<int64_t>{rank, a.in}}, {bn, {a.out, rank}}}) {
      LLM_CHECK(r.find(name)->shape == shape, wfile.string(), ": tensor ", name, " is ",
                nlohmann::json(r.find(name)->shape).dump(), ", expected ", nlohmann::json(shape).dump(), " (r = ", rank,
                ")");
    }
  }
  out.flat.assign(static_cast<size_t>(table.flat_size()), 0.0f);
  std::set<std::string> expected;
  for (const LoraAdapterInfo& a : table.adapters()) {
    const std::string an = a.peft_prefix + ".lora_A.weight", bn = a.peft_prefix + ".lora_B.weight";
    const std::vector<int64_t> as{rank, a.in}, bs{a.out, rank};
    r.read_into(an, as, DType::F32, out.flat.data() + a.a_offset);
    r.read_into(bn, bs, DType::F32, out.flat.data() + a.b_offset);
    expected.insert(an);
    expected.insert(bn);
  }
  for (const SafetensorsTensor& t : r.tensors()) {
    LLM_CHECK(expected.count(t.name), wfile.string(), ": tensor ", t.name,
              " is not an adapter of this model and configuration (target_modules ",
              nlohmann::json(out.config.target_modules).dump(), ", ", model.num_hidden_layers, " layers)");
  }
  return out;
}

}  // namespace llm
