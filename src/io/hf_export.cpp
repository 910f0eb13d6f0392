// export_hf: a model directory (run, checkpoint or HF Qwen2) -> a clean HF directory, laid out as
// Qwen2.5's own repositories are (what transformers' save_pretrained writes for Qwen2ForCausalLM):
// safetensors under HF names, sharded as save_pretrained shards, config.json, generation_config.json
// and the tokenizer files transformers' Qwen2Tokenizer(Fast) / LlamaTokenizer read.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <utility>

#include "export_dir.h"
#include "llm/hf_weights.h"
#include "llm/inference.h"
#include "llm/model.h"
#include "llm/model_export.h"
#include "llm/safetensors.h"
#include "llm/tokenizer.h"
#include "tokenizer/sentencepiece_headers.h"

namespace llm {

namespace fs = std::filesystem;

namespace {

using io::read_json_file;
using io::read_whole_file;

// The transformers release whose file layout this export follows (Qwen2.5's config.json names it).
constexpr const char* kTransformersVersion = "4.43.1";

// Names an HF export writes; an existing output directory holding only these may be replaced.
bool hf_file(const std::string& n) {
  static const char* const kNames[] = {"config.json",
                                       "generation_config.json",
                                       "model.safetensors",
                                       "tokenizer.json",
                                       "tokenizer_config.json",
                                       "tokenizer.model",
                                       "vocab.json",
                                       "merges.txt",
                                       "model.safetensors.index.json",
                                       "special_tokens_map.json"};
  for (const char* k : kNames) {
    if (n == k) return true;
  }
  return n.starts_with("model-") && n.ends_with(".safetensors");
}

// The model's own tokenizer_config.json (beside the tokenizer, else beside config.json), or null.
nlohmann::json source_tokenizer_config(const ModelFiles& f) {
  for (const fs::path& p : {f.tokenizer.parent_path() / "tokenizer_config.json", f.dir / "tokenizer_config.json"}) {
    if (!fs::exists(p)) continue;
    nlohmann::json j = read_json_file(p);
    LLM_CHECK(j.is_object(), p.string(), ": expected a JSON object");
    return j;
  }
  return nullptr;
}

bool has_chatml(const Tokenizer& tok) { return tok.token_id("<|im_start|>") >= 0 && tok.token_id("<|im_end|>") >= 0; }

// ---- weights -------------------------------------------------------------------------------------

struct Shard {
  std::vector<const ParamInfo*> params;
  uint64_t bytes = 0;
};

// save_pretrained's split (huggingface_hub split_state_dict_into_shards): in order, a new shard
// when the next tensor would pass the limit; a tensor above the limit alone in its own shard.
std::vector<Shard> split_shards(const ParamTable& table, size_t elem_bytes, uint64_t max_bytes) {
  std::vector<Shard> shards;
  Shard cur;
  for (const ParamInfo& p : table.params()) {
    const uint64_t b = static_cast<uint64_t>(p.numel) * elem_bytes;
    if (b > max_bytes) {
      shards.push_back(Shard{{&p}, b});
      continue;
    }
    if (cur.bytes + b > max_bytes && !cur.params.empty()) shards.push_back(std::exchange(cur, Shard{}));
    cur.params.push_back(&p);
    cur.bytes += b;
  }
  if (!cur.params.empty()) shards.push_back(cur);
  return shards;
}

void write_shard(const fs::path& file, const Shard& s, const std::vector<float>& flat, DType dtype) {
  std::vector<std::vector<uint16_t>> halves;  // converted copies, alive until w.write()
  halves.reserve(s.params.size());
  SafetensorsWriter w;
  for (const ParamInfo* p : s.params) {
    const float* src = flat.data() + p->offset;
    if (dtype == DType::F32) {
      w.add(p->name, dtype, p->shape, src);
      continue;
    }
    auto& h = halves.emplace_back(static_cast<size_t>(p->numel));
    for (int64_t i = 0; i < p->numel; ++i) {
      h[static_cast<size_t>(i)] = dtype == DType::BF16 ? f32_to_bf16_bits(src[i]) : f32_to_f16_bits(src[i]);
    }
    w.add(p->name, dtype, p->shape, h.data());
  }
  w.add_metadata("format", "pt");  // transformers refuses safetensors without it
  w.write(file);
}

// ---- tokenizer files -------------------------------------------------------------------------------

// vocab.json and merges.txt (the slow Qwen2Tokenizer's files) from tokenizer.json's model.
void write_vocab_and_merges(const io::StagingDir& out, const nlohmann::json& tj, const std::string& where) {
  LLM_CHECK(tj.contains("model") && tj["model"].is_object() && tj["model"].contains("vocab") &&
                tj["model"]["vocab"].is_object(),
            where, ": no model.vocab object");
  const auto& m = tj["model"];
  out.write("vocab.json", m["vocab"].dump(-1, ' ', false, nlohmann::json::error_handler_t::strict));
  std::string merges = "#version: 0.2\n";
  if (m.contains("merges") && m["merges"].is_array()) {
    size_t i = 0;
    for (const auto& e : m["merges"]) {
      if (e.is_string()) {
        merges += e.get<std::string>();
      } else {
        LLM_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), where, ": model.merges entry ",
                  i, " is neither \"a b\" nor [\"a\", \"b\"]");
        merges += e[0].get<std::string>() + " " + e[1].get<std::string>();
      }
      merges += "\n";
      ++i;
    }
  }
  out.write("merges.txt", merges);
}

// added_tokens_decoder as save_pretrained writes it: id -> the AddedToken's fields.
nlohmann::json added_tokens_decoder(const nlohmann::json& tj) {
  nlohmann::json d = nlohmann::json::object();
  if (!tj.contains("added_tokens") || !tj["added_tokens"].is_array()) return d;
  for (const auto& a : tj["added_tokens"]) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer()) continue;
    d[std::to_string(a["id"].get<int64_t>())] = {{"content", a.value("content", "")},
                                                 {"lstrip", a.value("lstrip", false)},
                                                 {"normalized", a.value("normalized", false)},
                                                 {"rstrip", a.value("rstrip", false)},
                                                 {"single_word", a.value("single_word", false)},
                                                 {"special", a.value("special", false)}};
  }
  return d;
}

// tokenizer_config.json for a Qwen BPE tokenizer, as Qwen2.5 ships it.
nlohmann::json qwen_tokenizer_config(const nlohmann::json& tj, const Tokenizer& tok, const ModelConfig& cfg) {
  const nlohmann::json decoder = added_tokens_decoder(tj);
  const bool chat = has_chatml(tok);
  const std::string eot = tok.token_bytes(tok.eot_id());  // "<|endoftext|>"
  const std::string eos = chat ? "<|im_end|>" : eot;
  nlohmann::json extra = nlohmann::json::array();
  for (const auto& [id, a] : decoder.items()) {
    if (a["special"].get<bool>() && a["content"] != eos && a["content"] != eot) extra.push_back(a["content"]);
  }
  return {{"add_bos_token", false},
          {"add_prefix_space", false},
          {"added_tokens_decoder", decoder},
          {"additional_special_tokens", extra},
          {"bos_token", nullptr},
          {"chat_template", chat ? nlohmann::json(kQwen25ChatTemplate) : nlohmann::json(nullptr)},
          {"clean_up_tokenization_spaces", false},
          {"eos_token", eos},
          {"errors", "replace"},
          {"model_max_length", cfg.max_position_embeddings},
          {"pad_token", eot},
          {"split_special_tokens", false},
          {"tokenizer_class", "Qwen2Tokenizer"},
          {"unk_token", nullptr}};
}

// tokenizer_config.json for a sentencepiece model: transformers' LlamaTokenizer reading
// tokenizer.model as sentencepiece does (legacy: no prefix-space rewriting), no BOS/EOS added
// (our models are trained without them). Piece texts come from the model itself (<unk>, <s>, ...).
nlohmann::json sentencepiece_tokenizer_config(const fs::path& model, const Tokenizer& tok, const ModelConfig& cfg) {
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.LoadFromSerializedProto(read_whole_file(model));
  LLM_CHECK(status.ok(), model.string(), ": not a sentencepiece model: ", status.ToString());
  nlohmann::json decoder = nlohmann::json::object();
  for (int id = 0; id < sp.GetPieceSize(); ++id) {
    if (!sp.IsControl(id) && !sp.IsUnknown(id) && !tok.is_special(id)) continue;
    decoder[std::to_string(id)] = {{"content", sp.IdToPiece(id)}, {"lstrip", false},
                                   {"normalized", false},         {"rstrip", false},
                                   {"single_word", false},        {"special", true}};
  }
  auto piece = [&](int id) { return id >= 0 ? nlohmann::json(sp.IdToPiece(id)) : nlohmann::json(nullptr); };
  const bool chat = has_chatml(tok);
  return {{"add_bos_token", false},
          {"add_eos_token", false},
          {"added_tokens_decoder", decoder},
          {"bos_token", piece(sp.bos_id())},
          {"chat_template", chat ? nlohmann::json(kQwen25ChatTemplate) : nlohmann::json(nullptr)},
          {"clean_up_tokenization_spaces", false},
          {"eos_token", chat ? nlohmann::json("<|im_end|>") : piece(tok.eot_id())},
          {"legacy", true},
          {"model_max_length", cfg.max_position_embeddings},
          {"pad_token", piece(tok.eot_id())},
          {"sp_model_kwargs", nlohmann::json::object()},
          {"tokenizer_class", "LlamaTokenizer"},
          {"unk_token", piece(sp.unk_id())}};
}

void write_tokenizer_files(const io::StagingDir& out, const ModelFiles& f, const Tokenizer& tok,
                           const ModelConfig& cfg) {
  nlohmann::json config = source_tokenizer_config(f);
  if (tok.kind() == "qwen-bpe") {
    const std::string bytes = read_whole_file(f.tokenizer);
    nlohmann::json tj;
    try {
      tj = nlohmann::json::parse(bytes);
    } catch (const nlohmann::json::parse_error& e) {
      fail(f.tokenizer.string(), ": not valid JSON at byte ", e.byte);
    }
    out.write("tokenizer.json", bytes);
    write_vocab_and_merges(out, tj, f.tokenizer.string());
    if (config.is_null()) config = qwen_tokenizer_config(tj, tok, cfg);
  } else if (tok.kind() == "sentencepiece") {
    out.write("tokenizer.model", read_whole_file(f.tokenizer));
    if (config.is_null()) config = sentencepiece_tokenizer_config(f.tokenizer, tok, cfg);
  } else {
    fail(f.tokenizer.string(), ": a ", tok.kind(), " tokenizer cannot be written to an HF directory");
  }
  // The model's own config is kept; it only gains the ChatML template when it has none.
  if ((!config.contains("chat_template") || config["chat_template"].is_null()) && has_chatml(tok)) {
    config["chat_template"] = kQwen25ChatTemplate;
  }
  if (config.contains("chat_template") && config["chat_template"].is_null()) config.erase("chat_template");
  out.write("tokenizer_config.json", config.dump(2) + "\n");
}

// generation_config.json: the source's own, else Qwen2.5's (Instruct's sampling defaults for a
// model with ChatML, the base model's greedy ones otherwise).
std::string generation_config(const ModelFiles& f, const Tokenizer& tok, const ModelConfig& cfg) {
  const fs::path own = f.dir / "generation_config.json";
  if (fs::exists(own)) {
    const nlohmann::json j = read_json_file(own);
    LLM_CHECK(j.is_object(), own.string(), ": expected a JSON object");
    return j.dump(2) + "\n";
  }
  const int32_t eot = tok.eot_id();
  nlohmann::json g = {{"bos_token_id", cfg.bos_token_id}, {"pad_token_id", eot}};
  if (has_chatml(tok)) {
    g["do_sample"] = true;
    g["eos_token_id"] = {tok.token_id("<|im_end|>"), eot};
    g["repetition_penalty"] = 1.05;
    g["temperature"] = 0.7;
    g["top_k"] = 20;
    g["top_p"] = 0.8;
  } else {
    g["do_sample"] = false;
    g["eos_token_id"] = eot;
  }
  g["transformers_version"] = kTransformersVersion;
  return g.dump(2) + "\n";
}

}  // namespace

uint64_t parse_byte_size(std::string_view s, std::string_view where) {
  std::string t(s);
  size_t unit_at = 0;
  while (unit_at < t.size() && (std::isdigit(static_cast<unsigned char>(t[unit_at])) || t[unit_at] == '.')) ++unit_at;
  std::string unit = t.substr(unit_at);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::toupper(c); });
  static const std::pair<const char*, double> kUnits[] = {{"", 1},          {"B", 1},         {"KB", 1e3},
                                                          {"MB", 1e6},      {"GB", 1e9},      {"TB", 1e12},
                                                          {"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}};
  double mult = 0;
  for (const auto& [u, m] : kUnits) {
    if (unit == u) mult = m;
  }
  double number = 0;
  size_t used = 0;
  try {
    number = unit_at == 0 ? -1 : std::stod(t.substr(0, unit_at), &used);
  } catch (const std::exception&) {
    number = -1;
  }
  LLM_CHECK(mult > 0 && number > 0 && used == unit_at && std::isfinite(number * mult) && number * mult >= 1 &&
                number * mult < 1e18,
            where, ": \"", s, "\" is not a size (e.g. 5GB, 500MB, 2GiB or a number of bytes)");
  return static_cast<uint64_t>(std::llround(number * mult));
}

HfExportResult export_hf(const fs::path& model_dir, const fs::path& out_dir, const HfExportOptions& opt) {
  LLM_CHECK(opt.dtype == DType::BF16 || opt.dtype == DType::F16 || opt.dtype == DType::F32,
            "--dtype: HF weights are bf16, f16 or f32");
  LLM_CHECK(opt.max_shard_bytes > 0, "--max-shard-size: must be positive");
  io::StagingDir out(out_dir, hf_file);  // the destination first: a mistake there should not cost a model load

  const ModelFiles f = locate_model(model_dir);
  LLM_CHECK(!f.tokenizer.empty(), f.dir.string(),
            ": no tokenizer (tokenizer.json or a sentencepiece .model) beside the weights; an HF directory needs one");
  ModelConfig cfg = read_hf_config(f.dir / "config.json");
  const auto tok = load_tokenizer(f.tokenizer);
  // Our trainer keeps Qwen's BOS/EOS ids (151643) in config.json whatever the vocabulary; for a
  // smaller one they name no token, so the exported configs use the tokenizer's end-of-text.
  for (int64_t* id : {&cfg.bos_token_id, &cfg.eos_token_id}) {
    if (*id < 0 || *id >= tok->vocab_size()) *id = tok->eot_id();
  }
  LLM_CHECK(tok->vocab_size() <= cfg.vocab_size, f.tokenizer.string(), ": the tokenizer has ", tok->vocab_size(),
            " ids, more than the model's vocab_size ", cfg.vocab_size);
  const ParamTable table(cfg);
  const std::vector<float> flat = read_model_weights(f.dir, table, cfg);

  HfExportResult r;
  r.dir = out.final_path();
  const size_t elem = dtype_size(opt.dtype);
  const std::vector<Shard> shards = split_shards(table, elem, opt.max_shard_bytes);
  r.shards = static_cast<int>(shards.size());
  for (const Shard& s : shards) r.weight_bytes += s.bytes;
  if (shards.size() == 1) {
    write_shard(out.path() / "model.safetensors", shards[0], flat, opt.dtype);
  } else {
    nlohmann::json map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      write_shard(out.path() / name, shards[i], flat, opt.dtype);
      for (const ParamInfo* p : shards[i].params) map[p->name] = name;
    }
    const nlohmann::json index = {{"metadata", {{"total_size", r.weight_bytes}}}, {"weight_map", map}};
    out.write("model.safetensors.index.json", index.dump(2) + "\n");
  }

  nlohmann::json config = cfg.to_hf_json(opt.dtype == DType::BF16  ? "bfloat16"
                                         : opt.dtype == DType::F16 ? "float16"
                                                                   : "float32");
  config["transformers_version"] = kTransformersVersion;
  out.write("config.json", config.dump(2) + "\n");
  out.write("generation_config.json", generation_config(f, *tok, cfg));
  write_tokenizer_files(out, f, *tok, cfg);

  for (const auto& e : fs::directory_iterator(out.path())) r.files.push_back(e.path().filename().string());
  std::sort(r.files.begin(), r.files.end());
  out.commit();
  return r;
}

}  // namespace llm
