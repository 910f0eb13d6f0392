// train_sentencepiece: documents -> sampled lines -> sentencepiece's trainer -> model file.
#include "tokenizer/sentencepiece_headers.h"

#include <omp.h>

#include <random>
#include <set>
#include <unordered_map>

#include "llm/atomic_file.h"
#include "llm/error.h"
#include "llm/tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/utf8.h"

namespace llm {

namespace {

// Feeds the sampled sentences to the trainer.
class VectorIterator final : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& s) : s_(s) {}
  bool done() const override { return i_ >= s_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return s_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  const std::vector<std::string>& s_;
  size_t i_ = 0;
};

// Uniform sample of at most `cap` items from a stream (reservoir sampling, fixed seed: the same
// documents give the same model).
class Reservoir {
 public:
  explicit Reservoir(size_t cap) : cap_(cap), rng_(0x5EEDu) {}
  void add(std::string_view s) {
    ++seen_;
    if (items_.size() < cap_) {
      items_.emplace_back(s);
      return;
    }
    const uint64_t j = std::uniform_int_distribution<uint64_t>(0, seen_ - 1)(rng_);
    if (j < cap_) items_[static_cast<size_t>(j)].assign(s);
  }
  const std::vector<std::string>& items() const { return items_; }

 private:
  size_t cap_;
  uint64_t seen_ = 0;
  std::mt19937_64 rng_;
  std::vector<std::string> items_;
};

// Largest prefix length <= max of s that ends on a UTF-8 character boundary (at least 1 byte).
size_t utf8_cut(std::string_view s, size_t max) {
  if (s.size() <= max) return s.size();
  size_t cut = max;
  while (cut > 0 && (static_cast<uint8_t>(s[cut]) & 0xC0) == 0x80) --cut;
  return cut == 0 ? max : cut;
}

void validate(const SentencePieceTrainOptions& o) {
  const std::string where = "train_sentencepiece: ";
  LLM_CHECK(o.model_type == "bpe" || o.model_type == "unigram", where, "model_type \"", o.model_type,
            "\": expected \"bpe\" or \"unigram\"");
  LLM_CHECK(o.character_coverage > 0 && o.character_coverage <= 1, where, "character_coverage ", o.character_coverage,
            ": expected a value in (0, 1]");
  LLM_CHECK(o.max_sentences > 0, where, "max_sentences ", o.max_sentences, ": expected > 0");
  LLM_CHECK(o.max_sentence_length > 0, where, "max_sentence_length ", o.max_sentence_length, ": expected > 0");
  std::set<std::string> seen;
  for (const std::string& t : o.special_tokens) {
    LLM_CHECK(!t.empty(), where, "special_tokens: an empty token");
    LLM_CHECK(t.find(',') == std::string::npos, where, "special_tokens: \"", t,
              "\" contains a comma (sentencepiece's list separator)");
    LLM_CHECK(t != "<unk>" && t != "<s>" && t != "</s>", where, "special_tokens: \"", t,
              "\" is one of sentencepiece's own pieces (<unk> <s> </s>)");
    LLM_CHECK(tok::is_valid_utf8(t), where, "special_tokens: a token is not valid UTF-8");
    LLM_CHECK(seen.insert(t).second, where, "special_tokens: \"", t, "\" is listed twice");
  }
  // <unk> <s> </s>, the specials, the 256 byte pieces, and at least one learned piece.
  const int64_t needed = 3 + static_cast<int64_t>(o.special_tokens.size()) + (o.byte_fallback ? 256 : 0) + 1;
  LLM_CHECK(o.vocab_size >= needed, where, "vocab_size ", o.vocab_size, " is too small: <unk> <s> </s>, ",
            o.special_tokens.size(), " special tokens", o.byte_fallback ? " and the 256 byte pieces" : "",
            " need at least ", needed);
}

}  // namespace

void train_sentencepiece(const std::function<bool(std::string& doc)>& next_document,
                         const SentencePieceTrainOptions& opt, const std::filesystem::path& model_out) {
  validate(opt);
  // Documents are cut into lines: sentencepiece learns pieces within a line, and a newline is
  // encoded as the byte piece <0x0A> (docs/tokenizers.md). Over-long lines are cut to
  // max_sentence_length bytes instead of being dropped by the trainer.
  Reservoir sample(static_cast<size_t>(opt.max_sentences));
  std::string doc;
  const size_t max_len = static_cast<size_t>(opt.max_sentence_length);
  while (next_document(doc)) {
    std::string_view rest = doc;
    while (!rest.empty()) {
      const size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
      while (!line.empty()) {
        const size_t cut = utf8_cut(line, max_len);
        sample.add(line.substr(0, cut));
        line.remove_prefix(cut);
      }
    }
  }
  LLM_CHECK(!sample.items().empty(), "train_sentencepiece: ", model_out.string(), ": the documents hold no text");

  std::string specials;
  for (const std::string& t : opt.special_tokens) specials += (specials.empty() ? "" : ",") + t;
  const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", opt.model_type},
      {"vocab_size", std::to_string(opt.vocab_size)},
      {"byte_fallback", opt.byte_fallback ? "true" : "false"},
      {"character_coverage", std::to_string(opt.character_coverage)},
      {"user_defined_symbols", specials},
      {"input_sentence_size", "0"},  // sampled above
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", std::to_string(opt.max_sentence_length)},
      {"num_threads", std::to_string(threads)},
      // Lossless text: no NFKC, spaces kept as they are, no space added in front.
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"split_digits", "true"},
      // A small corpus may not yield vocab_size pieces: take fewer rather than fail.
      {"hard_vocab_limit", "false"},
      {"minloglevel", "1"},
      {"model_prefix", ""},
  };
  VectorIterator it(sample.items());
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  LLM_CHECK(status.ok(), "train_sentencepiece: ", model_out.string(), ": sentencepiece: ", status.ToString());
  tok::sentencepiece_from_bytes(model, model_out);  // refuse to write a model we cannot load
  write_file_atomic(model_out, model);
}

}  // namespace llm
