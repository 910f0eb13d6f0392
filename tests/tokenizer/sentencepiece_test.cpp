// Training a sentencepiece model on the fortunes corpus (Debian's fortunes and fortunes-zh), then
// loading, encoding and decoding it.
#include <algorithm>
#include <fstream>

#include "llm/tokenizer.h"
#include "test_util.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace llm::test {
namespace {

// Fortune entries (separated by "%" lines) from English and Chinese files, up to max_bytes.
std::vector<std::string> fortunes(size_t max_bytes) {
  const std::filesystem::path dir = "/usr/share/games/fortunes";
  std::vector<std::string> docs;
  size_t bytes = 0;
  for (const char* name :
       {"fortunes", "computers", "science", "literature", "chinese", "tang300", "people", "wisdom"}) {
    std::ifstream in(dir / name, std::ios::binary);
    std::string doc;
    for (std::string line; std::getline(in, line) && bytes < max_bytes;) {
      if (line == "%") {
        if (!doc.empty()) docs.push_back(doc);
        bytes += doc.size();
        doc.clear();
      } else {
        doc += line + "\n";
      }
    }
  }
  return docs;
}

std::function<bool(std::string&)> stream_of(const std::vector<std::string>& docs) {
  auto i = std::make_shared<size_t>(0);
  return [&docs, i](std::string& doc) {
    if (*i >= docs.size()) return false;
    doc = docs[(*i)++];
    return true;
  };
}

class SentencePieceTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    docs_ = new std::vector<std::string>(fortunes(size_t{3} << 20));
    dir_ = new TempDir;
    error_ = new std::string;
    if (docs_->size() < 1000) return;  // SetUp reports it
    SentencePieceTrainOptions o;
    o.vocab_size = kVocab;
    // Chinese has thousands of rare characters: cover 99% of the text with pieces, the rest
    // falls back to byte pieces.
    o.character_coverage = 0.99;
    o.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    o.max_sentences = 40000;
    std::vector<std::string> train(docs_->begin() + 100, docs_->end());  // the first 100 are held out
    try {
      train_sentencepiece(stream_of(train), o, (*dir_) / "sp.model");
    } catch (const std::exception& e) {
      *error_ = e.what();  // an exception here would only skip the tests
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete docs_;
    delete error_;
  }
  void SetUp() override {
    ASSERT_GE(docs_->size(), 1000u) << "the fortunes corpus is missing: run scripts/setup.sh (fortunes, fortunes-zh)";
    ASSERT_EQ(*error_, "") << "training failed";
    tok_ = load_tokenizer((*dir_) / "sp.model");
  }

  static constexpr int kVocab = 3000;
  static std::vector<std::string>* docs_;
  static TempDir* dir_;
  static std::string* error_;
  std::unique_ptr<Tokenizer> tok_;
};
std::vector<std::string>* SentencePieceTest::docs_ = nullptr;
TempDir* SentencePieceTest::dir_ = nullptr;
std::string* SentencePieceTest::error_ = nullptr;

TEST_F(SentencePieceTest, HeldOutTextRoundTrips) {
  EXPECT_EQ(tok_->kind(), "sentencepiece");
  EXPECT_GT(tok_->vocab_size(), kVocab / 2);
  EXPECT_LE(tok_->vocab_size(), kVocab);
  size_t bytes = 0, tokens = 0;
  for (size_t i = 0; i < 100; ++i) {
    const std::string& s = (*docs_)[i];
    const std::vector<int32_t> ids = tok_->encode(s);
    ASSERT_EQ(tok_->decode(ids), s) << s;
    std::string joined;
    for (const int32_t id : ids) joined += tok_->token_bytes(id);
    ASSERT_EQ(joined, s);
    bytes += s.size();
    tokens += ids.size();
  }
  // A real vocabulary compresses: well under one token per byte.
  EXPECT_LT(static_cast<double>(tokens) / static_cast<double>(bytes), 0.5);
  // Characters never seen in training come back through byte pieces.
  const std::string odd = "emoji \xF0\x9F\x98\x80 and \xE2\x80\x8B zwsp,  two spaces\tand\ttabs\n\nend ";
  EXPECT_EQ(tok_->decode(tok_->encode(odd)), odd);
}

TEST_F(SentencePieceTest, SpecialTokensAreSingleIds) {
  const int32_t eot = tok_->token_id("<|endoftext|>");
  const int32_t start = tok_->token_id("<|im_start|>"), end = tok_->token_id("<|im_end|>");
  ASSERT_GE(eot, 0);
  EXPECT_EQ(tok_->eot_id(), eot);
  EXPECT_EQ(tok_->stop_ids().front(), eot);
  EXPECT_NE(std::find(tok_->stop_ids().begin(), tok_->stop_ids().end(), end), tok_->stop_ids().end());
  EXPECT_EQ(tok_->encode("<|endoftext|>"), std::vector<int32_t>{eot});
  const std::vector<int32_t> chat = tok_->encode("<|im_start|>user\nhello<|im_end|>");
  ASSERT_GE(chat.size(), 3u);
  EXPECT_EQ(chat.front(), start);
  EXPECT_EQ(chat.back(), end);
  EXPECT_EQ(tok_->decode(chat), "<|im_start|>user\nhello<|im_end|>");
  EXPECT_TRUE(tok_->is_special(eot));
  EXPECT_FALSE(tok_->is_special(tok_->encode("the").front()));
  EXPECT_EQ(tok_->token_id("no such piece"), -1);
}

TEST_F(SentencePieceTest, ByteTokensAndDecodePolicy) {
  const int32_t byte_e4 = tok_->token_id("<0xE4>");
  ASSERT_GE(byte_e4, 0);
  EXPECT_EQ(tok_->token_bytes(byte_e4), "\xE4");
  // A lone lead byte decodes to U+FFFD, as in the Qwen decoder.
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{byte_e4}), "\xEF\xBF\xBD");
  // Invalid UTF-8 input does not crash and decodes to valid text.
  const std::string broken = "bad \xFF\xFE bytes \xE4\xB8";
  EXPECT_TRUE(tok::is_valid_utf8(tok_->decode(tok_->encode(broken))));
  EXPECT_THROW(tok_->decode(std::vector<int32_t>{tok_->vocab_size()}), Error);
}

TEST_F(SentencePieceTest, SaveLoadAndFingerprint) {
  TempDir out;
  tok_->save(out.path());
  const auto again = load_tokenizer(out.path());  // the directory: finds tokenizer.model
  EXPECT_EQ(again->fingerprint(), tok_->fingerprint());
  EXPECT_EQ(again->fingerprint().size(), 32u);
  EXPECT_EQ(read_file(out / "tokenizer.model"), read_file((*dir_) / "sp.model"));
}

TEST_F(SentencePieceTest, TrainingIsDeterministicAndValidatesOptions) {
  // Same documents, same options -> the same model (sampling has a fixed seed).
  std::vector<std::string> small(docs_->begin(), docs_->begin() + 800);
  SentencePieceTrainOptions o;
  o.vocab_size = 400;
  o.model_type = "unigram";
  o.special_tokens = {"<|endoftext|>"};
  o.max_sentences = 2000;
  o.threads = 2;
  TempDir dir;
  train_sentencepiece(stream_of(small), o, dir / "a.model");
  train_sentencepiece(stream_of(small), o, dir / "b.model");
  EXPECT_EQ(load_tokenizer(dir / "a.model")->fingerprint(), load_tokenizer(dir / "b.model")->fingerprint());
  const auto uni = load_tokenizer(dir / "a.model");
  EXPECT_EQ(uni->decode(uni->encode(small[5])), small[5]);

  auto expect_error = [&](SentencePieceTrainOptions bad, const std::string& expected) {
    try {
      train_sentencepiece(stream_of(small), bad, dir / "c.model");
      ADD_FAILURE() << "no error, expected " << expected;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "c.model"));
  };
  SentencePieceTrainOptions bad = o;
  bad.model_type = "wordpiece";
  expect_error(bad, "train_sentencepiece: model_type \"wordpiece\": expected \"bpe\" or \"unigram\"");
  bad = o;
  bad.vocab_size = 100;
  expect_error(bad, "train_sentencepiece: vocab_size 100 is too small");
  bad = o;
  bad.special_tokens = {"<a>,<b>"};
  expect_error(bad, "special_tokens: \"<a>,<b>\" contains a comma");
  bad = o;
  bad.special_tokens = {"<x>", "<x>"};
  expect_error(bad, "special_tokens: \"<x>\" is listed twice");
  bad = o;
  bad.character_coverage = 0;
  expect_error(bad, "character_coverage 0: expected a value in (0, 1]");
  const std::vector<std::string> empty = {"", "\n\n"};
  try {
    train_sentencepiece(stream_of(empty), o, dir / "c.model");
    ADD_FAILURE() << "no error for an empty corpus";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the documents hold no text"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llm::test
