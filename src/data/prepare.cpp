// Corpus preparation: stream documents, encode them in parallel, cut train/validation shards,
// write the manifest, and swap the finished directory into place.
#include "llm/prepare.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <system_error>

#include "chat_data.h"
#include "corpus.h"
#include "hash.h"
#include "llm/atomic_file.h"
#include "llm/error.h"
#include "llm/shard.h"
#include "prepare_internal.h"
#include "progress.h"

namespace llm {

namespace fs = std::filesystem;
using data::DocPiece;
using data::InputFile;

PrepareOptions PrepareOptions::to_stderr() {
  PrepareOptions o;
  o.log = &std::cerr;
  o.tty = ::isatty(STDERR_FILENO) == 1;
  return o;
}

namespace {

std::string shard_name(const std::string& split, size_t index) {
  std::string n = std::to_string(index);
  if (n.size() < 5) n.insert(0, 5 - n.size(), '0');
  return cat(split, "_", n, ".tok");
}

// The shards of one split: a token stream cut every shard_tokens tokens.
class ShardSequence {
 public:
  // with_flags: every token carries a flag byte (chat data; kTokenTrained, kTokenDocStart).
  ShardSequence(fs::path dir, std::string split, uint64_t shard_tokens, uint32_t vocab, std::string fingerprint,
                bool with_flags)
      : dir_(std::move(dir)),
        split_(std::move(split)),
        shard_tokens_(shard_tokens),
        vocab_(vocab),
        fingerprint_(std::move(fingerprint)),
        with_flags_(with_flags) {}

  // flags: one per id when the sequence has flags, else empty.
  void append(std::span<const int32_t> ids, std::span<const uint8_t> flags = {}) {
    for (uint8_t f : flags) trained_ += (f & kTokenTrained) ? 1 : 0;
    while (!ids.empty()) {
      if (cur_ && cur_->tokens() == shard_tokens_) close();
      if (!cur_) {
        cur_ =
            std::make_unique<ShardWriter>(dir_ / shard_name(split_, shards_.size()), vocab_, fingerprint_, with_flags_);
        cur_docs_ = 0;
      }
      const size_t take = static_cast<size_t>(std::min<uint64_t>(ids.size(), shard_tokens_ - cur_->tokens()));
      cur_->append(ids.first(take), flags.empty() ? flags : flags.first(take));
      tokens_ += take;
      ids = ids.subspan(take);
      if (!flags.empty()) flags = flags.subspan(take);
    }
  }
  // The document whose last token was just appended ends in the current shard.
  void end_document() {
    cur_->end_document();
    ++cur_docs_;
    ++documents_;
  }
  void finish() {
    if (cur_) close();
  }
  uint64_t tokens() const { return tokens_; }
  uint64_t trained_tokens() const { return trained_; }
  uint64_t documents() const { return documents_; }
  const std::vector<ShardInfo>& shards() const { return shards_; }

 private:
  void close() {
    cur_->commit();
    shards_.push_back({shard_name(split_, shards_.size()), cur_->tokens(), cur_docs_});
    cur_.reset();
  }

  fs::path dir_;
  std::string split_;
  uint64_t shard_tokens_;
  uint32_t vocab_;
  std::string fingerprint_;
  bool with_flags_;
  std::unique_ptr<ShardWriter> cur_;
  uint64_t cur_docs_ = 0;
  std::vector<ShardInfo> shards_;
  uint64_t tokens_ = 0, documents_ = 0, trained_ = 0;
};

// Everything that decides the shards' contents; equal signatures mean equal shards.
nlohmann::json make_signature(const DataConfig& c, const Tokenizer& tok, const std::vector<InputFile>& files) {
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& in : c.inputs) inputs.push_back(to_json(in));
  nlohmann::json fl = nlohmann::json::array();
  for (const auto& f : files) fl.push_back({{"path", f.path.string()}, {"size", f.size}, {"mtime_ns", f.mtime_ns}});
  return {{"shard_format_version", kShardVersion},
          {"tokenizer",
           {{"kind", tok.kind()},
            {"fingerprint", tok.fingerprint()},
            {"vocab_size", tok.vocab_size()},
            {"eot_id", tok.eot_id()}}},
          {"settings",
           {{"inputs", inputs},
            {"shard_tokens", c.shard_tokens},
            {"val_fraction", c.val_fraction},
            {"val_max_tokens", c.val_max_tokens},
            {"seed", c.seed},
            {"max_document_bytes", c.max_document_bytes}}},
          {"files", fl}};
}

// The shard file exists with the size its manifest entry implies.
bool shard_intact(const fs::path& dir, const ShardInfo& s, uint32_t vocab, bool flags) {
  std::error_code ec;
  const auto size = fs::file_size(dir / s.file, ec);
  return !ec && size == kShardHeaderBytes + s.tokens * (token_width_for_vocab(vocab) + (flags ? 1 : 0));
}

bool up_to_date(const fs::path& out_dir, const nlohmann::json& signature) {
  std::error_code ec;
  if (!fs::exists(out_dir / kManifestName, ec)) return false;
  try {
    const Manifest m = read_manifest(out_dir);
    if (m.signature != signature) return false;
    for (const auto* list : {&m.train, &m.val}) {
      for (const auto& s : *list) {
        if (!shard_intact(out_dir, s, m.vocab_size, m.token_flags)) return false;
      }
    }
    return true;
  } catch (const Error&) {
    return false;  // an unreadable manifest: prepare again
  }
}

std::string inputs_list(const DataConfig& c) {
  std::string s;
  for (const auto& in : c.inputs) s += (s.empty() ? "" : ", ") + in.path;
  return s;
}

// Removes staging directories "<out_dir>.tmp.<pid>" left by preparations that died.
void remove_stale_staging(const fs::path& out_dir) {
  std::error_code ec;
  const fs::path parent = out_dir.parent_path().empty() ? fs::path(".") : out_dir.parent_path();
  const std::string prefix = out_dir.filename().string() + ".tmp.";
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    if (pid_text.empty() || pid_text.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(pid_text));
    if (pid == ::getpid() || (::kill(pid, 0) != 0 && errno == ESRCH)) fs::remove_all(it->path(), ec);
  }
}

// Deletes the staging directory unless it was committed.
struct StagingGuard {
  fs::path dir;
  bool committed = false;
  ~StagingGuard() {
    std::error_code ec;
    if (!committed) fs::remove_all(dir, ec);
  }
};

PrepareResult run_prepare(const DataConfig& c, const Tokenizer& tok, const nlohmann::json& tokenizer_config,
                          const PrepareOptions& opt) {
  LLM_CHECK(c.out_dir.has_filename(), "data.out_dir: \"", c.out_dir.string(),
            "\" must name a directory without a trailing '/'");
  const std::vector<InputFile> files = data::resolve_inputs(c);
  const nlohmann::json signature = make_signature(c, tok, files);
  PrepareResult result;
  if (!opt.force && up_to_date(c.out_dir, signature)) {
    result.up_to_date = true;
    result.manifest = read_manifest(c.out_dir);
    if (opt.log) {
      *opt.log << "prepare: " << c.out_dir.string() << " is up to date (" << result.manifest.train_tokens
               << " train tokens, " << result.manifest.val_tokens << " validation tokens)\n";
    }
    return result;
  }
  std::error_code ec;
  if (fs::is_directory(c.out_dir, ec) && !fs::exists(c.out_dir / kManifestName, ec) && !fs::is_empty(c.out_dir, ec)) {
    fail(c.out_dir, ": data.out_dir exists, is not empty and holds no ", kManifestName,
         "; refusing to replace a directory that preparation did not write");
  }
  const int32_t eot = tok.eot_id();
  const int32_t vocab = tok.vocab_size();
  LLM_CHECK(vocab > 0 && eot >= 0 && eot < vocab, "tokenizer: end-of-text id ", eot, " outside the vocabulary [0, ",
            vocab, ")");
  const std::string fingerprint = tok.fingerprint();
  // Chat inputs give every token of the corpus a flag byte (text documents: all trained).
  bool with_flags = false;
  for (const auto& in : c.inputs) with_flags = with_flags || in.format == "chat";
  if (with_flags) data::check_chat_tokens(tok, "data.inputs");

  fs::create_directories(c.out_dir.parent_path().empty() ? fs::path(".") : c.out_dir.parent_path());
  remove_stale_staging(c.out_dir);
  StagingGuard staging{fs::path(c.out_dir.string() + cat(".tmp.", ::getpid()))};
  fs::remove_all(staging.dir, ec);
  fs::create_directories(staging.dir);

  uint64_t total_bytes = 0;
  for (const auto& f : files) total_bytes += f.size;
  data::Progress progress(opt.log, opt.tty, opt.progress_interval_s, total_bytes);
  ShardSequence train(staging.dir, "train", static_cast<uint64_t>(c.shard_tokens), static_cast<uint32_t>(vocab),
                      fingerprint, with_flags);
  ShardSequence val(staging.dir, "val", static_cast<uint64_t>(c.shard_tokens), static_cast<uint32_t>(vocab),
                    fingerprint, with_flags);
  data::DocumentReader reader(c, files);

  std::vector<DocPiece> pieces;
  std::vector<std::string> texts;
  std::vector<uint64_t> first_piece_hash;
  bool in_document = false;  // the previous piece did not end its document
  bool doc_in_val = false;
  const int32_t eot_ids[1] = {eot};
  const uint8_t eot_flags[1] = {kTokenTrained};
  std::vector<uint8_t> flags;
  uint64_t conversations = 0;
  for (;;) {
    pieces.clear();
    texts.clear();
    uint64_t batch = 0;
    DocPiece p;
    while (batch < static_cast<uint64_t>(c.batch_bytes) && reader.next(p)) {
      batch += p.text.size();
      pieces.push_back(std::move(p));
    }
    if (pieces.empty()) break;
    first_piece_hash.clear();
    for (auto& piece : pieces) {
      first_piece_hash.push_back(data::text_hash(piece.text));
      texts.push_back(std::move(piece.text));
    }
    const auto ids = encode_batch(tok, texts, c.threads);
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (!in_document) {
        // A new document goes to one split whole, chosen by a hash of its text (its first
        // piece): the choice does not depend on the order of the inputs or on other documents,
        // so adding files never moves a document between the splits.
        doc_in_val = data::unit_hash(c.seed, first_piece_hash[i]) < c.val_fraction &&
                     (c.val_max_tokens == 0 || val.tokens() < static_cast<uint64_t>(c.val_max_tokens));
      }
      ShardSequence& out = doc_in_val ? val : train;
      if (pieces[i].chat) {  // a whole conversation, no end-of-text: it ends with "<|im_end|>\n"
        const data::RenderedChat chat{texts[i], pieces[i].assistant};
        out.append(ids[i], data::conversation_flags(tok, ids[i], chat, pieces[i].where));
        out.end_document();
        ++conversations;
        continue;
      }
      if (with_flags) {  // text among chat data: every token trained, the document starts at its first piece
        flags.assign(ids[i].size(), kTokenTrained);
        if (!in_document && !flags.empty()) flags[0] |= kTokenDocStart;
      }
      out.append(ids[i], with_flags ? std::span<const uint8_t>(flags) : std::span<const uint8_t>());
      in_document = !pieces[i].last;
      if (pieces[i].last) {
        out.append(eot_ids, with_flags ? std::span<const uint8_t>(eot_flags) : std::span<const uint8_t>());
        out.end_document();
      }
    }
    progress.update(reader.bytes_read(), train.tokens() + val.tokens(), train.documents() + val.documents());
  }
  progress.update(reader.bytes_read(), train.tokens() + val.tokens(), train.documents() + val.documents(), true);
  progress.done();
  train.finish();
  val.finish();

  LLM_CHECK(train.documents() + val.documents() > 0, "data.inputs: no documents in ", files.size(), " file(s) (",
            inputs_list(c), "): the corpus is empty");
  LLM_CHECK(train.documents() > 0, "data.val_fraction: all ", val.documents(),
            " document(s) went to the validation split; lower it or add text");

  Manifest& m = result.manifest;
  m.tokenizer_kind = tok.kind();
  m.tokenizer_fingerprint = fingerprint;
  m.vocab_size = static_cast<uint32_t>(vocab);
  m.eot_id = eot;
  m.train = train.shards();
  m.val = val.shards();
  m.train_tokens = train.tokens();
  m.val_tokens = val.tokens();
  m.train_documents = train.documents();
  m.val_documents = val.documents();
  m.input_bytes = reader.bytes_read();
  m.token_flags = with_flags;
  m.train_trained_tokens = with_flags ? train.trained_tokens() : train.tokens();
  m.val_trained_tokens = with_flags ? val.trained_tokens() : val.tokens();
  m.conversations = conversations;
  m.signature = signature;
  m.config = {{"data", to_json(c)}, {"tokenizer", tokenizer_config}};
  write_file_atomic(staging.dir / kManifestName, m.to_json().dump(2) + "\n");
  commit_directory(staging.dir, c.out_dir);
  staging.committed = true;

  result.seconds = progress.elapsed();
  result.bytes = reader.bytes_read();
  result.tokens = m.train_tokens + m.val_tokens;
  result.documents = m.train_documents + m.val_documents;
  if (opt.log) {
    const double t = std::max(result.seconds, 1e-9);
    std::ostringstream line;
    line << std::fixed << std::setprecision(2) << "prepare: " << files.size() << " files, " << result.bytes / 1e6
         << " MB, " << result.documents << " documents -> " << m.train_tokens << " train tokens in " << m.train.size()
         << " shard(s), " << m.val_tokens << " validation tokens (" << m.val_documents << " documents) in "
         << c.out_dir.string() << "; " << t << " s, " << result.bytes / 1e6 / t << " MB/s, " << std::setprecision(0)
         << double(result.tokens) / t << " tokens/s";
    *opt.log << line.str();
    if (with_flags) {
      *opt.log << "; " << conversations << " conversations, " << m.train_trained_tokens
               << " train tokens trained on (assistant replies)";
    }
    if (reader.invalid_utf8_bytes() > 0)
      *opt.log << "; note: " << reader.invalid_utf8_bytes() << " bytes of invalid UTF-8";
    if (m.val_documents == 0 && c.val_fraction > 0) *opt.log << "; warning: the validation split is empty";
    *opt.log << "\n";
  }
  return result;
}

}  // namespace

PrepareResult prepare_corpus(const DataConfig& data, const Tokenizer& tokenizer, const PrepareOptions& opt) {
  return run_prepare(data, tokenizer, {{"kind", tokenizer.kind()}, {"fingerprint", tokenizer.fingerprint()}}, opt);
}

bool corpus_up_to_date(const DataConfig& data, const Tokenizer& tokenizer) {
  return up_to_date(data.out_dir, make_signature(data, tokenizer, data::resolve_inputs(data)));
}

namespace data {
PrepareResult prepare_with_config(const DataConfig& d, const Tokenizer& tok, const nlohmann::json& tok_config,
                                  const PrepareOptions& opt) {
  return run_prepare(d, tok, tok_config, opt);
}
}  // namespace data

}  // namespace llm
