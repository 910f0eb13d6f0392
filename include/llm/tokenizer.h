// Tokenizer: text <-> token ids. Two implementations: Qwen byte-level BPE read from an HF
// tokenizer.json, and sentencepiece (trained here from a corpus: the from-scratch path).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace llm {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids of text. Added/special tokens written literally in the text (e.g. "<|im_start|>") are
  // recognised and become their single ids.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Text of ids; bytes that do not form valid UTF-8 become U+FFFD, as HF's decode does.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // The raw bytes one token stands for (may be part of a UTF-8 character): streaming output
  // concatenates these and prints only complete characters.
  virtual std::string token_bytes(int32_t id) const = 0;

  // Number of ids the tokenizer can produce (base vocabulary plus added tokens). A model's
  // embedding may have more rows (padding); never fewer.
  virtual int32_t vocab_size() const = 0;
  // The id that separates documents in shards (Qwen: <|endoftext|>, 151643).
  virtual int32_t eot_id() const = 0;
  // Ids that end generation (Qwen: <|endoftext|> and <|im_end|>).
  virtual std::vector<int32_t> stop_ids() const = 0;
  // Id of an added/special token or of a vocabulary piece, -1 when absent.
  virtual int32_t token_id(std::string_view piece) const = 0;
  // A stable hex digest of everything that decides the ids (vocab, merges, added tokens,
  // normaliser): shards record it, and a mismatch with the configured tokenizer is an error.
  virtual std::string fingerprint() const = 0;
  // "qwen-bpe" or "sentencepiece".
  virtual std::string kind() const = 0;
  // Copies the files that define this tokenizer into dir (tokenizer.json and
  // tokenizer_config.json, or tokenizer.model), so a checkpoint is self-contained.
  virtual void save(const std::filesystem::path& dir) const = 0;
};

// Loads a tokenizer from a file or a directory: tokenizer.json (+ tokenizer_config.json beside
// it) or a sentencepiece model (tokenizer.model / *.model). Errors name the file and what is wrong.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

}  // namespace llm
