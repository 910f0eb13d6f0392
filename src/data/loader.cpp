#include "llm/loader.h"

#include <algorithm>

#include "llm/error.h"
#include "llm/manifest.h"
#include "permutation.h"

namespace llm {

namespace fs = std::filesystem;

// ---- cursor -------------------------------------------------------------------------------------

nlohmann::json DataCursor::to_json() const {
  return {{"epoch", epoch},
          {"sample", sample},
          {"samples_per_epoch", samples_per_epoch},
          {"seed", seed},
          {"seq_len", seq_len}};
}

DataCursor DataCursor::from_json(const nlohmann::json& j, const std::string& where) {
  LLM_CHECK(j.is_object(), where, ": expected a data cursor object, got ", j.dump());
  const auto get = [&](const char* key) -> uint64_t {
    const bool ok =
        j.contains(key) && (j[key].is_number_unsigned() || (j[key].is_number_integer() && j[key].get<int64_t>() >= 0));
    LLM_CHECK(ok, where, ".", key, ": expected a non-negative integer, got ",
              j.contains(key) ? j[key].dump() : "nothing");
    return j[key].get<uint64_t>();
  };
  DataCursor c;
  c.epoch = get("epoch");
  c.sample = get("sample");
  c.samples_per_epoch = get("samples_per_epoch");
  c.seed = get("seed");
  c.seq_len = static_cast<int64_t>(get("seq_len"));
  for (const auto& [k, v] : j.items()) {
    LLM_CHECK(k == "epoch" || k == "sample" || k == "samples_per_epoch" || k == "seed" || k == "seq_len", where, ".", k,
              ": unknown key; valid keys: epoch, sample, samples_per_epoch, seed, seq_len");
  }
  LLM_CHECK(c.sample < c.samples_per_epoch, where, ": sample ", c.sample, " is not below samples_per_epoch ",
            c.samples_per_epoch);
  return c;
}

// ---- token stream ------------------------------------------------------------------------------

TokenStream::TokenStream(const std::vector<fs::path>& shards, const std::string& expected_fingerprint, int32_t eot_id)
    : eot_id_(eot_id) {
  uint64_t total = 0;
  for (const auto& p : shards) {
    ShardFile f(p, expected_fingerprint);
    if (shards_.empty()) flags_ = f.has_token_flags();
    LLM_CHECK(f.has_token_flags() == flags_, p, ": ", flags_ ? "has no" : "has", " token flags, unlike ",
              shards_.empty() ? p : shards_.front().path(), ": shards of one split must be prepared alike");
    if (!shards_.empty()) {
      const ShardHeader& first = shards_.front().header();
      LLM_CHECK(f.header().vocab_size == first.vocab_size && f.header().fingerprint == first.fingerprint, p,
                ": vocab size ", f.header().vocab_size, " and tokenizer fingerprint \"", f.header().fingerprint,
                "\" differ from ", shards_.front().path(), " (", first.vocab_size, ", \"", first.fingerprint,
                "\"): shards of one split must come from one tokenizer");
    }
    vocab_size_ = f.header().vocab_size;
    total += f.size();
    offsets_.push_back(total);
    shards_.push_back(std::move(f));
  }
}

TokenStream TokenStream::from_manifest(const fs::path& data_dir, const std::string& split,
                                       const std::string& expected_fingerprint) {
  const Manifest m = read_manifest(data_dir);
  const fs::path mp = data_dir / kManifestName;
  if (!expected_fingerprint.empty()) {
    LLM_CHECK(m.tokenizer_fingerprint == expected_fingerprint, mp, ": the shards were prepared with tokenizer \"",
              m.tokenizer_fingerprint, "\" but the configured tokenizer's fingerprint is \"", expected_fingerprint,
              "\"; prepare the data again with this tokenizer");
  }
  TokenStream s(shard_paths(data_dir, m, split), expected_fingerprint, m.eot_id);
  const auto& list = split == "train" ? m.train : m.val;
  for (size_t i = 0; i < list.size(); ++i) {
    LLM_CHECK(s.shards_[i].size() == list[i].tokens, s.shards_[i].path(), ": holds ", s.shards_[i].size(),
              " tokens but ", mp, " lists ", list[i].tokens);
    LLM_CHECK(s.vocab_size_ == m.vocab_size, s.shards_[i].path(), ": vocab size ", s.vocab_size_, " but ", mp, " says ",
              m.vocab_size);
  }
  return s;
}

size_t TokenStream::shard_at(uint64_t begin) const {
  return static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), begin) - offsets_.begin());
}

void TokenStream::read(uint64_t begin, std::span<int32_t> out) const {
  LLM_CHECK(begin <= size() && out.size() <= size() - begin, "token stream: reading [", begin, ", ", begin + out.size(),
            ") of ", size(), " tokens");
  for (size_t i = shard_at(begin); !out.empty(); ++i) {
    const uint64_t local = begin - (i == 0 ? 0 : offsets_[i - 1]);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), shards_[i].size() - local));
    shards_[i].read(local, out.first(n));
    out = out.subspan(n);
    begin += n;
  }
}

void TokenStream::read_flags(uint64_t begin, std::span<uint8_t> out) const {
  LLM_CHECK(begin <= size() && out.size() <= size() - begin, "token stream: reading flags [", begin, ", ",
            begin + out.size(), ") of ", size(), " tokens");
  for (size_t i = shard_at(begin); !out.empty(); ++i) {
    const uint64_t local = begin - (i == 0 ? 0 : offsets_[i - 1]);
    const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), shards_[i].size() - local));
    shards_[i].read_flags(local, out.first(n));
    out = out.subspan(n);
    begin += n;
  }
}

// ---- samples -----------------------------------------------------------------------------------

SampleSet::SampleSet(const TokenStream& stream, int64_t seq_len, bool document_attention, bool packing)
    : T_(seq_len), document_(document_attention), packed_(stream.has_token_flags()) {
  LLM_CHECK(seq_len > 0, "data loader: seq_len must be positive, got ", seq_len);
  if (!packed_) {
    samples_ = stream.size() < 2 ? 0 : (stream.size() - 1) / static_cast<uint64_t>(seq_len);
    LLM_CHECK(!document_ || stream.eot_id() >= 0,
              "data loader: document attention on text needs the end-of-text id (from the manifest)");
    return;
  }
  // Documents start at kTokenDocStart; keep those that fit a row, and pack them in order.
  constexpr uint64_t kChunk = 1 << 20;
  std::vector<uint8_t> flags;
  uint64_t start = 0, trained_in_doc = 0;
  uint64_t row_used = static_cast<uint64_t>(seq_len);  // no open row yet
  const auto end_doc = [&](uint64_t end) {
    const uint64_t len = end - start;
    if (len == 0) return;
    if (len > static_cast<uint64_t>(seq_len)) {
      ++skipped_docs_;
      skipped_tokens_ += len;
      return;
    }
    if (!packing || row_used + len > static_cast<uint64_t>(seq_len)) {
      row_first_.push_back(doc_start_.size());
      row_used = 0;
    }
    doc_start_.push_back(start);
    doc_len_.push_back(static_cast<uint32_t>(len));
    row_used += len;
    trained_ += trained_in_doc;
  };
  for (uint64_t at = 0; at < stream.size(); at += kChunk) {
    flags.resize(static_cast<size_t>(std::min(kChunk, stream.size() - at)));
    stream.read_flags(at, flags);
    for (size_t i = 0; i < flags.size(); ++i) {
      const uint64_t pos = at + i;
      if ((flags[i] & kTokenDocStart) && pos > start) {
        end_doc(pos);
        start = pos;
        trained_in_doc = 0;
      }
      // A document's first token is never a target (nothing before it in its document).
      if ((flags[i] & kTokenTrained) && pos > start) ++trained_in_doc;
    }
  }
  end_doc(stream.size());
  samples_ = row_first_.size();
  row_first_.push_back(doc_start_.size());
}

void SampleSet::shape(Batch& b, int64_t B) const {
  b.B = B;
  b.T = T_;
  b.ids.assign(static_cast<size_t>(B * T_), 0);
  b.targets.assign(b.ids.size(), -1);
  b.positions.clear();
  if (!document_) return;
  b.positions.resize(b.ids.size());
  for (size_t i = 0; i < b.positions.size(); ++i) b.positions[i] = static_cast<int32_t>(i % static_cast<size_t>(T_));
}

void SampleSet::fill(const TokenStream& stream, Batch& b, int64_t row, uint64_t s) const {
  LLM_CHECK(s < samples_, "data loader: sample ", s, " of ", samples_);
  const auto T = static_cast<size_t>(T_);
  int32_t* ids = b.ids.data() + row * T_;
  int32_t* targets = b.targets.data() + row * T_;
  int32_t* positions = document_ ? b.positions.data() + row * T_ : nullptr;
  if (!packed_) {  // the window of T + 1 tokens at s * T
    std::vector<int32_t> window(T + 1);
    stream.read(s * T, window);
    std::copy(window.begin(), window.begin() + static_cast<std::ptrdiff_t>(T), ids);
    std::copy(window.begin() + 1, window.end(), targets);
    if (positions) {  // a document ends with end-of-text; its target would cross into the next one
      int32_t p = 0;
      for (size_t t = 0; t < T; ++t) {
        positions[t] = p++;
        if (ids[t] == stream.eot_id()) targets[t] = -1, p = 0;
      }
    }
    return;
  }
  std::vector<int32_t> tok;
  std::vector<uint8_t> flags;
  size_t at = 0;
  for (uint64_t d = row_first_[s]; d < row_first_[s + 1]; ++d) {
    const size_t len = doc_len_[d];
    tok.resize(len);
    flags.resize(len);
    stream.read(doc_start_[d], tok);
    stream.read_flags(doc_start_[d], flags);
    for (size_t j = 0; j < len; ++j) {
      ids[at + j] = tok[j];
      targets[at + j] = j + 1 < len && (flags[j + 1] & kTokenTrained) ? tok[j + 1] : -1;
      if (positions) positions[at + j] = static_cast<int32_t>(j);
    }
    at += len;
  }
  if (positions) {  // padding: a document of its own
    for (size_t j = at; j < T; ++j) positions[j] = static_cast<int32_t>(j - at);
  }
}

namespace {

void check_layout(int64_t batch_size, int64_t seq_len, int rank, int world, const char* who) {
  LLM_CHECK(seq_len > 0, who, ": seq_len must be positive, got ", seq_len);
  LLM_CHECK(batch_size > 0, who, ": batch_size must be positive, got ", batch_size);
  LLM_CHECK(world > 0 && rank >= 0 && rank < world, who, ": rank ", rank, " is not in [0, world ", world, ")");
}

}  // namespace

// ---- training loader ---------------------------------------------------------------------------

ShardLoader::ShardLoader(TokenStream stream, const LoaderOptions& opt)
    : stream_(std::move(stream)),
      opt_(opt),
      set_((check_layout(opt.batch_size, opt.seq_len, opt.rank, opt.world, "data loader"), stream_), opt.seq_len,
           opt.document_attention, opt.packing) {
  LLM_CHECK(opt.prefetch > 0, "data loader: prefetch must be at least 1, got ", opt.prefetch);
  samples_ = set_.size();
  const std::string dir = stream_.shards().empty() ? "" : cat(" (", stream_.shards().front().path().parent_path(), ")");
  LLM_CHECK(!set_.packed() || samples_ > 0, "data loader: no conversation of the training split fits seq_len ",
            opt.seq_len, " (", set_.skipped_documents(), " longer ones skipped)", dir);
  LLM_CHECK(samples_ > 0, "data loader: the training split has ", stream_.size(),
            " tokens, fewer than seq_len + 1 = ", opt.seq_len + 1, " needed for one sample", dir);
  step_ = static_cast<uint64_t>(opt.world) * static_cast<uint64_t>(opt.batch_size);
  start();
}

ShardLoader::~ShardLoader() { stop(); }

void ShardLoader::start() {
  stopping_ = false;
  error_ = nullptr;
  queue_.clear();
  produce_ = consume_;
  thread_ = std::thread([this] { worker(); });
}

void ShardLoader::stop() noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ShardLoader::worker() {
  for (;;) {
    uint64_t pos;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || queue_.size() < static_cast<size_t>(opt_.prefetch); });
      if (stopping_) return;
      pos = produce_;
      produce_ += step_;
    }
    try {
      Batch b = make_batch(pos);
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      queue_.push_back(std::move(b));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
      return;
    }
    cv_.notify_all();
  }
}

Batch ShardLoader::make_batch(uint64_t position) const {
  Batch b;
  set_.shape(b, opt_.batch_size);
  b.rows = b.B;
  b.position = position;
  const uint64_t first = position + static_cast<uint64_t>(opt_.rank) * static_cast<uint64_t>(opt_.batch_size);
  b.epoch = first / samples_;
  uint64_t epoch = b.epoch;
  data::Permutation perm(samples_, opt_.seed, epoch);
  for (int64_t row = 0; row < b.B; ++row) {
    const uint64_t p = first + static_cast<uint64_t>(row);
    if (p / samples_ != epoch) {  // this step crosses into the next epoch
      epoch = p / samples_;
      perm = data::Permutation(samples_, opt_.seed, epoch);
    }
    set_.fill(stream_, b, row, perm(p % samples_));
  }
  return b;
}

Batch ShardLoader::next() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !queue_.empty() || error_; });
  if (queue_.empty()) std::rethrow_exception(error_);
  Batch b = std::move(queue_.front());
  queue_.pop_front();
  consume_ = b.position + step_;
  lock.unlock();
  cv_.notify_all();
  return b;
}

DataCursor ShardLoader::cursor() const {
  std::lock_guard<std::mutex> lock(mu_);
  DataCursor c;
  c.epoch = consume_ / samples_;
  c.sample = consume_ % samples_;
  c.samples_per_epoch = samples_;
  c.seed = opt_.seed;
  c.seq_len = opt_.seq_len;
  return c;
}

void ShardLoader::restore(const DataCursor& c) {
  LLM_CHECK(c.seed == opt_.seed, "data cursor: saved with data seed ", c.seed, ", this run uses ", opt_.seed,
            "; the sample order would differ");
  LLM_CHECK(c.seq_len == opt_.seq_len, "data cursor: saved with seq_len ", c.seq_len, ", this run uses ", opt_.seq_len);
  LLM_CHECK(c.samples_per_epoch == samples_, "data cursor: saved with ", c.samples_per_epoch,
            " samples per epoch, the training split now has ", samples_, " (the data was prepared again?)");
  LLM_CHECK(c.sample < samples_, "data cursor: sample ", c.sample, " is not below samples_per_epoch ", samples_);
  stop();
  consume_ = c.position();
  start();
}

// ---- evaluation loader -------------------------------------------------------------------------

EvalLoader::EvalLoader(TokenStream stream, const EvalOptions& opt)
    : stream_(std::move(stream)),
      opt_(opt),
      set_((check_layout(opt.batch_size, opt.seq_len, opt.rank, opt.world, "eval loader"), stream_), opt.seq_len,
           opt.document_attention, opt.packing) {
  LLM_CHECK(opt.max_batches >= 0, "eval loader: max_batches must be 0 (all) or more, got ", opt.max_batches);
  samples_ = set_.size();
  const uint64_t per_step = static_cast<uint64_t>(opt.world) * static_cast<uint64_t>(opt.batch_size);
  batches_ = static_cast<int64_t>((samples_ + per_step - 1) / per_step);
  if (opt.max_batches > 0) batches_ = std::min(batches_, opt.max_batches);
}

Batch EvalLoader::batch(int64_t i) const {
  LLM_CHECK(i >= 0 && i < batches_, "eval loader: batch ", i, " is not in [0, ", batches_, ")");
  Batch b;
  set_.shape(b, opt_.batch_size);
  b.position = static_cast<uint64_t>(i) * static_cast<uint64_t>(opt_.world * opt_.batch_size);
  const uint64_t first = b.position + static_cast<uint64_t>(opt_.rank * opt_.batch_size);
  for (int64_t row = 0; row < b.B && first + static_cast<uint64_t>(row) < samples_; ++row) {
    set_.fill(stream_, b, row, first + static_cast<uint64_t>(row));
    b.rows = row + 1;
  }
  return b;
}

}  // namespace llm
