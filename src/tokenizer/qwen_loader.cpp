// Reading tokenizer.json / tokenizer_config.json into QwenParts, with errors that name the file
// and the JSON key (model.merges[12], added_tokens[3].content, ...).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "llm/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/file_util.h"
#include "tokenizer/qwen_tokenizer.h"

namespace llm::tok {

namespace {

using nlohmann::json;

// The Qwen2 pre-tokenizer regex as tokenizer.json spells it; the only split we implement.
constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

std::string describe(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return cat(v.type_name(), " ", s);
}

// Reads one JSON document; errors name the file.
json parse_json_file(const std::filesystem::path& path, std::string& bytes) {
  bytes = read_file_bytes(path);
  try {
    return json::parse(bytes);
  } catch (const json::parse_error& e) {
    fail(path.string(), ": not valid JSON: ", e.what());
  } catch (const json::out_of_range& e) {  // a number beyond 64 bits or double (error 406)
    fail(path.string(), ": ", e.what());
  }
}

class Reader {
 public:
  explicit Reader(std::filesystem::path file) : file_(std::move(file)) {}

  template <class... A>
  [[noreturn]] void bad(std::string_view key, A&&... parts) const {
    fail(file_.string(), ": ", key, ": ", std::forward<A>(parts)...);
  }
  const json& object(const json& j, std::string_view key) const {
    if (!j.is_object()) bad(key, "expected an object, got ", describe(j));
    return j;
  }
  const json* find(const json& obj, const char* name) const {
    const auto it = obj.find(name);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  const json& require(const json& obj, const char* name, std::string_view key) const {
    const json* v = find(obj, name);
    if (!v) bad(key, "missing (required)");
    return *v;
  }
  bool boolean(const json& obj, const char* name, std::string_view parent, bool def) const {
    const json* v = find(obj, name);
    if (!v) return def;
    if (!v->is_boolean()) bad(cat(parent, name), "expected true or false, got ", describe(*v));
    return v->get<bool>();
  }
  std::string string(const json& v, std::string_view key) const {
    if (!v.is_string()) bad(key, "expected a string, got ", describe(v));
    return v.get<std::string>();
  }
  int32_t id(const json& v, std::string_view key) const {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
      bad(key, "expected an id (an integer in [0, 2^31)), got ", describe(v));
    }
    return static_cast<int32_t>(v.get<int64_t>());
  }
  const std::filesystem::path& file() const { return file_; }

 private:
  std::filesystem::path file_;
};

// Ids by their tokenizer.json spelling; the views point into the parsed JSON's keys.
using SpelledIds = std::unordered_map<std::string_view, int32_t>;

void read_vocab(const Reader& r, const json& model, QwenParts& p, SpelledIds& spelled_ids) {
  const json& vocab = r.require(model, "vocab", "model.vocab");
  if (!vocab.is_object()) r.bad("model.vocab", "expected an object of token -> id, got ", describe(vocab));
  p.vocab.reserve(vocab.size());
  spelled_ids.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const std::string& spelled = it.key();
    const std::string key = cat("model.vocab[\"", spelled, "\"]");
    const int32_t id = r.id(it.value(), key);
    std::optional<std::string> bytes = byte_level_to_bytes(spelled);
    if (!bytes) r.bad(key, "is not a byte-level token (characters outside GPT-2's byte alphabet)");
    if (bytes->empty()) r.bad(key, "the empty token");
    if (static_cast<size_t>(id) >= p.id_bytes.size()) {
      p.id_bytes.resize(std::max(static_cast<size_t>(id) + 1, vocab.size()));
      p.assigned.resize(p.id_bytes.size(), 0);
    }
    if (p.assigned[static_cast<size_t>(id)]) {
      r.bad("model.vocab", "id ", id, " is given to both \"", bytes_to_byte_level(p.id_bytes[static_cast<size_t>(id)]),
            "\" and \"", spelled, "\"");
    }
    p.id_bytes[static_cast<size_t>(id)] = *bytes;
    p.assigned[static_cast<size_t>(id)] = 1;
    p.vocab.emplace(std::move(*bytes), id);
    spelled_ids.emplace(spelled, id);
  }
  // Trailing ids that no token uses (the resize above may overshoot when ids have gaps).
  while (!p.assigned.empty() && !p.assigned.back()) {
    p.assigned.pop_back();
    p.id_bytes.pop_back();
  }
}

void read_merges(const Reader& r, const json& model, QwenParts& p, const SpelledIds& spelled_ids) {
  int32_t byte_ids[256];
  for (int b = 0; b < 256; ++b) {
    const auto it = p.vocab.find(std::string(1, static_cast<char>(b)));
    if (it == p.vocab.end()) {
      r.bad("model.vocab", "has no token for byte 0x", "0123456789ABCDEF"[b >> 4], "0123456789ABCDEF"[b & 15], " (\"",
            bytes_to_byte_level(std::string(1, static_cast<char>(b))), "\"): a byte-level vocabulary needs all 256");
    }
    byte_ids[b] = it->second;
  }
  p.bpe = std::make_unique<BpeModel>(std::span<const int32_t, 256>(byte_ids));
  const json& merges = r.require(model, "merges", "model.merges");
  if (!merges.is_array()) r.bad("model.merges", "expected an array, got ", describe(merges));
  std::string_view left, right;
  std::string joined;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    // Older files write "a b", newer ones ["a", "b"].
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos) {
        r.bad(cat("model.merges[", i, "]"), "expected two tokens separated by one space, got \"", s, "\"");
      }
      left = std::string_view(s).substr(0, sp);
      right = std::string_view(s).substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get_ref<const std::string&>();
      right = m[1].get_ref<const std::string&>();
    } else {
      r.bad(cat("model.merges[", i, "]"), "expected \"a b\" or [\"a\", \"b\"], got ", describe(m));
    }
    // The spelling is per byte, so the merged token's spelling is the two spellings joined.
    joined.assign(left);
    joined.append(right);
    auto lookup = [&](std::string_view spelled, const char* what) {
      const auto it = spelled_ids.find(spelled);
      if (it == spelled_ids.end()) {
        r.bad(cat("model.merges[", i, "]"), what, "\"", spelled, "\" is not in model.vocab");
      }
      return it->second;
    };
    const int32_t a = lookup(left, "");  // in this order: the first problem is reported
    const int32_t b = lookup(right, "");
    const int32_t merged = lookup(joined, "the merged token ");
    p.bpe->add_merge(a, b, merged);
  }
  p.bpe->finish();
}

void read_model(const Reader& r, const json& root, QwenParts& p) {
  const json& model = r.object(r.require(root, "model", "model"), "model");
  if (const json* t = r.find(model, "type"); t && !(t->is_string() && *t == "BPE")) {
    r.bad("model.type", "expected \"BPE\", got ", describe(*t));
  }
  if (const json* d = r.find(model, "dropout"); d && !(d->is_number() && d->get<double>() == 0.0)) {
    r.bad("model.dropout", "BPE dropout is not supported (expected null), got ", describe(*d));
  }
  for (const char* name : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* v = r.find(model, name); v && !(v->is_string() && v->get_ref<const std::string&>().empty())) {
      r.bad(cat("model.", name), "not supported (expected \"\" or null), got ", describe(*v));
    }
  }
  if (r.boolean(model, "byte_fallback", "model.", false)) {
    r.bad("model.byte_fallback", "not supported by a byte-level BPE (expected false)");
  }
  p.ignore_merges = r.boolean(model, "ignore_merges", "model.", false);
  SpelledIds spelled_ids;
  read_vocab(r, model, p, spelled_ids);
  read_merges(r, model, p, spelled_ids);
}

void read_normalizer_and_split(const Reader& r, const json& root, QwenParts& p) {
  const json* norm = r.find(root, "normalizer");
  if (!norm) {
    p.nfc = false;
  } else if (norm->is_object() && norm->value("type", json()) == "NFC") {
    p.nfc = true;
  } else {
    r.bad("normalizer", "only {\"type\": \"NFC\"} or null is supported, got ", describe(*norm));
  }
  const json* pre = r.find(root, "pre_tokenizer");
  const auto is_qwen_split = [](const json& s) {
    return s.is_object() && s.value("type", json()) == "Split" && s.contains("pattern") && s["pattern"].is_object() &&
           s["pattern"].value("Regex", json()) == kQwen2Regex && s.value("behavior", json()) == "Isolated" &&
           s.value("invert", json(false)) == false;
  };
  const auto is_plain_byte_level = [](const json& s) {
    return s.is_object() && s.value("type", json()) == "ByteLevel" && s.value("use_regex", json(true)) == false &&
           s.value("add_prefix_space", json(false)) == false;
  };
  const bool ok = pre && pre->is_object() && pre->value("type", json()) == "Sequence" &&
                  pre->contains("pretokenizers") && (*pre)["pretokenizers"].is_array() &&
                  (*pre)["pretokenizers"].size() == 2 && is_qwen_split((*pre)["pretokenizers"][0]) &&
                  is_plain_byte_level((*pre)["pretokenizers"][1]);
  if (!ok) {
    r.bad("pre_tokenizer",
          "only the Qwen2 pre-tokenizer is supported (Sequence of Split with the Qwen2 regex, behavior Isolated, then "
          "ByteLevel with use_regex false and add_prefix_space false), got ",
          pre ? describe(*pre) : std::string("null"));
  }
  if (const json* dec = r.find(root, "decoder");
      dec && !(dec->is_object() && dec->value("type", json()) == "ByteLevel")) {
    r.bad("decoder", "expected {\"type\": \"ByteLevel\"} or null, got ", describe(*dec));
  }
}

AddedToken read_added_token(const Reader& r, const json& t, const std::string& key, const json* id_value) {
  r.object(t, key);
  AddedToken a;
  a.id = r.id(id_value ? *id_value : r.require(t, "id", key + ".id"), key + ".id");
  a.content = r.string(r.require(t, "content", key + ".content"), key + ".content");
  if (a.content.empty()) r.bad(key + ".content", "an added token cannot be empty");
  a.special = r.boolean(t, "special", key + ".", false);
  a.single_word = r.boolean(t, "single_word", key + ".", false);
  a.lstrip = r.boolean(t, "lstrip", key + ".", false);
  a.rstrip = r.boolean(t, "rstrip", key + ".", false);
  a.normalized = r.boolean(t, "normalized", key + ".", !a.special);  // HF's default
  return a;
}

void read_added_tokens(const Reader& r, const json& root, QwenParts& p) {
  const json* added = r.find(root, "added_tokens");
  if (!added) return;
  if (!added->is_array()) r.bad("added_tokens", "expected an array, got ", describe(*added));
  for (size_t i = 0; i < added->size(); ++i) {
    p.added.push_back(read_added_token(r, (*added)[i], cat("added_tokens[", i, "]"), nullptr));
  }
}

// tokenizer_config.json: decode clean-up, the eos token, and added tokens that tokenizer.json
// lacks (added_tokens_decoder). A token given differently in the two files is an error.
std::string read_config(const Reader& r, const json& cfg, QwenParts& p) {
  r.object(cfg, "(top level)");
  p.clean_up_spaces = r.boolean(cfg, "clean_up_tokenization_spaces", "", false);
  std::string eos;
  if (const json* e = r.find(cfg, "eos_token")) {
    if (e->is_string()) {
      eos = e->get<std::string>();
    } else if (e->is_object()) {
      eos = r.string(r.require(*e, "content", "eos_token.content"), "eos_token.content");
    } else {
      r.bad("eos_token", "expected a string or {\"content\": ...}, got ", describe(*e));
    }
  }
  if (const json* dec = r.find(cfg, "added_tokens_decoder")) {
    if (!dec->is_object()) r.bad("added_tokens_decoder", "expected an object of id -> token, got ", describe(*dec));
    for (const auto& [id_text, t] : dec->items()) {
      const std::string key = cat("added_tokens_decoder[\"", id_text, "\"]");
      json id_value;
      try {
        size_t used = 0;
        const long long v = std::stoll(id_text, &used);
        if (used != id_text.size()) throw std::invalid_argument("trailing");
        id_value = v;
      } catch (const std::exception&) {
        r.bad(key, "the key must be a decimal id");
      }
      AddedToken a = read_added_token(r, t, key, &id_value);
      const auto same_id =
          std::find_if(p.added.begin(), p.added.end(), [&](const AddedToken& x) { return x.id == a.id; });
      if (same_id == p.added.end()) {
        p.added.push_back(std::move(a));
      } else if (same_id->content != a.content) {
        r.bad(key, "content \"", a.content, "\" differs from tokenizer.json's \"", same_id->content, "\" for id ",
              a.id);
      }
    }
  }
  return eos;
}

void finish_ids(const std::filesystem::path& json_path, const std::string& eos, QwenParts& p) {
  std::sort(p.added.begin(), p.added.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  for (size_t i = 1; i < p.added.size(); ++i) {
    LLM_CHECK(p.added[i].id != p.added[i - 1].id, json_path.string(), ": added_tokens: id ", p.added[i].id,
              " is given to both \"", p.added[i - 1].content, "\" and \"", p.added[i].content, "\"");
  }
  for (const AddedToken& t : p.added) {
    if (static_cast<size_t>(t.id) >= p.id_bytes.size()) {
      p.id_bytes.resize(static_cast<size_t>(t.id) + 1);
      p.assigned.resize(static_cast<size_t>(t.id) + 1, 0);
    }
    p.id_bytes[static_cast<size_t>(t.id)] = t.content;  // an added token overrides a vocab entry
    p.assigned[static_cast<size_t>(t.id)] = 1;
  }
  auto find = [&](const std::string& content) -> int32_t {
    for (const AddedToken& t : p.added) {
      if (t.content == content) return t.id;
    }
    const auto it = p.vocab.find(content);
    return it == p.vocab.end() ? -1 : it->second;
  };
  p.eot_id = find("<|endoftext|>");
  if (p.eot_id < 0 && !eos.empty()) p.eot_id = find(eos);
  LLM_CHECK(p.eot_id >= 0, json_path.string(),
            ": no <|endoftext|> token and no eos_token in tokenizer_config.json: the end-of-text id is unknown");
  for (const std::string& s : {std::string("<|endoftext|>"), std::string("<|im_end|>"), eos}) {
    const int32_t id = s.empty() ? -1 : find(s);
    if (id >= 0 && std::find(p.stop_ids.begin(), p.stop_ids.end(), id) == p.stop_ids.end()) p.stop_ids.push_back(id);
  }
}

}  // namespace

std::string_view qwen2_split_regex() { return kQwen2Regex; }

std::unique_ptr<Tokenizer> qwen_tokenizer_from_json(std::string json_bytes, std::optional<std::string> config_bytes,
                                                    const std::filesystem::path& json_path) {
  QwenParts p;
  p.json_path = json_path;
  json root;
  try {
    root = json::parse(json_bytes);
  } catch (const json::parse_error& e) {
    fail(json_path.string(), ": not valid JSON at byte ", e.byte);
  }
  p.json_bytes = std::move(json_bytes);
  const Reader r(json_path);
  r.object(root, "(top level)");
  read_model(r, root, p);
  read_normalizer_and_split(r, root, p);
  read_added_tokens(r, root, p);
  std::string eos;
  if (config_bytes) {
    json cfg;
    try {
      cfg = json::parse(*config_bytes);
    } catch (const json::parse_error& e) {
      fail(json_path.string(), ": tokenizer_config: not valid JSON at byte ", e.byte);
    }
    eos = read_config(r, cfg, p);
    p.config_bytes = std::move(config_bytes);
  }
  finish_ids(json_path, eos, p);
  return std::make_unique<QwenTokenizer>(std::move(p));
}

std::unique_ptr<Tokenizer> load_qwen_tokenizer(const std::filesystem::path& json_path) {
  QwenParts p;
  p.json_path = json_path;
  const json root = parse_json_file(json_path, p.json_bytes);
  const Reader r(json_path);
  r.object(root, "(top level)");
  read_model(r, root, p);
  read_normalizer_and_split(r, root, p);
  read_added_tokens(r, root, p);
  std::string eos;
  const std::filesystem::path config_path = json_path.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_path)) {
    std::string bytes;
    const json cfg = parse_json_file(config_path, bytes);
    eos = read_config(Reader(config_path), cfg, p);
    p.config_bytes = std::move(bytes);
  }
  finish_ids(json_path, eos, p);
  return std::make_unique<QwenTokenizer>(std::move(p));
}

}  // namespace llm::tok
