// Corpus preparation: input files -> documents -> token ids -> train/validation shards and a
// manifest (docs/data.md). The library side of `llmtrain prepare` and of the trainer's automatic
// preparation when shards are missing.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>

#include "llm/data_config.h"
#include "llm/manifest.h"
#include "llm/tokenizer.h"

namespace llm {

struct PrepareOptions {
  std::ostream* log = nullptr;     // progress and a summary; nullptr: quiet
  bool tty = false;                // log is a terminal: one progress line updated in place with '\r'
  bool force = false;              // prepare even when the manifest says the shards are up to date
  double progress_interval_s = 0;  // 0: 0.2 s on a terminal, 10 s otherwise
  // Logging to stderr, in place when stderr is a terminal.
  static PrepareOptions to_stderr();
};

struct PrepareResult {
  bool up_to_date = false;  // nothing was done: the existing shards match inputs and config
  Manifest manifest;
  double seconds = 0;
  uint64_t bytes = 0, tokens = 0, documents = 0;  // read and written by this call (0 when up to date)
};

// Tokenises the corpus of `data` with `tokenizer` into data.out_dir. The directory is replaced
// whole when the new shards are complete (an interrupted run leaves the old one, or none); a
// non-empty out_dir that holds no manifest.json is never replaced. Documents are read in batches
// of data.batch_bytes and encoded on data.threads threads. Errors: a missing input, an input that
// yields no files, no documents at all, a malformed JSONL line (file:line).
PrepareResult prepare_corpus(const DataConfig& data, const Tokenizer& tokenizer, const PrepareOptions& opt = {});

// Loads the configured tokenizer; a missing sentencepiece model with tokenizer.train set is
// first trained on the corpus of `data` and written to tokenizer.path.
std::unique_ptr<Tokenizer> load_or_train_tokenizer(const TokenizerConfig& tokenizer, const DataConfig& data,
                                                   const PrepareOptions& opt = {});

// load_or_train_tokenizer, then prepare_corpus (recording the tokenizer section in the manifest).
PrepareResult prepare_corpus(const DataConfig& data, const TokenizerConfig& tokenizer, const PrepareOptions& opt = {});

// True when data.out_dir holds a complete preparation of the current inputs with this tokenizer
// and settings (what prepare_corpus checks before doing nothing).
bool corpus_up_to_date(const DataConfig& data, const Tokenizer& tokenizer);

// Checks a prepared directory whole (llmtrain prepare --verify): every shard of manifest.json
// opens (header checksum, sizes, tokenizer fingerprint), has the manifest's counts, and holds only
// ids below the vocab size. Returns the tokens checked; the first problem is an error naming the
// file (and byte offset). log: one line per shard, or nullptr.
uint64_t verify_prepared_corpus(const std::filesystem::path& data_dir, std::ostream* log);

}  // namespace llm
