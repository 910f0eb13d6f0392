#include "llm/manifest.h"

#include <fstream>
#include <sstream>

#include "llm/error.h"

namespace llm {

namespace fs = std::filesystem;

namespace {

nlohmann::json shards_json(const std::vector<ShardInfo>& shards) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& s : shards) a.push_back({{"file", s.file}, {"tokens", s.tokens}, {"documents", s.documents}});
  return a;
}

template <class T>
T field(const nlohmann::json& j, const char* key, const std::string& where) {
  LLM_CHECK(j.is_object() && j.contains(key), where, ": missing \"", key, "\"");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": \"", key, "\" has the wrong type: ", e.what());
  }
}

std::vector<ShardInfo> shards_from(const nlohmann::json& j, const std::string& where) {
  LLM_CHECK(j.is_array(), where, ": expected a list of shards");
  std::vector<ShardInfo> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const std::string w = cat(where, "[", i, "]");
    ShardInfo s{field<std::string>(j[i], "file", w), field<uint64_t>(j[i], "tokens", w),
                field<uint64_t>(j[i], "documents", w)};
    LLM_CHECK(!s.file.empty() && fs::path(s.file).filename() == fs::path(s.file), w, ": \"", s.file,
              "\" is not a plain file name");
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

nlohmann::json Manifest::to_json() const {
  nlohmann::json j = {
      {"format", "llm-token-shards"},
      {"version", kManifestVersion},
      {"tokenizer",
       {{"kind", tokenizer_kind},
        {"fingerprint", tokenizer_fingerprint},
        {"vocab_size", vocab_size},
        {"eot_id", eot_id}}},
      {"train", {{"tokens", train_tokens}, {"documents", train_documents}, {"shards", shards_json(train)}}},
      {"val", {{"tokens", val_tokens}, {"documents", val_documents}, {"shards", shards_json(val)}}},
      {"input_bytes", input_bytes},
      {"signature", signature},
      {"config", config}};
  if (token_flags) {
    j["token_flags"] = true;
    j["conversations"] = conversations;
    j["train"]["trained_tokens"] = train_trained_tokens;
    j["val"]["trained_tokens"] = val_trained_tokens;
  }
  return j;
}

Manifest Manifest::from_json(const nlohmann::json& j, const std::string& where) {
  LLM_CHECK(j.is_object(), where, ": expected a JSON object");
  LLM_CHECK(j.value("format", "") == "llm-token-shards", where,
            ": not a shard manifest (\"format\" is not \"llm-token-shards\")");
  const int version = field<int>(j, "version", where);
  LLM_CHECK(version == kManifestVersion, where, ": unsupported manifest version ", version, " (this build reads ",
            kManifestVersion, ")");
  Manifest m;
  const auto tok = field<nlohmann::json>(j, "tokenizer", where);
  const std::string tw = where + ": tokenizer";
  m.tokenizer_kind = field<std::string>(tok, "kind", tw);
  m.tokenizer_fingerprint = field<std::string>(tok, "fingerprint", tw);
  m.vocab_size = field<uint32_t>(tok, "vocab_size", tw);
  m.eot_id = field<int32_t>(tok, "eot_id", tw);
  for (const char* split : {"train", "val"}) {
    const std::string sw = cat(where, ": ", split);
    const auto& s = j.contains(split) ? j.at(split) : nlohmann::json();
    auto shards =
        shards_from(s.is_object() && s.contains("shards") ? s.at("shards") : nlohmann::json(), sw + ".shards");
    const auto tokens = field<uint64_t>(s, "tokens", sw);
    const auto docs = field<uint64_t>(s, "documents", sw);
    uint64_t sum = 0;
    for (const auto& sh : shards) sum += sh.tokens;
    LLM_CHECK(sum == tokens, sw, ": the shards hold ", sum, " tokens, the total says ", tokens);
    m.token_flags = j.value("token_flags", false);
    const uint64_t trained = m.token_flags ? field<uint64_t>(s, "trained_tokens", sw) : tokens;
    if (std::string(split) == "train") {
      m.train = std::move(shards), m.train_tokens = tokens, m.train_documents = docs;
      m.train_trained_tokens = trained;
    } else {
      m.val = std::move(shards), m.val_tokens = tokens, m.val_documents = docs;
      m.val_trained_tokens = trained;
    }
  }
  if (m.token_flags) m.conversations = field<uint64_t>(j, "conversations", where);
  m.input_bytes = field<uint64_t>(j, "input_bytes", where);
  m.signature = j.value("signature", nlohmann::json());
  m.config = j.value("config", nlohmann::json());
  return m;
}

Manifest read_manifest(const fs::path& data_dir) {
  const fs::path p = data_dir / kManifestName;
  std::ifstream in(p, std::ios::binary);
  LLM_CHECK(in.good(), p, ": cannot open the data manifest (has the corpus been prepared? run `llmtrain prepare`)");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail(p, ": malformed JSON at byte offset ", e.byte, ": ", e.what());
  } catch (const nlohmann::json::out_of_range& e) {  // a number beyond 64 bits or double (error 406)
    fail(p.string(), ": ", e.what());
  }
  return Manifest::from_json(j, p.string());
}

std::vector<fs::path> shard_paths(const fs::path& data_dir, const Manifest& m, const std::string& split) {
  LLM_CHECK(split == "train" || split == "val", "shard_paths: split \"", split, "\" is not train or val");
  std::vector<fs::path> out;
  for (const auto& s : split == "train" ? m.train : m.val) out.push_back(data_dir / s.file);
  return out;
}

}  // namespace llm
