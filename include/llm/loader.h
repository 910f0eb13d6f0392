// Reading token shards for training and evaluation (docs/data.md, "Sampling").
//
// Text: a split's shards are one token stream. Sample s is the window of seq_len + 1 tokens starting
// at s * seq_len: ids are its first seq_len tokens, targets its last seq_len. Windows overlap in
// one token only, so every token but the very first is a target exactly once per epoch; the
// stream's last (size - 1) % seq_len tokens are not used. N = (size - 1) / seq_len samples.
//
// Training order: global position p (counted over all ranks together) holds sample
// perm_{seed, epoch}(p mod N) of epoch p / N, where perm is a pseudo-random permutation of
// [0, N). One optimizer step consumes world * batch_size positions; rank r takes
// [step_start + r * B, step_start + (r + 1) * B). A step that runs past the end of an epoch
// takes its remaining samples from the next epoch's order, so every sample is used exactly once
// per epoch and no batch is ever short. The cursor is the global position of the next step: it
// does not depend on the rank or world size, so a run can resume with another world size.
//
// Chat data (shards with token flags, docs/fine-tuning-data.md): samples are rows of whole
// conversations instead of windows. In stream order, conversations are packed greedily into rows
// of seq_len tokens (with packing off, one per row), the rest of a row is padding (targets -1);
// a conversation longer than seq_len is skipped and counted. Targets are the next token within
// the conversation where it is flagged trained, else -1. The permutation then shuffles rows.
//
// Document attention (LoaderOptions::document_attention): each batch carries positions [B, T],
// the index of every token within its document (conversation, or for text the run after an
// end-of-text token, whose own target is then -1); the model restarts RoPE and the causal mask
// at every position 0.
#pragma once

#include <nlohmann/json.hpp>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "llm/shard.h"

namespace llm {

// One micro-batch on the host.
struct Batch {
  int64_t B = 0, T = 0;
  int64_t rows = 0;              // real samples; evaluation pads rows [rows, B) with targets -1
  std::vector<int32_t> ids;      // [B, T]
  std::vector<int32_t> targets;  // [B, T]; -1: no target (padding)
  uint64_t position = 0;         // global position of the step's first sample (all ranks)
  uint64_t epoch = 0;            // epoch of this rank's first sample
  // [B, T]: position of each token within its document; empty: every row is one causal
  // sequence from position 0 (document attention off).
  std::vector<int32_t> positions;
};

// Where training stands in the data: the next step starts at global sample position
// epoch * samples_per_epoch + sample. The other fields identify the sample order it refers to.
struct DataCursor {
  uint64_t epoch = 0;
  uint64_t sample = 0;
  uint64_t samples_per_epoch = 0;
  uint64_t seed = 0;
  int64_t seq_len = 0;

  uint64_t position() const { return epoch * samples_per_epoch + sample; }
  nlohmann::json to_json() const;
  // where: the key path or file for messages.
  static DataCursor from_json(const nlohmann::json& j, const std::string& where);
  bool operator==(const DataCursor&) const = default;
};

// The shards of one split, mapped, checked and read as one stream.
class TokenStream {
 public:
  // Opens the shards (empty expected_fingerprint: not checked). All must share one vocab size
  // and fingerprint.
  // eot_id: the end-of-text id (-1: unknown), which ends a text document under document attention.
  TokenStream(const std::vector<std::filesystem::path>& shards, const std::string& expected_fingerprint,
              int32_t eot_id = -1);
  // The "train" or "val" shards of a prepared directory; token counts are checked against
  // the manifest, and its fingerprint against expected_fingerprint.
  static TokenStream from_manifest(const std::filesystem::path& data_dir, const std::string& split,
                                   const std::string& expected_fingerprint);

  uint64_t size() const { return offsets_.empty() ? 0 : offsets_.back(); }
  uint32_t vocab_size() const { return vocab_size_; }
  // Tokens [begin, begin + out.size()); token ids are checked against the vocab size.
  void read(uint64_t begin, std::span<int32_t> out) const;
  // True when the shards carry token flags (chat data): all of them or none.
  bool has_token_flags() const { return flags_; }
  // Flags of tokens [begin, begin + out.size()) (kTokenTrained, kTokenDocStart).
  void read_flags(uint64_t begin, std::span<uint8_t> out) const;
  const std::vector<ShardFile>& shards() const { return shards_; }
  int32_t eot_id() const { return eot_id_; }

 private:
  // The shard holding stream position `begin` and the position within it.
  size_t shard_at(uint64_t begin) const;

  std::vector<ShardFile> shards_;
  std::vector<uint64_t> offsets_;  // offsets_[i]: stream position after shard i
  uint32_t vocab_size_ = 0;
  bool flags_ = false;
  int32_t eot_id_ = -1;
};

// The samples of a stream and how a row of a batch is filled from one (see the top of this file).
class SampleSet {
 public:
  SampleSet(const TokenStream& stream, int64_t seq_len, bool document_attention, bool packing);
  uint64_t size() const { return samples_; }
  // Fills row `row` of b (ids, targets, and positions when document attention is on) from sample s.
  void fill(const TokenStream& stream, Batch& b, int64_t row, uint64_t s) const;
  // Sizes b's vectors for [B, T]: ids 0, targets -1, positions 0.. T-1 per row when needed.
  void shape(Batch& b, int64_t B) const;

  bool packed() const { return packed_; }
  uint64_t skipped_documents() const { return skipped_docs_; }  // longer than seq_len (chat data)
  uint64_t skipped_tokens() const { return skipped_tokens_; }
  uint64_t trained_targets() const { return trained_; }  // targets >= 0 in one epoch (chat data)

 private:
  int64_t T_ = 0;
  bool document_ = false, packed_ = false;
  uint64_t samples_ = 0;
  std::vector<uint64_t> doc_start_;  // packed: kept documents' first tokens
  std::vector<uint32_t> doc_len_;    // packed: their lengths (<= T)
  std::vector<uint64_t> row_first_;  // packed: row r holds documents [row_first_[r], row_first_[r + 1])
  uint64_t skipped_docs_ = 0, skipped_tokens_ = 0, trained_ = 0;
};

struct LoaderOptions {
  int64_t batch_size = 1;  // B: samples per rank per step
  int64_t seq_len = 0;     // T
  int rank = 0;
  int world = 1;
  uint64_t seed = 0;
  int prefetch = 4;                 // batches prepared ahead by the background thread
  bool document_attention = false;  // batches carry positions (see the top of this file)
  bool packing = true;              // chat data: several conversations per row
};

class ShardLoader {
 public:
  ShardLoader(TokenStream stream, const LoaderOptions& opt);
  ~ShardLoader();  // stops and joins the prefetch thread, also mid-epoch
  ShardLoader(const ShardLoader&) = delete;
  ShardLoader& operator=(const ShardLoader&) = delete;

  // This rank's next micro-batch. Errors met by the prefetch thread (a bad token id) are
  // rethrown here, after the batches prepared before them.
  Batch next();
  // The position after the last batch next() returned (prefetched batches do not count).
  DataCursor cursor() const;
  // Continues from c; batch size and world size may differ from the run that saved it, the
  // seed, sequence length and samples per epoch may not.
  void restore(const DataCursor& c);

  uint64_t samples_per_epoch() const { return samples_; }
  const SampleSet& sample_set() const { return set_; }
  const TokenStream& stream() const { return stream_; }
  const LoaderOptions& options() const { return opt_; }

 private:
  void start();
  void stop() noexcept;
  void worker();
  Batch make_batch(uint64_t position) const;

  TokenStream stream_;
  LoaderOptions opt_;
  SampleSet set_;
  uint64_t samples_ = 0;
  uint64_t step_ = 0;  // positions per step: world * batch_size

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Batch> queue_;
  bool stopping_ = false;
  uint64_t produce_ = 0;  // position of the next batch the worker builds
  uint64_t consume_ = 0;  // position of the next batch next() returns
  std::exception_ptr error_;
  std::thread thread_;
};

struct EvalOptions {
  int64_t batch_size = 1;
  int64_t seq_len = 0;
  int rank = 0;
  int world = 1;
  int64_t max_batches = 0;  // per rank; 0: the whole split
  bool document_attention = false;
  bool packing = true;
};

// The validation split in a fixed order (no shuffle), split across ranks like training steps:
// batch i of rank r holds samples i * world * B + r * B + [0, B). Every rank gets the same
// number of batches (collectives stay matched); rows past the last sample are padding.
class EvalLoader {
 public:
  EvalLoader(TokenStream stream, const EvalOptions& opt);
  int64_t num_batches() const { return batches_; }
  uint64_t num_samples() const { return samples_; }
  Batch batch(int64_t i) const;
  const SampleSet& sample_set() const { return set_; }

 private:
  TokenStream stream_;
  EvalOptions opt_;
  SampleSet set_;
  uint64_t samples_ = 0;
  int64_t batches_ = 0;
};

}  // namespace llm
