// The Qwen byte-level BPE tokenizer (internal header). qwen_loader.cpp reads tokenizer.json and
// tokenizer_config.json into QwenParts; QwenTokenizer runs the pipeline
//   added tokens (raw text) -> NFC -> added tokens (normalized ones) -> Qwen2 split -> BPE.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "llm/tokenizer.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/unicode_tables.h"
#include "tokenizer/word_cache.h"

namespace llm::tok {

struct QwenParts {
  std::filesystem::path json_path;
  std::string json_bytes;                          // tokenizer.json as read (save() writes it back)
  std::optional<std::string> config_bytes;         // tokenizer_config.json, when present
  std::vector<std::string> id_bytes;               // raw bytes of each id (vocab and added tokens)
  std::vector<uint8_t> assigned;                   // id_bytes[i] belongs to a token
  std::unordered_map<std::string, int32_t> vocab;  // raw bytes -> id, base vocabulary only
  std::vector<AddedToken> added;
  std::unique_ptr<BpeModel> bpe;
  bool nfc = true;
  bool ignore_merges = false;
  bool clean_up_spaces = false;  // tokenizer_config.json clean_up_tokenization_spaces
  int32_t eot_id = -1;
  std::vector<int32_t> stop_ids;
};

class QwenTokenizer final : public Tokenizer {
 public:
  explicit QwenTokenizer(QwenParts parts);
  // The matchers point at tables_: the object stays where it was built.
  QwenTokenizer(const QwenTokenizer&) = delete;
  QwenTokenizer& operator=(const QwenTokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  std::string token_bytes(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(p_.id_bytes.size()); }
  int32_t eot_id() const override { return p_.eot_id; }
  std::vector<int32_t> stop_ids() const override { return p_.stop_ids; }
  int32_t token_id(std::string_view piece) const override;
  bool is_special(int32_t id) const override;
  std::string fingerprint() const override { return fingerprint_; }
  std::string kind() const override { return "qwen-bpe"; }
  void save(const std::filesystem::path& dir) const override;

 private:
  void encode_text(std::string_view text, std::vector<std::string_view>& pieces, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  void check_id(int32_t id, const char* where) const;
  std::string compute_fingerprint() const;

  QwenParts p_;
  UnicodeTables tables_;
  AddedTokenMatcher raw_matcher_;         // added tokens with normalized = false
  AddedTokenMatcher normalized_matcher_;  // added tokens with normalized = true
  std::unordered_map<std::string, int32_t> added_ids_;
  std::vector<uint8_t> special_;
  int32_t byte_ids_[256];
  WordCache cache_;
  std::string fingerprint_;
};

// Reads tokenizer.json (and tokenizer_config.json beside it when present).
std::unique_ptr<Tokenizer> load_qwen_tokenizer(const std::filesystem::path& json_path);

// The same from tokenizer.json's bytes (and tokenizer_config.json's, when given), built in memory
// (a GGUF file's vocabulary); json_path names them in errors.
std::unique_ptr<Tokenizer> qwen_tokenizer_from_json(std::string json_bytes, std::optional<std::string> config_bytes,
                                                    const std::filesystem::path& json_path);
// The Qwen2 pre-tokenizer's split regex, as tokenizer.json spells it.
std::string_view qwen2_split_regex();

// The HF/JavaScript clean_up_tokenization: drops the space before . ? ! , and contractions.
std::string clean_up_tokenization(std::string s);

}  // namespace llm::tok
