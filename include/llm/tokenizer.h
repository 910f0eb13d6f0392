// Tokenizer: text <-> token ids. Two implementations: Qwen byte-level BPE read from an HF
// tokenizer.json, and sentencepiece (trained here from a corpus: the from-scratch path).
// docs/tokenizers.md describes the pre-tokenizer rules, the decode replacement policy and the
// fingerprint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
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
  // recognised and become their single ids. Thread-safe: encode() may run on many threads at
  // once. Bytes that are not valid UTF-8 are not an error: the Qwen tokenizer keeps them as
  // their own byte tokens (lossless), sentencepiece maps them to byte pieces or <unk>.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Text of ids; bytes that do not form valid UTF-8 become U+FFFD, as HF's decode does (one
  // U+FFFD per maximal ill-formed subpart). An id outside [0, vocab_size()) is an error.
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
  // Id of an added/special token or of a vocabulary piece, -1 when absent. Qwen pieces are
  // spelled as in tokenizer.json ("Ġthe"); sentencepiece pieces as in the model ("▁the").
  virtual int32_t token_id(std::string_view piece) const = 0;
  // True for special tokens (Qwen: added tokens flagged "special"; sentencepiece: control,
  // unknown and user-defined pieces), which chat/generation code may want to hide.
  virtual bool is_special(int32_t id) const = 0;
  // A stable hex digest of everything that decides the ids (vocab, merges, added tokens,
  // normaliser): shards record it, and a mismatch with the configured tokenizer is an error.
  // 32 hex digits (FNV-1a 128 over a canonical serialisation; docs/tokenizers.md).
  virtual std::string fingerprint() const = 0;
  // "qwen-bpe" or "sentencepiece".
  virtual std::string kind() const = 0;
  // Copies the files that define this tokenizer into dir (tokenizer.json and
  // tokenizer_config.json, or tokenizer.model), so a checkpoint is self-contained. Each file is
  // written atomically (temp + rename); dir must exist.
  virtual void save(const std::filesystem::path& dir) const = 0;
};

// Loads a tokenizer from a file or a directory: tokenizer.json (+ tokenizer_config.json beside
// it) or a sentencepiece model (tokenizer.model / *.model). Errors name the file and what is wrong.
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

// ---- batch encoding -----------------------------------------------------------------------------

// Encodes each text on up to `threads` OpenMP threads (<= 0: all available). Result i belongs to
// texts[i]; the ids do not depend on the thread count.
std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& tok, std::span<const std::string> texts, int threads);

// ---- the `llmtrain tokenize` command's library half ----------------------------------------------

struct TokenizeStreamOptions {
  // Input lines are JSON strings (otherwise raw lines: only the "\n" that ends each is removed).
  bool jsonl = false;
  // Input lines are JSON arrays of ids; output is each decoded text as a JSON string.
  bool decode = false;
  int threads = 0;  // <= 0: all available
};

// Reads `in` line by line and writes one line per input line: the JSON array of the line's ids
// (or, with decode, the decoded text as a JSON string). Lines are processed in blocks in parallel;
// output order equals input order. A bad line (not JSON, not a string / array of ids, an id out
// of range) is an llm::Error naming "line N"; lines before it have been written.
void tokenize_stream(const Tokenizer& tok, std::istream& in, std::ostream& out, const TokenizeStreamOptions& opt);

// ---- sentencepiece training -------------------------------------------------------------------

struct SentencePieceTrainOptions {
  int vocab_size = 8000;
  std::string model_type = "bpe";  // bpe | unigram
  // Characters outside the vocabulary become their UTF-8 bytes (<0x..> pieces) instead of <unk>.
  bool byte_fallback = true;
  double character_coverage = 0.9995;
  // Become user-defined pieces: always one id each, never split (e.g. <|endoftext|>).
  std::vector<std::string> special_tokens;
  // Training sentences sampled (documents are cut into lines first: see docs/tokenizers.md).
  int64_t max_sentences = 1000000;
  int max_sentence_length = 16384;  // bytes; longer lines are cut into pieces of this size
  int threads = 0;                  // <= 0: all available
};

// Trains a model on the documents produced by next_document (it fills doc and returns true, or
// returns false at the end) and writes it to model_out atomically (temp + rename). Errors
// (bad options, sentencepiece failures) name the option or model_out.
void train_sentencepiece(const std::function<bool(std::string& doc)>& next_document,
                         const SentencePieceTrainOptions& opt, const std::filesystem::path& model_out);

}  // namespace llm
