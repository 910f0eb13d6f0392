// export_gguf: a model directory (run, checkpoint or HF Qwen2) -> a GGUF file for llama.cpp.
// Metadata and tensor names follow llama.cpp's converter for the qwen2 architecture
// (convert_hf_to_gguf.py, gguf-py constants); the choice of types per tensor follows
// llama-quantize (llama-quant.cpp) without an importance matrix.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "tokenizer/sentencepiece_headers.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <sstream>

#include "llm/error.h"
#include "llm/gguf.h"
#include "llm/hf_weights.h"
#include "llm/inference.h"
#include "llm/model.h"
#include "llm/tokenizer.h"
#include "tokenizer/sp_model_proto.h"

namespace llm {

namespace fs = std::filesystem;

namespace {

// gguf-py TokenType
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// llama_ftype
uint32_t llama_ftype(GgufFileType t) {
  switch (t) {
    case GgufFileType::F32: return 0;
    case GgufFileType::F16: return 1;
    case GgufFileType::Q4_0: return 2;
    case GgufFileType::Q8_0: return 7;
    case GgufFileType::Q4_K_M: return 15;
    case GgufFileType::BF16: return 32;
  }
  return 0;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  LLM_CHECK(in.good(), p.string(), ": cannot be read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

nlohmann::json read_json(const fs::path& p) {
  try {
    return nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::parse_error& e) {
    fail(p.string(), ": not valid JSON at byte ", e.byte);
  }
}

// ---- tensor types ------------------------------------------------------------------------------

enum class Role { TokenEmbd, Output, AttnV, FfnDown, Other };

// llama-quantize's use_more_bits: the first and last eighth of the layers and every third between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

GgmlType weight_type(GgufFileType ft, Role role, int layer, int n_layer, int64_t ncols, bool tied) {
  GgmlType t = GgmlType::F32;
  switch (ft) {
    case GgufFileType::F32: return GgmlType::F32;
    case GgufFileType::F16: return GgmlType::F16;
    case GgufFileType::BF16: return GgmlType::BF16;
    case GgufFileType::Q8_0: t = GgmlType::Q8_0; break;
    case GgufFileType::Q4_0: t = GgmlType::Q4_0; break;
    case GgufFileType::Q4_K_M: t = GgmlType::Q4_K; break;
  }
  // The output layer (or the embedding that doubles as it) gets more bits, except in q8_0 files.
  if (role == Role::Output || (tied && role == Role::TokenEmbd)) {
    if (t != GgmlType::Q8_0) t = GgmlType::Q6_K;
  } else if (ft == GgufFileType::Q4_K_M && (role == Role::AttnV || role == Role::FfnDown) &&
             use_more_bits(layer, n_layer)) {
    t = GgmlType::Q6_K;
  }
  // Rows that are not whole super-blocks: llama-quantize's fallbacks.
  if (ncols % ggml_block_elems(t) != 0) {
    if (t == GgmlType::Q4_K) t = GgmlType::Q5_0;
    if (t == GgmlType::Q6_K) t = GgmlType::Q8_0;
    if (ncols % ggml_block_elems(t) != 0) t = GgmlType::F16;
  }
  return t;
}

// HF name -> GGUF name and role.
std::string gguf_name(const ParamInfo& p, Role& role) {
  role = Role::Other;
  if (p.name == "model.embed_tokens.weight") return role = Role::TokenEmbd, "token_embd.weight";
  if (p.name == "model.norm.weight") return "output_norm.weight";
  if (p.name == "lm_head.weight") return role = Role::Output, "output.weight";
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  for (const auto& [hf, gg] : kLayer) {
    if (p.layer >= 0 && p.name == ParamTable::layer_name(p.layer, hf)) {
      if (std::string_view(gg) == "attn_v.weight") role = Role::AttnV;
      if (std::string_view(gg) == "ffn_down.weight") role = Role::FfnDown;
      return cat("blk.", p.layer, ".", gg);
    }
  }
  fail("gguf export: no GGUF name for tensor ", p.name);
}

// ---- tokenizer metadata ------------------------------------------------------------------------

// llama.cpp's converter marks added tokens that look like <|...|> as control even when
// tokenizer.json does not flag them special (Qwen's <|fim_prefix|> and the like).
bool looks_special(const std::string& s) { return s.size() >= 4 && s.starts_with("<|") && s.ends_with("|>"); }

void add_qwen_vocab(GgufWriter& w, const fs::path& json_path, const Tokenizer& tok, int64_t n_vocab) {
  const nlohmann::json j = read_json(json_path);
  const std::string where = json_path.string();
  LLM_CHECK(j.is_object() && j.contains("model") && j["model"].is_object(), where, ": no \"model\" object");
  const auto& m = j["model"];
  LLM_CHECK(m.value("type", "") == "BPE", where, ": model.type is not \"BPE\"");
  LLM_CHECK(m.contains("vocab") && m["vocab"].is_object(), where, ": no model.vocab object");
  std::vector<std::string> tokens(static_cast<size_t>(n_vocab));
  std::vector<int32_t> types(static_cast<size_t>(n_vocab), 0);
  auto place = [&](int64_t id, const std::string& text, int32_t type, const char* what) {
    LLM_CHECK(id >= 0 && id < n_vocab, where, ": ", what, " \"", text, "\" has id ", id,
              ", outside the model's vocab_size ", n_vocab);
    tokens[static_cast<size_t>(id)] = text;
    types[static_cast<size_t>(id)] = type;
  };
  for (const auto& [text, id] : m["vocab"].items()) {
    LLM_CHECK(id.is_number_integer(), where, ": model.vocab[\"", text, "\"] is not an integer id");
    place(id.get<int64_t>(), text, kNormal, "token");
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      LLM_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_integer() && a.contains("content") &&
                    a["content"].is_string(),
                where, ": an added_tokens entry lacks an integer id or a string content");
      const std::string content = a["content"].get<std::string>();
      const bool special = a.value("special", false) || looks_special(content);
      place(a["id"].get<int64_t>(), content, special ? kControl : kUserDefined, "added token");
    }
  }
  for (int64_t i = 0; i < n_vocab; ++i) {
    if (types[static_cast<size_t>(i)] == 0) {
      tokens[static_cast<size_t>(i)] = cat("[PAD", i, "]");
      types[static_cast<size_t>(i)] = kUnused;
    }
  }
  std::vector<std::string> merges;
  if (m.contains("merges") && m["merges"].is_array()) {
    merges.reserve(m["merges"].size());
    for (const auto& e : m["merges"]) {
      if (e.is_string()) {
        merges.push_back(e.get<std::string>());
      } else {
        LLM_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(), where, ": model.merges entry ",
                  merges.size(), " is neither \"a b\" nor [\"a\", \"b\"]");
        merges.push_back(e[0].get<std::string>() + " " + e[1].get<std::string>());
      }
    }
  }
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "qwen2");
  w.add_array("tokenizer.ggml.tokens", tokens);
  w.add_array("tokenizer.ggml.token_type", types);
  w.add_array("tokenizer.ggml.merges", merges);
  const auto eot = static_cast<uint32_t>(tok.eot_id());
  w.add_u32("tokenizer.ggml.eos_token_id", eot);
  w.add_u32("tokenizer.ggml.padding_token_id", eot);
  w.add_u32("tokenizer.ggml.bos_token_id", eot);
  w.add_bool("tokenizer.ggml.add_bos_token", false);
}

void add_sentencepiece_vocab(GgufWriter& w, const fs::path& model_path, const Tokenizer& tok, int64_t n_vocab) {
  const std::string bytes = read_file(model_path);
  sentencepiece::SentencePieceProcessor sp;
  const auto status = sp.LoadFromSerializedProto(bytes);
  LLM_CHECK(status.ok(), model_path.string(), ": not a sentencepiece model: ", status.ToString());
  const auto kinds = tok::sp_piece_types(bytes);
  const int n = sp.GetPieceSize();
  LLM_CHECK(kinds && static_cast<int>(kinds->size()) == n, model_path.string(), ": its piece list cannot be read");
  LLM_CHECK(n <= n_vocab, model_path.string(), ": ", n, " pieces, more than the model's vocab_size ", n_vocab);
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int i = 0; i < n; ++i) {
    tokens.push_back(sp.IdToPiece(i));
    scores.push_back(sp.GetScore(i));
    types.push_back(static_cast<int32_t>((*kinds)[static_cast<size_t>(i)]));  // sentencepiece's types are GGUF's
  }
  for (int64_t i = n; i < n_vocab; ++i) {  // embedding rows beyond the tokenizer, as the converter pads
    tokens.push_back(cat("[PAD", i, "]"));
    scores.push_back(-1000.0f);
    types.push_back(kUnused);
  }
  std::vector<std::string> first;
  LLM_CHECK(sp.Encode("a", &first).ok(), model_path.string(), ": sentencepiece cannot encode \"a\"");
  const bool dummy_prefix = !first.empty() && first[0].starts_with("\xE2\x96\x81");
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string("tokenizer.ggml.pre", "default");
  w.add_array("tokenizer.ggml.tokens", tokens);
  w.add_array("tokenizer.ggml.scores", scores);
  w.add_array("tokenizer.ggml.token_type", types);
  if (sp.bos_id() >= 0) w.add_u32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(sp.bos_id()));
  w.add_u32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(tok.eot_id()));
  if (sp.unk_id() >= 0) w.add_u32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(sp.unk_id()));
  if (sp.pad_id() >= 0) w.add_u32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(sp.pad_id()));
  w.add_bool("tokenizer.ggml.add_bos_token", false);  // our models are trained without BOS
  w.add_bool("tokenizer.ggml.add_eos_token", false);
  w.add_bool("tokenizer.ggml.add_space_prefix", dummy_prefix);
}

// The chat template: the model's own (tokenizer_config.json), else Qwen2.5's ChatML one when the
// tokenizer has the ChatML tokens.
void add_chat_template(GgufWriter& w, const ModelFiles& f, const Tokenizer& tok) {
  for (const fs::path& p : {f.tokenizer.parent_path() / "tokenizer_config.json", f.dir / "tokenizer_config.json"}) {
    if (!fs::exists(p)) continue;
    const nlohmann::json j = read_json(p);
    if (j.is_object() && j.contains("chat_template") && j["chat_template"].is_string()) {
      w.add_string("tokenizer.chat_template", j["chat_template"].get<std::string>());
      return;
    }
    break;
  }
  if (tok.token_id("<|im_start|>") >= 0 && tok.token_id("<|im_end|>") >= 0) {
    w.add_string("tokenizer.chat_template", kQwen25ChatTemplate);
  }
}

// The name a user would recognise: the directory they named (a run's, not "latest").
std::string model_name(const fs::path& given) {
  fs::path p = given.lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  std::string name = p.filename().string();
  if (name == "latest" || name.starts_with("step_")) name = p.parent_path().filename().string() + "/" + name;
  return name.empty() ? "model" : name;
}

}  // namespace

std::string gguf_tensor_name(const ParamInfo& p) {
  Role role;
  return gguf_name(p, role);
}

GgmlType gguf_tensor_type(GgufFileType type, const ModelConfig& cfg, const ParamInfo& p) {
  Role role;
  gguf_name(p, role);
  if (p.shape.size() == 1) return GgmlType::F32;
  return weight_type(type, role, p.layer, static_cast<int>(cfg.num_hidden_layers), p.shape.back(),
                     cfg.tie_word_embeddings);
}

GgufFileType parse_gguf_file_type(std::string_view s, std::string_view where) {
  std::string l(s);
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (GgufFileType t : {GgufFileType::F32, GgufFileType::F16, GgufFileType::BF16, GgufFileType::Q8_0,
                         GgufFileType::Q4_0, GgufFileType::Q4_K_M}) {
    if (l == gguf_file_type_name(t)) return t;
  }
  fail(where, ": \"", s, "\" is not one of: f32, f16, bf16, q8_0, q4_0, q4_k_m");
}

std::string_view gguf_file_type_name(GgufFileType t) {
  switch (t) {
    case GgufFileType::F32: return "f32";
    case GgufFileType::F16: return "f16";
    case GgufFileType::BF16: return "bf16";
    case GgufFileType::Q8_0: return "q8_0";
    case GgufFileType::Q4_0: return "q4_0";
    case GgufFileType::Q4_K_M: return "q4_k_m";
  }
  return "?";
}

GgufExportResult export_gguf(const fs::path& model_dir, const fs::path& out_file, GgufFileType type) {
  // The destination first: a mistake there should not cost a model load.
  LLM_CHECK(out_file.has_filename() && !fs::is_directory(out_file), out_file.string(),
            ": the output must be a file name, not a directory");
  const fs::path out_dir = out_file.parent_path().empty() ? fs::path(".") : out_file.parent_path();
  LLM_CHECK(fs::is_directory(out_dir), out_file.string(), ": the directory ", out_dir.string(), " does not exist");
  LLM_CHECK(::access(out_dir.c_str(), W_OK) == 0, out_file.string(), ": the directory ", out_dir.string(),
            " is not writable");

  const ModelFiles f = locate_model(model_dir);
  LLM_CHECK(!f.tokenizer.empty(), f.dir.string(),
            ": no tokenizer (tokenizer.json or a sentencepiece .model) beside the weights; a GGUF file needs one");
  const ModelConfig cfg = read_hf_config(f.dir / "config.json");
  cfg.validate((f.dir / "config.json").string());
  const auto tok = load_tokenizer(f.tokenizer);
  LLM_CHECK(tok->vocab_size() <= cfg.vocab_size, f.tokenizer.string(), ": the tokenizer has ", tok->vocab_size(),
            " ids, more than the model's vocab_size ", cfg.vocab_size);
  const ParamTable table(cfg);
  auto weights = std::make_shared<const std::vector<float>>(read_model_weights(f.dir, table, cfg));

  GgufWriter w;
  w.add_string("general.architecture", "qwen2");
  w.add_string("general.type", "model");
  w.add_string("general.name", model_name(model_dir));
  w.add_string("general.description", cat("Qwen2 model exported by llmtrain export (", gguf_file_type_name(type), ")"));
  w.add_u32("general.file_type", llama_ftype(type));
  w.add_u32("qwen2.context_length", static_cast<uint32_t>(cfg.max_position_embeddings));
  w.add_u32("qwen2.embedding_length", static_cast<uint32_t>(cfg.hidden_size));
  w.add_u32("qwen2.block_count", static_cast<uint32_t>(cfg.num_hidden_layers));
  w.add_u32("qwen2.feed_forward_length", static_cast<uint32_t>(cfg.intermediate_size));
  w.add_u32("qwen2.attention.head_count", static_cast<uint32_t>(cfg.num_attention_heads));
  w.add_u32("qwen2.attention.head_count_kv", static_cast<uint32_t>(cfg.num_key_value_heads));
  w.add_f32("qwen2.rope.freq_base", static_cast<float>(cfg.rope_theta));
  w.add_f32("qwen2.attention.layer_norm_rms_epsilon", static_cast<float>(cfg.rms_norm_eps));

  if (tok->kind() == "qwen-bpe") {
    add_qwen_vocab(w, f.tokenizer, *tok, cfg.vocab_size);
  } else if (tok->kind() == "sentencepiece") {
    add_sentencepiece_vocab(w, f.tokenizer, *tok, cfg.vocab_size);
  } else {
    fail(f.tokenizer.string(), ": a ", tok->kind(), " tokenizer cannot be written to GGUF");
  }
  add_chat_template(w, f, *tok);

  GgufExportResult r;
  r.file = out_file;
  for (const ParamInfo& p : table.params()) {
    Role role;
    const std::string name = gguf_name(p, role);
    const int64_t ncols = p.shape.back();
    const GgmlType t = gguf_tensor_type(type, cfg, p);
    ++r.tensors_by_type[std::string(ggml_type_name(t))];
    const int64_t rows = p.numel / ncols, offset = p.offset;
    const size_t row_bytes = ggml_row_bytes(t, ncols);
    w.add_tensor(name, p.shape, t, [weights, offset, rows, ncols, row_bytes, t] {
      std::vector<uint8_t> out(static_cast<size_t>(rows) * row_bytes);
      const float* src = weights->data() + offset;
#pragma omp parallel for schedule(static)
      for (int64_t r2 = 0; r2 < rows; ++r2) {
        ggml_quantize(t, src + r2 * ncols, ncols, out.data() + static_cast<size_t>(r2) * row_bytes);
      }
      return out;
    });
  }
  w.write(out_file);
  r.bytes = fs::file_size(out_file);
  return r;
}

}  // namespace llm
