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

TokenStream::TokenStream(const std::vector<fs::path>& shards, const std::string& expected_fingerprint) {
  uint64_t total = 0;
  for (const auto& p : shards) {
    ShardFile f(p, expected_fingerprint);
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
  TokenStream s(shard_paths(data_dir, m, split), expected_fingerprint);
  const auto& list = split == "train" ? m.train : m.val;
  for (size_t i = 0; i < list.size(); ++i) {
    LLM_CHECK(s.shards_[i].size() == list[i].tokens, s.shards_[i].path(), ": holds ", s.shards_[i].size(),
              " tokens but ", mp, " lists ", list[i].tokens);
    LLM_CHECK(s.vocab_size_ == m.vocab_size, s.shards_[i].path(), ": vocab size ", s.vocab_size_, " but ", mp, " says ",
              m.vocab_size);
  }
  return s;
}

void TokenStream::read(uint64_t begin, std::span<int32_t> out) const {
  LLM_CHECK(begin <= size() && out.size() <= size() - begin, "token stream: reading [", begin, ", ", begin + out.size(),
            ") of ", size(), " tokens");
  size_t i = static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), begin) - offsets_.begin());
  while (!out.empty()) {
    const uint64_t shard_begin = i == 0 ? 0 : offsets_[i - 1];
    const uint64_t local = begin - shard_begin;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), shards_[i].size() - local));
    shards_[i].read(local, out.first(n));
    out = out.subspan(n);
    begin += n;
    ++i;
  }
}

namespace {

uint64_t count_samples(const TokenStream& s, int64_t seq_len) {
  return s.size() < 2 ? 0 : (s.size() - 1) / static_cast<uint64_t>(seq_len);
}

void check_layout(int64_t batch_size, int64_t seq_len, int rank, int world, const char* who) {
  LLM_CHECK(seq_len > 0, who, ": seq_len must be positive, got ", seq_len);
  LLM_CHECK(batch_size > 0, who, ": batch_size must be positive, got ", batch_size);
  LLM_CHECK(world > 0 && rank >= 0 && rank < world, who, ": rank ", rank, " is not in [0, world ", world, ")");
}

// Fills row `row` of b from sample s (tokens [s*T, s*T + T + 1)).
void fill_row(const TokenStream& stream, Batch& b, int64_t row, uint64_t sample, std::vector<int32_t>& window) {
  const auto T = static_cast<size_t>(b.T);
  stream.read(sample * T, std::span<int32_t>(window.data(), T + 1));
  std::copy(window.begin(), window.begin() + static_cast<std::ptrdiff_t>(T), b.ids.begin() + row * b.T);
  std::copy(window.begin() + 1, window.end(), b.targets.begin() + row * b.T);
}

}  // namespace

// ---- training loader ---------------------------------------------------------------------------

ShardLoader::ShardLoader(TokenStream stream, const LoaderOptions& opt) : stream_(std::move(stream)), opt_(opt) {
  check_layout(opt.batch_size, opt.seq_len, opt.rank, opt.world, "data loader");
  LLM_CHECK(opt.prefetch > 0, "data loader: prefetch must be at least 1, got ", opt.prefetch);
  samples_ = count_samples(stream_, opt.seq_len);
  LLM_CHECK(samples_ > 0, "data loader: the training split has ", stream_.size(),
            " tokens, fewer than seq_len + 1 = ", opt.seq_len + 1, " needed for one sample",
            stream_.shards().empty() ? "" : cat(" (", stream_.shards().front().path().parent_path(), ")"));
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
  b.B = b.rows = opt_.batch_size;
  b.T = opt_.seq_len;
  b.position = position;
  b.ids.resize(static_cast<size_t>(b.B * b.T));
  b.targets.resize(b.ids.size());
  std::vector<int32_t> window(static_cast<size_t>(b.T) + 1);
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
    fill_row(stream_, b, row, perm(p % samples_), window);
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

EvalLoader::EvalLoader(TokenStream stream, const EvalOptions& opt) : stream_(std::move(stream)), opt_(opt) {
  check_layout(opt.batch_size, opt.seq_len, opt.rank, opt.world, "eval loader");
  LLM_CHECK(opt.max_batches >= 0, "eval loader: max_batches must be 0 (all) or more, got ", opt.max_batches);
  samples_ = count_samples(stream_, opt.seq_len);
  const uint64_t per_step = static_cast<uint64_t>(opt.world) * static_cast<uint64_t>(opt.batch_size);
  batches_ = static_cast<int64_t>((samples_ + per_step - 1) / per_step);
  if (opt.max_batches > 0) batches_ = std::min(batches_, opt.max_batches);
}

Batch EvalLoader::batch(int64_t i) const {
  LLM_CHECK(i >= 0 && i < batches_, "eval loader: batch ", i, " is not in [0, ", batches_, ")");
  Batch b;
  b.B = opt_.batch_size;
  b.T = opt_.seq_len;
  b.position = static_cast<uint64_t>(i) * static_cast<uint64_t>(opt_.world * opt_.batch_size);
  b.ids.assign(static_cast<size_t>(b.B * b.T), 0);
  b.targets.assign(b.ids.size(), -1);
  std::vector<int32_t> window(static_cast<size_t>(b.T) + 1);
  const uint64_t first = b.position + static_cast<uint64_t>(opt_.rank * opt_.batch_size);
  for (int64_t row = 0; row < b.B && first + static_cast<uint64_t>(row) < samples_; ++row) {
    fill_row(stream_, b, row, first + static_cast<uint64_t>(row), window);
    b.rows = row + 1;
  }
  return b;
}

}  // namespace llm
