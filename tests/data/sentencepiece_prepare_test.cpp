// End to end with the real tokenizer module: a sentencepiece model trained during preparation,
// shards that decode back to the corpus, and the errors of the tokenizer section.
#include "data_test_util.h"
#include "llm/loader.h"
#include "llm/prepare.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> make_docs(std::mt19937_64& g, size_t n) {
  static const std::vector<std::string> words = {"the", "moon", "river", "poem", "night", "wine", "friend", "mountain",
                                                 "月",  "山",   "酒",    "诗",   "江",    "春",   "风",     "花"};
  std::vector<std::string> docs;
  for (size_t i = 0; i < n; ++i) {
    std::string d;
    const size_t len = 3 + g() % 25;
    for (size_t k = 0; k < len; ++k) {
      if (k) d += (g() % 9 == 0) ? "\n" : " ";
      d += words[g() % words.size()];
    }
    docs.push_back(d + " " + std::to_string(i));
  }
  return docs;
}

struct SpCorpus {
  TempDir dir;
  std::vector<std::string> docs;
  DataConfig data;
  TokenizerConfig tok;
};

void make_setup(SpCorpus& s, std::mt19937_64& g) {
  s.docs = make_docs(g, 300);
  std::string text;
  for (const auto& d : s.docs) text += d + "\n%\n";
  write_file(s.dir / "corpus/poems", text);
  s.data = parse_data_config({{"inputs", {{{"path", "corpus"}, {"doc_separator", "%"}}}},
                              {"out_dir", "run/data"},
                              {"shard_tokens", 500},
                              {"val_fraction", 0.1}},
                             s.dir.path());
  ConfigReader r(
      json{{"kind", "sentencepiece"},
           {"path", "run/tokenizer.model"},
           {"train", {{"vocab_size", 320}, {"special_tokens", {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}}}}},
      "tokenizer");
  s.tok = parse_tokenizer_config(r, s.dir.path());
}

TEST(SentencePiecePrepare, TrainsTheTokenizerAndShardsDecodeToTheCorpus) {
  auto g = rng();
  SpCorpus s;
  make_setup(s, g);
  const PrepareResult r = prepare_corpus(s.data, s.tok);
  ASSERT_TRUE(fs::exists(s.tok.path));
  const auto tok = load_tokenizer(s.tok.path);
  EXPECT_EQ(tok->kind(), "sentencepiece");
  EXPECT_EQ(r.manifest.tokenizer_fingerprint, tok->fingerprint());
  EXPECT_EQ(r.manifest.tokenizer_kind, "sentencepiece");
  EXPECT_EQ(r.manifest.eot_id, tok->token_id("<|endoftext|>"));
  EXPECT_EQ(r.manifest.config["tokenizer"]["train"]["vocab_size"], 320);

  // Decoding each split, cut at end-of-text, gives back the documents in corpus order.
  std::vector<std::vector<std::string>> splits;
  for (const char* split : {"train", "val"}) {
    const TokenStream st = TokenStream::from_manifest(s.data.out_dir, split, tok->fingerprint());
    std::vector<int32_t> ids(st.size());
    st.read(0, ids);
    std::vector<std::string> docs;
    std::vector<int32_t> cur;
    for (int32_t id : ids) {
      if (id == tok->eot_id()) {
        docs.push_back(tok->decode(cur));
        cur.clear();
      } else {
        cur.push_back(id);
      }
    }
    EXPECT_TRUE(cur.empty());
    splits.push_back(docs);
  }
  size_t ti = 0, vi = 0;
  for (const auto& d : s.docs) {
    if (ti < splits[0].size() && splits[0][ti] == d) {
      ++ti;
    } else {
      ASSERT_LT(vi, splits[1].size()) << "missing: " << d;
      ASSERT_EQ(splits[1][vi], d);
      ++vi;
    }
  }
  EXPECT_EQ(ti + vi, s.docs.size());
  EXPECT_GT(vi, 0u);

  // Again: nothing to do, and the model is not retrained.
  const auto stamp = fs::last_write_time(s.tok.path);
  EXPECT_TRUE(prepare_corpus(s.data, s.tok).up_to_date);
  EXPECT_EQ(fs::last_write_time(s.tok.path), stamp);
}

TEST(SentencePiecePrepare, TokenizerSectionErrors) {
  auto g = rng();
  SpCorpus s;
  make_setup(s, g);
  TokenizerConfig no_train = s.tok;
  no_train.train_if_missing = false;
  expect_error([&] { load_or_train_tokenizer(no_train, s.data); },
               {s.tok.path.string(), "tokenizer not found", "\"train\" section"});
  TokenizerConfig inside = s.tok;
  inside.path = s.data.out_dir / "tokenizer.model";
  expect_error([&] { prepare_corpus(s.data, inside); }, {"tokenizer.path", "inside data.out_dir", "replaces whole"});
  TokenizerConfig small = s.tok;
  small.train.vocab_size = 100;
  expect_error([&] { load_or_train_tokenizer(small, s.data); }, {"vocab_size 100", "too small"});
  EXPECT_FALSE(fs::exists(s.tok.path));

  load_or_train_tokenizer(s.tok, s.data);  // trains
  TokenizerConfig wrong_kind = s.tok;
  wrong_kind.kind = "qwen-bpe";
  expect_error([&] { load_or_train_tokenizer(wrong_kind, s.data); },
               {s.tok.path.string(), "is a sentencepiece tokenizer", "tokenizer.kind is \"qwen-bpe\""});

  write_file(s.dir / "empty/x.txt", "%\n%\n");
  DataConfig empty = s.data;
  empty.inputs[0].path = (s.dir / "empty").string();
  TokenizerConfig fresh = s.tok;
  fresh.path = s.dir / "other.model";
  expect_error([&] { prepare_corpus(empty, fresh); }, {"the corpus is empty"});
}

}  // namespace
}  // namespace llm::test
