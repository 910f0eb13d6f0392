// tokenizer_from_gguf_vocab: GGUF tokenizer metadata -> our tokenizers (gguf_vocab.h). The inverse
// of the export in src/io/gguf_export.cpp (add_qwen_vocab, add_sentencepiece_vocab).
#include "tokenizer/gguf_vocab.h"

#include <nlohmann/json.hpp>

#include <cstring>

#include "llm/error.h"
#include "tokenizer/qwen_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/utf8.h"

namespace llm::tok {

namespace {

namespace fs = std::filesystem;

// gguf-py TokenType (the same values as sentencepiece's piece types).
enum : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

std::unique_ptr<Tokenizer> qwen_from_gguf(const GgufVocab& v, const fs::path& where) {
  LLM_CHECK(v.pre == "qwen2" || v.pre == "default" || v.pre.empty(), where.string(), ": tokenizer.ggml.pre is \"",
            v.pre, "\"; gpt2 vocabularies are read with the qwen2 pre-tokenizer only");
  // Byte-level BPE pieces are spelled in printable characters (UTF-8); anything else would stop
  // the tokenizer.json built below from being written.
  for (const auto& [list, key] : {std::pair{&v.tokens, "tokens"}, {&v.merges, "merges"}}) {
    for (size_t i = 0; i < list->size(); ++i) {
      LLM_CHECK(is_valid_utf8((*list)[i]), where.string(), ": tokenizer.ggml.", key, "[", i,
                "] is not valid UTF-8 (a gpt2 vocabulary spells bytes as printable characters)");
    }
  }
  // json, not ordered_json: the latter's object inserts are linear (quadratic over 150k tokens).
  nlohmann::json vocab = nlohmann::json::object();
  nlohmann::json added = nlohmann::json::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int32_t type = v.types.empty() ? kNormal : v.types[i];
    if (type == kUnused) continue;  // padding rows of the embedding ([PAD151643], ...)
    if (type == kControl || type == kUserDefined) {
      added.push_back({{"id", i},
                       {"content", v.tokens[i]},
                       {"special", type == kControl},
                       {"normalized", false},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false}});
    } else {
      vocab[v.tokens[i]] = i;
    }
  }
  const nlohmann::json root = {
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"byte_fallback", false}, {"vocab", vocab}, {"merges", v.merges}}},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", std::string(qwen2_split_regex())}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
  };
  nlohmann::json config = {{"clean_up_tokenization_spaces", false}};
  if (v.eos >= 0) config["eos_token"] = v.tokens[static_cast<size_t>(v.eos)];
  return qwen_tokenizer_from_json(root.dump(), config.dump(), where.string() + " (tokenizer.ggml.*)");
}

// ---- a sentencepiece ModelProto in protobuf's wire format ----

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void field_varint(std::string& out, int field, int64_t v) {
  varint(out, static_cast<uint64_t>(field) << 3);
  varint(out, static_cast<uint64_t>(v));  // negative int32: ten bytes, as protobuf writes them
}
void field_bytes(std::string& out, int field, std::string_view b) {
  varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  varint(out, b.size());
  out.append(b);
}
void field_float(std::string& out, int field, float f) {
  varint(out, (static_cast<uint64_t>(field) << 3) | 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

std::unique_ptr<Tokenizer> sentencepiece_from_gguf(const GgufVocab& v, const fs::path& where) {
  LLM_CHECK(v.scores.empty() || v.scores.size() == v.tokens.size(), where.string(), ": tokenizer.ggml.scores has ",
            v.scores.size(), " entries for ", v.tokens.size(), " tokens");
  auto piece_at = [&](int32_t id) { return id >= 0 ? v.tokens[static_cast<size_t>(id)] : std::string(); };
  std::string proto;
  bool byte_pieces = false;
  int32_t unk = v.unk;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const int32_t type = v.types.empty() ? kNormal : v.types[i];
    LLM_CHECK(type >= kNormal && type <= kByte, where.string(), ": tokenizer.ggml.token_type[", i, "] = ", type,
              " is not a token type (1 to 6)");
    byte_pieces = byte_pieces || type == kByte;
    if (type == kUnknown && unk < 0) unk = static_cast<int32_t>(i);
    std::string piece;
    field_bytes(piece, 1, v.tokens[i]);
    field_float(piece, 2, v.scores.empty() ? 0.0f : v.scores[i]);
    field_varint(piece, 3, type);
    field_bytes(proto, 1, piece);
  }
  LLM_CHECK(unk >= 0, where.string(), ": a llama (sentencepiece) vocabulary needs an unknown token; none is marked");
  std::string trainer;
  field_varint(trainer, 3, 2);  // model_type: BPE (llama.cpp merges by scores, as sentencepiece's BPE does)
  field_varint(trainer, 4, static_cast<int64_t>(v.tokens.size()));
  field_varint(trainer, 35, byte_pieces ? 1 : 0);  // byte_fallback
  field_varint(trainer, 40, unk);
  field_varint(trainer, 41, v.bos);
  field_varint(trainer, 42, v.eos);
  field_varint(trainer, 43, v.pad);
  field_bytes(trainer, 45, piece_at(unk));
  if (v.bos >= 0) field_bytes(trainer, 46, piece_at(v.bos));
  if (v.eos >= 0) field_bytes(trainer, 47, piece_at(v.eos));
  if (v.pad >= 0) field_bytes(trainer, 48, piece_at(v.pad));
  field_bytes(proto, 2, trainer);
  std::string normalizer;  // identity: llama.cpp does not normalise either
  field_bytes(normalizer, 1, "identity");
  field_varint(normalizer, 3, v.add_space_prefix ? 1 : 0);
  field_varint(normalizer, 4, 0);  // remove_extra_whitespaces
  field_varint(normalizer, 5, 1);  // escape_whitespaces
  field_bytes(proto, 3, normalizer);
  return sentencepiece_from_bytes(std::move(proto), where.string() + " (tokenizer.ggml.*)");
}

}  // namespace

std::unique_ptr<Tokenizer> tokenizer_from_gguf_vocab(const GgufVocab& v, const fs::path& where) {
  LLM_CHECK(!v.tokens.empty(), where.string(), ": tokenizer.ggml.tokens is empty");
  LLM_CHECK(v.types.empty() || v.types.size() == v.tokens.size(), where.string(), ": tokenizer.ggml.token_type has ",
            v.types.size(), " entries for ", v.tokens.size(), " tokens");
  const auto n = static_cast<int64_t>(v.tokens.size());
  for (const auto& [id, key] : {std::pair{v.eos, "eos"}, {v.bos, "bos"}, {v.unk, "unknown"}, {v.pad, "padding"}}) {
    LLM_CHECK(id >= -1 && id < n, where.string(), ": tokenizer.ggml.", key, "_token_id ", id,
              " is outside the vocabulary of ", n, " tokens");
  }
  if (v.model == "gpt2") return qwen_from_gguf(v, where);
  if (v.model == "llama") return sentencepiece_from_gguf(v, where);
  fail(where.string(), ": tokenizer.ggml.model \"", v.model, "\" is not supported (gpt2 with pre qwen2, or llama)");
}

}  // namespace llm::tok
