// The "tokenizer" and "data" sections of a config: which tokenizer turns text into ids (and how to
// train one when it is missing), and which files make the corpus and where its shards go.
// The sequence length is not here: the train section owns it and hands it to the loader.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "llm/config_reader.h"

namespace llm {

// "tokenizer.train": options for training a sentencepiece model from the corpus.
struct SentencePieceTrainConfig {
  int vocab_size = 8192;
  std::string model_type = "bpe";  // bpe | unigram
  bool byte_fallback = true;
  double character_coverage = 0.9995;
  std::vector<std::string> special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  int64_t max_sentences = 2'000'000;  // documents sampled for training
  int max_sentence_length = 16384;    // bytes; longer documents are cut for training only
  int threads = 0;                    // 0: all cores
};

struct TokenizerConfig {
  std::string kind = "sentencepiece";  // sentencepiece | qwen-bpe
  // sentencepiece: the .model file; qwen-bpe: tokenizer.json or the directory holding it.
  std::filesystem::path path;
  // sentencepiece only: when set and `path` does not exist, preparation trains a model on the
  // corpus and writes it to `path`. Without it a missing model is an error.
  bool train_if_missing = false;
  SentencePieceTrainConfig train;
};

// One entry of "data.inputs".
struct DataInput {
  std::string path;             // a file, a directory (walked recursively) or a glob(3) pattern; absolute
  std::string format = "text";  // text | jsonl | chat (one conversation per JSONL line)
  std::string field = "text";   // jsonl: the string field holding a document
  // text: absent means one document per file; otherwise a line equal to this string (trailing
  // whitespace ignored) ends a document, so "" splits at blank lines and "%" reads fortune files.
  bool has_separator = false;
  std::string doc_separator;
  // text: remove ANSI escape sequences and backspace overstrikes (fortune files use both).
  bool strip_terminal_codes = false;
  // fnmatch(3) patterns matched against each file's and directory's name found by walking a
  // directory or a glob; matches are skipped (e.g. "*.dat").
  std::vector<std::string> exclude;
};

struct DataConfig {
  std::vector<DataInput> inputs;
  std::filesystem::path out_dir;           // shards and manifest.json; absolute
  int64_t shard_tokens = 1LL << 25;        // tokens per shard (the last one may hold fewer)
  double val_fraction = 0.01;              // share of documents held out for validation
  int64_t val_max_tokens = 0;              // cap on validation tokens (0: none)
  uint64_t seed = 1234;                    // decides the validation split and the sample order
  int threads = 0;                         // tokenisation threads, 0: all cores
  int64_t batch_bytes = 4LL << 20;         // text read per tokenisation batch
  int64_t max_document_bytes = 1LL << 20;  // longer documents are encoded in pieces (docs/data.md)
  int prefetch_batches = 4;                // loader: batches prepared ahead by its thread
  // Loader: "document" restarts positions and attention at every document (conversation) of a
  // row; "causal" lets a row attend to all of it; "auto" is document for chat data, else causal.
  std::string attention = "auto";
  // Chat data: several conversations per row (true) or one, padded (false).
  bool packing = true;
};

// Reads the "tokenizer" section (r is that section; finish() is called). Relative paths resolve
// against base_dir, the directory of the config file.
TokenizerConfig parse_tokenizer_config(ConfigReader& r, const std::filesystem::path& base_dir);

// Reads the "data" section. It takes the section's JSON because "inputs" is a list of objects,
// which ConfigReader cannot hand out; every object is still read strictly with a ConfigReader
// whose path is "data.inputs[i]". `where` is the section's key path for messages.
DataConfig parse_data_config(const nlohmann::json& section, const std::filesystem::path& base_dir,
                             const std::string& where = "data");

// The effective configuration, in the same shape the parsers read (paths absolute).
nlohmann::json to_json(const TokenizerConfig& c);
nlohmann::json to_json(const DataConfig& c);
nlohmann::json to_json(const DataInput& in);

// Resolves p against base_dir when relative, and normalises it lexically.
std::filesystem::path resolve_path(const std::filesystem::path& base_dir, const std::filesystem::path& p);

}  // namespace llm
