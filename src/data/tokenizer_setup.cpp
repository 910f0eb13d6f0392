// The configured tokenizer for preparation: loaded, or first trained on the corpus when it is a
// sentencepiece model that does not exist yet. Kept apart from prepare.cpp so that code that
// prepares with a tokenizer object does not pull in sentencepiece training.
#include <ostream>

#include "corpus.h"
#include "llm/error.h"
#include "llm/prepare.h"
#include "prepare_internal.h"

namespace llm {

namespace fs = std::filesystem;

namespace {

bool inside(const fs::path& p, const fs::path& dir) {
  const fs::path rel = p.lexically_normal().lexically_relative(dir.lexically_normal());
  return !rel.empty() && *rel.begin() != "..";
}

void check_tokenizer_outside_out_dir(const TokenizerConfig& t, const DataConfig& d) {
  LLM_CHECK(!inside(t.path, d.out_dir), "tokenizer.path: ", t.path, " lies inside data.out_dir ", d.out_dir,
            ", which preparation replaces whole; put the tokenizer elsewhere");
}

}  // namespace

std::unique_ptr<Tokenizer> load_or_train_tokenizer(const TokenizerConfig& t, const DataConfig& d,
                                                   const PrepareOptions& opt) {
  check_tokenizer_outside_out_dir(t, d);
  std::error_code ec;
  if (!fs::exists(t.path, ec)) {
    LLM_CHECK(t.kind == "sentencepiece" && t.train_if_missing, t.path, ": tokenizer not found (tokenizer.path)",
              t.kind == "sentencepiece" ? "; add a \"train\" section to tokenizer to train one on the corpus" : "");
    data::DocumentReader reader(d, data::resolve_inputs(d));
    SentencePieceTrainOptions o;
    o.vocab_size = t.train.vocab_size;
    o.model_type = t.train.model_type;
    o.byte_fallback = t.train.byte_fallback;
    o.character_coverage = t.train.character_coverage;
    o.special_tokens = t.train.special_tokens;
    o.max_sentences = t.train.max_sentences;
    o.max_sentence_length = t.train.max_sentence_length;
    o.threads = t.train.threads;
    if (opt.log) {
      *opt.log << "prepare: training a sentencepiece " << o.model_type << " tokenizer (vocab " << o.vocab_size
               << ") on the corpus -> " << t.path.string() << "\n"
               << std::flush;
    }
    uint64_t documents = 0;
    bool exhausted = false;
    const auto next = [&](std::string& doc) {
      data::DocPiece p;
      if (!reader.next(p)) {
        exhausted = true;
        return false;
      }
      doc = std::move(p.text);
      ++documents;
      return true;
    };
    if (!t.path.parent_path().empty()) fs::create_directories(t.path.parent_path());
    try {
      train_sentencepiece(next, o, t.path);
    } catch (const Error&) {
      // The trainer's "no text" would hide the real cause.
      LLM_CHECK(!exhausted || documents > 0,
                "data.inputs: no documents to train the tokenizer on: the corpus is empty");
      throw;
    }
  }
  std::unique_ptr<Tokenizer> tok = load_tokenizer(t.path);
  LLM_CHECK(tok->kind() == t.kind, t.path, ": is a ", tok->kind(), " tokenizer, but tokenizer.kind is \"", t.kind,
            "\"");
  return tok;
}

PrepareResult prepare_corpus(const DataConfig& data, const TokenizerConfig& tokenizer, const PrepareOptions& opt) {
  const std::unique_ptr<Tokenizer> tok = load_or_train_tokenizer(tokenizer, data, opt);
  nlohmann::json tc = to_json(tokenizer);
  tc["fingerprint"] = tok->fingerprint();
  return data::prepare_with_config(data, *tok, tc, opt);
}

}  // namespace llm
