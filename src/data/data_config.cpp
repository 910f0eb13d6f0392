#include "llm/data_config.h"

#include "llm/error.h"

namespace llm {

namespace fs = std::filesystem;

fs::path resolve_path(const fs::path& base_dir, const fs::path& p) {
  if (p.empty()) return p;
  return (p.is_absolute() ? p : base_dir / p).lexically_normal();
}

namespace {

int64_t positive(ConfigReader& r, std::string_view key, int64_t def) {
  const int64_t v = r.get<int64_t>(key, def);
  LLM_CHECK(v > 0, r.key_path(key), ": expected a positive integer, got ", v);
  return v;
}

int non_negative_int(ConfigReader& r, std::string_view key, int def) {
  const int v = r.get<int>(key, def);
  LLM_CHECK(v >= 0, r.key_path(key), ": expected 0 or more, got ", v);
  return v;
}

SentencePieceTrainConfig parse_sp_train(ConfigReader& r) {
  SentencePieceTrainConfig t;
  const int64_t vocab = positive(r, "vocab_size", t.vocab_size);
  LLM_CHECK(vocab >= 64 && vocab <= (1 << 24), r.key_path("vocab_size"), ": expected 64 to 16777216, got ", vocab);
  t.vocab_size = static_cast<int>(vocab);
  t.model_type = r.get_choice("model_type", t.model_type, {"bpe", "unigram"});
  t.byte_fallback = r.get<bool>("byte_fallback", t.byte_fallback);
  t.character_coverage = r.get<double>("character_coverage", t.character_coverage);
  LLM_CHECK(t.character_coverage > 0 && t.character_coverage <= 1, r.key_path("character_coverage"),
            ": expected a number in (0, 1], got ", t.character_coverage);
  t.special_tokens = r.get<std::vector<std::string>>("special_tokens", t.special_tokens);
  for (size_t i = 0; i < t.special_tokens.size(); ++i) {
    LLM_CHECK(!t.special_tokens[i].empty(), r.key_path("special_tokens"), "[", i, "]: empty token");
  }
  t.max_sentences = positive(r, "max_sentences", t.max_sentences);
  const int64_t len = positive(r, "max_sentence_length", t.max_sentence_length);
  LLM_CHECK(len <= (1 << 30), r.key_path("max_sentence_length"), ": ", len, " is too large");
  t.max_sentence_length = static_cast<int>(len);
  t.threads = non_negative_int(r, "threads", t.threads);
  r.finish();
  return t;
}

DataInput parse_input(const nlohmann::json& j, const fs::path& base_dir, const std::string& where) {
  LLM_CHECK(j.is_object() || j.is_string(), where,
            ": expected an object {\"path\": ..., \"format\": ...} or a path string, got ", j.dump());
  DataInput in;
  if (j.is_string()) {  // shorthand: a path, read as text with one document per file
    const std::string p = j.get<std::string>();
    LLM_CHECK(!p.empty(), where, ": empty path");
    in.path = resolve_path(base_dir, p).string();
    return in;
  }
  ConfigReader r(j, where);
  const std::string p = r.require<std::string>("path");
  LLM_CHECK(!p.empty(), r.key_path("path"), ": empty path");
  in.path = resolve_path(base_dir, p).string();
  in.format = r.get_choice("format", in.format, {"text", "jsonl", "chat"});
  if (in.format == "chat") {
    for (const char* k : {"field", "doc_separator", "strip_terminal_codes"}) {
      LLM_CHECK(!r.has(k), r.key_path(k), ": not for format \"chat\" (a JSONL line is one conversation)");
    }
  } else if (in.format == "jsonl") {
    in.field = r.get<std::string>("field", in.field);
    LLM_CHECK(!in.field.empty(), r.key_path("field"), ": empty field name");
    LLM_CHECK(!r.has("doc_separator"), r.key_path("doc_separator"),
              ": only for format \"text\" (a JSONL line is one document)");
    LLM_CHECK(!r.has("strip_terminal_codes"), r.key_path("strip_terminal_codes"), ": only for format \"text\"");
  } else {
    LLM_CHECK(!r.has("field"), r.key_path("field"), ": only for format \"jsonl\"");
    if (auto sep = r.get_optional<std::string>("doc_separator")) {
      in.has_separator = true;
      in.doc_separator = *sep;
      LLM_CHECK(in.doc_separator.find('\n') == std::string::npos, r.key_path("doc_separator"),
                ": must be a single line");
    }
    in.strip_terminal_codes = r.get<bool>("strip_terminal_codes", false);
  }
  in.exclude = r.get<std::vector<std::string>>("exclude", {});
  r.ignore({"field", "doc_separator", "strip_terminal_codes"});
  r.finish();
  return in;
}

}  // namespace

TokenizerConfig parse_tokenizer_config(ConfigReader& r, const fs::path& base_dir) {
  TokenizerConfig c;
  c.kind = r.get_choice("kind", c.kind, {"sentencepiece", "qwen-bpe"});
  const std::string p = r.require<std::string>("path");
  LLM_CHECK(!p.empty(), r.key_path("path"), ": empty path");
  c.path = resolve_path(base_dir, p);
  if (r.has("train")) {
    LLM_CHECK(c.kind == "sentencepiece", r.key_path("train"),
              ": training is only available for kind \"sentencepiece\" (kind is \"", c.kind, "\")");
    ConfigReader t = r.section("train");
    c.train = parse_sp_train(t);
    c.train_if_missing = true;
  } else {
    r.ignore({"train"});
  }
  r.finish();
  return c;
}

DataConfig parse_data_config(const nlohmann::json& section, const fs::path& base_dir, const std::string& where) {
  ConfigReader r(section, where);
  DataConfig c;
  // "inputs" is read from the raw JSON (a list of objects); mark it known for finish().
  r.ignore({"inputs"});
  const auto it = section.is_object() ? section.find("inputs") : section.end();
  const std::string inputs_key = r.key_path("inputs");
  LLM_CHECK(section.is_object() && it != section.end() && !it->is_null(), inputs_key,
            ": required key is missing (a list of {\"path\", \"format\", ...})");
  if (it->is_array()) {
    LLM_CHECK(!it->empty(), inputs_key, ": the list is empty; name at least one file, directory or glob");
    for (size_t i = 0; i < it->size(); ++i) {
      c.inputs.push_back(parse_input((*it)[i], base_dir, cat(inputs_key, "[", i, "]")));
    }
  } else {
    c.inputs.push_back(parse_input(*it, base_dir, inputs_key));
  }
  const std::string out = r.require<std::string>("out_dir");
  LLM_CHECK(!out.empty(), r.key_path("out_dir"), ": empty path");
  c.out_dir = resolve_path(base_dir, out);
  // "dir/" names dir: the staging directory "<out_dir>.tmp.<pid>" must be its sibling.
  if (!c.out_dir.has_filename()) c.out_dir = c.out_dir.parent_path();
  c.shard_tokens = positive(r, "shard_tokens", c.shard_tokens);
  c.val_fraction = r.get<double>("val_fraction", c.val_fraction);
  LLM_CHECK(c.val_fraction >= 0 && c.val_fraction <= 0.5, r.key_path("val_fraction"),
            ": expected a number in [0, 0.5], got ", c.val_fraction);
  c.val_max_tokens = r.get<int64_t>("val_max_tokens", c.val_max_tokens);
  LLM_CHECK(c.val_max_tokens >= 0, r.key_path("val_max_tokens"), ": expected 0 (no cap) or more, got ",
            c.val_max_tokens);
  const int64_t seed = r.get<int64_t>("seed", static_cast<int64_t>(c.seed));
  LLM_CHECK(seed >= 0, r.key_path("seed"), ": expected 0 or more, got ", seed);
  c.seed = static_cast<uint64_t>(seed);
  c.threads = non_negative_int(r, "threads", c.threads);
  c.batch_bytes = positive(r, "batch_bytes", c.batch_bytes);
  c.max_document_bytes = positive(r, "max_document_bytes", c.max_document_bytes);
  LLM_CHECK(c.max_document_bytes >= 64, r.key_path("max_document_bytes"), ": expected at least 64, got ",
            c.max_document_bytes);
  const int64_t prefetch = positive(r, "prefetch_batches", c.prefetch_batches);
  LLM_CHECK(prefetch <= 1024, r.key_path("prefetch_batches"), ": expected 1 to 1024, got ", prefetch);
  c.prefetch_batches = static_cast<int>(prefetch);
  c.attention = r.get_choice("attention", c.attention, {"auto", "causal", "document"});
  c.packing = r.get<bool>("packing", c.packing);
  r.finish();
  return c;
}

nlohmann::json to_json(const TokenizerConfig& c) {
  nlohmann::json j = {{"kind", c.kind}, {"path", c.path.string()}};
  if (c.train_if_missing) {
    const auto& t = c.train;
    j["train"] = {{"vocab_size", t.vocab_size},
                  {"model_type", t.model_type},
                  {"byte_fallback", t.byte_fallback},
                  {"character_coverage", t.character_coverage},
                  {"special_tokens", t.special_tokens},
                  {"max_sentences", t.max_sentences},
                  {"max_sentence_length", t.max_sentence_length},
                  {"threads", t.threads}};
  }
  return j;
}

nlohmann::json to_json(const DataInput& in) {
  nlohmann::json j = {{"path", in.path}, {"format", in.format}};
  if (in.format == "jsonl") {
    j["field"] = in.field;
  } else if (in.format == "text") {
    if (in.has_separator) j["doc_separator"] = in.doc_separator;
    j["strip_terminal_codes"] = in.strip_terminal_codes;
  }
  if (!in.exclude.empty()) j["exclude"] = in.exclude;
  return j;
}

nlohmann::json to_json(const DataConfig& c) {
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& in : c.inputs) inputs.push_back(to_json(in));
  return {{"inputs", inputs},
          {"out_dir", c.out_dir.string()},
          {"shard_tokens", c.shard_tokens},
          {"val_fraction", c.val_fraction},
          {"val_max_tokens", c.val_max_tokens},
          {"seed", c.seed},
          {"threads", c.threads},
          {"batch_bytes", c.batch_bytes},
          {"max_document_bytes", c.max_document_bytes},
          {"prefetch_batches", c.prefetch_batches},
          {"attention", c.attention},
          {"packing", c.packing}};
}

}  // namespace llm
