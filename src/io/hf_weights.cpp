// HF-layout weights: writing model.safetensors and config.json, reading single-file and sharded
// safetensors into the flat parameter layout.
#include "llm/hf_weights.h"
#include "llm/config_reader.h"

#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "llm/atomic_file.h"
#include "llm/error.h"
#include "llm/safetensors.h"

namespace llm {

void write_model_safetensors(const std::filesystem::path& file, const ParamTable& table, std::span<const float> flat,
                             DType dtype) {
  LLM_CHECK(static_cast<int64_t>(flat.size()) == table.flat_size(), file.string(), ": ", flat.size(),
            " values for a model of ", table.flat_size());
  LLM_CHECK(is_float(dtype), file.string(), ": weights must be written as f32, f16 or bf16");
  // Converted copies must outlive the writer's write(): keep them all until then.
  std::vector<std::vector<uint16_t>> halves;
  SafetensorsWriter w;
  for (const ParamInfo& p : table.params()) {
    const float* src = flat.data() + p.offset;
    if (dtype == DType::F32) {
      w.add(p.name, dtype, p.shape, src);
      continue;
    }
    auto& h = halves.emplace_back(static_cast<size_t>(p.numel));
    for (int64_t i = 0; i < p.numel; ++i) {
      h[static_cast<size_t>(i)] = dtype == DType::BF16 ? f32_to_bf16_bits(src[i]) : f32_to_f16_bits(src[i]);
    }
    w.add(p.name, dtype, p.shape, h.data());
  }
  w.add_metadata("format", "pt");
  w.write(file);
}

void write_hf_config(const std::filesystem::path& file, const ModelConfig& cfg, DType dtype) {
  const char* torch_dtype = dtype == DType::BF16 ? "bfloat16" : dtype == DType::F16 ? "float16" : "float32";
  write_file_atomic(file, cfg.to_hf_json(torch_dtype).dump(2) + "\n");
}

namespace {

// The shard files of an HF directory and which tensor lives in which.
std::map<std::string, std::filesystem::path> locate_tensors(const std::filesystem::path& dir,
                                                            std::vector<std::filesystem::path>& files) {
  const auto single = dir / "model.safetensors";
  const auto index = dir / "model.safetensors.index.json";
  std::map<std::string, std::filesystem::path> where;
  if (std::filesystem::exists(single)) {
    files.push_back(single);
    return where;  // empty: everything is in the one file
  }
  LLM_CHECK(std::filesystem::exists(index), dir.string(), ": no model.safetensors or model.safetensors.index.json");
  const nlohmann::json j = read_json_file(index);
  LLM_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), index.string(),
            ": expected an object with a \"weight_map\" object");
  std::set<std::string> names;
  for (const auto& [tensor, shard] : j["weight_map"].items()) {
    LLM_CHECK(shard.is_string(), index.string(), ": weight_map[\"", tensor, "\"] is not a file name");
    const std::string f = shard.get<std::string>();
    LLM_CHECK(f.find('/') == std::string::npos && f != ".." && !f.empty(), index.string(), ": weight_map[\"", tensor,
              "\"] = \"", f, "\" is not a file name in the directory");
    where[tensor] = dir / f;
    if (names.insert(f).second) files.push_back(dir / f);
  }
  return where;
}

}  // namespace

std::vector<float> read_model_weights(const std::filesystem::path& dir, const ParamTable& table,
                                      const ModelConfig& cfg) {
  std::vector<std::filesystem::path> files;
  const auto where = locate_tensors(dir, files);
  std::vector<SafetensorsReader> readers;
  readers.reserve(files.size());
  for (const auto& f : files) readers.emplace_back(f);
  auto reader_for = [&](const std::string& name) -> const SafetensorsReader* {
    if (where.empty()) return readers[0].find(name) ? &readers[0] : nullptr;
    auto it = where.find(name);
    if (it == where.end()) return nullptr;
    for (const auto& r : readers) {
      if (r.path() == it->second) return r.find(name) ? &r : nullptr;
    }
    return nullptr;
  };

  std::vector<float> flat(static_cast<size_t>(table.flat_size()), 0.0f);
  std::set<std::string> expected;
  for (const ParamInfo& p : table.params()) {
    expected.insert(p.name);
    const SafetensorsReader* r = reader_for(p.name);
    LLM_CHECK(r != nullptr, dir.string(), ": tensor ", p.name, " is missing",
              where.empty() ? "" : " (or the index names a file that does not hold it)");
    r->read_into(p.name, p.shape, DType::F32, flat.data() + p.offset);
  }
  // Anything else in the files is a sign of a different architecture: refuse it, except the
  // duplicate output layer some exporters write for tied models, and rotary caches of old exports.
  for (const auto& r : readers) {
    for (const auto& t : r.tensors()) {
      if (expected.count(t.name) || t.name.ends_with("rotary_emb.inv_freq")) continue;
      if (t.name == "lm_head.weight" && cfg.tie_word_embeddings) {
        const ParamInfo& emb = table.at("model.embed_tokens.weight");
        std::vector<float> head(static_cast<size_t>(emb.numel));
        r.read_into(t.name, emb.shape, DType::F32, head.data());
        LLM_CHECK(std::memcmp(head.data(), flat.data() + emb.offset, head.size() * sizeof(float)) == 0,
                  r.path().string(),
                  ": lm_head.weight differs from model.embed_tokens.weight, but config.json says "
                  "tie_word_embeddings is true");
        continue;
      }
      fail(r.path().string(), ": unexpected tensor ", t.name, " for a Qwen2 model with this config");
    }
  }
  return flat;
}

}  // namespace llm
