#include "llm/prepare.h"

#include <set>
#include <sstream>

#include "data_test_util.h"
#include "llm/loader.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Random documents: lines of words over ASCII and multi-byte UTF-8, no leading or trailing
// whitespace (so the reader's trimming leaves them unchanged), never a "%" line.
std::vector<std::string> random_docs(std::mt19937_64& g, size_t n) {
  static const std::vector<std::string> alphabet = {"a", "b", "c", "x", "y", "z", "é", "诗", "月", "—", "1", "!"};
  std::vector<std::string> docs;
  for (size_t i = 0; i < n; ++i) {
    std::string d;
    const size_t lines = 1 + g() % 4;
    for (size_t l = 0; l < lines; ++l) {
      if (l) d += "\n";
      const size_t words = 1 + g() % 8;
      for (size_t w = 0; w < words; ++w) {
        if (w) d += " ";
        const size_t len = 1 + g() % 6;
        for (size_t k = 0; k < len; ++k) d += alphabet[g() % alphabet.size()];
      }
    }
    docs.push_back(d + " #" + std::to_string(i));  // unique
  }
  return docs;
}

// Documents of a split, read back by cutting the token stream at end-of-text.
std::vector<std::string> split_docs(const fs::path& dir, const std::string& split,
                                    const std::string& fp = "byte-tokenizer-v1") {
  const TokenStream s = TokenStream::from_manifest(dir, split, fp);
  std::vector<int32_t> ids(s.size());
  s.read(0, ids);
  std::vector<std::string> docs;
  std::string cur;
  for (int32_t id : ids) {
    if (id == ByteTokenizer::kEot) {
      docs.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(id);
    }
  }
  EXPECT_TRUE(cur.empty()) << "the stream must end with end-of-text";
  return docs;
}

DataConfig config_for(const TempDir& dir, json inputs, json extra = json::object()) {
  json j = {{"inputs", inputs}, {"out_dir", "out"}, {"shard_tokens", 97}, {"val_fraction", 0.2},
            {"seed", 5},        {"threads", 2},     {"batch_bytes", 300}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  return parse_data_config(j, dir.path());
}

struct MixedCorpus {
  std::vector<std::string> docs;  // in corpus order
  json inputs;
};

// Three kinds of input: a fortune-style text file, a JSONL file, a directory of one-document files.
MixedCorpus write_mixed(std::mt19937_64& g, const TempDir& dir) {
  MixedCorpus m;
  m.docs = random_docs(g, 150);
  std::string fortunes = "%\n";  // a leading separator yields no empty document
  for (size_t i = 0; i < 60; ++i) fortunes += m.docs[i] + "\n%\n";
  write_file(dir / "in/fortunes", fortunes);
  std::string jsonl;
  for (size_t i = 60; i < 120; ++i) {
    jsonl += json{{"id", i}, {"content", m.docs[i]}}.dump() + "\n";
    if (i % 17 == 0) jsonl += "   \n";  // blank lines are skipped
  }
  write_file(dir / "in/docs.jsonl", jsonl);
  for (size_t i = 120; i < 150; ++i)
    write_file(dir / ("in/dir/sub/f" + std::to_string(1000 + i) + ".txt"), m.docs[i] + "\n\n");
  write_file(dir / "in/dir/sub/binary.bin", std::string("abc\0def", 7));      // skipped: binary
  write_file(dir / "in/dir/index.dat", "excluded");                           // skipped: excluded
  write_file(dir / "in/dir/.hidden", "hidden");                               // skipped: hidden
  fs::create_symlink(dir / "in/dir/sub/f1120.txt", dir / "in/dir/sub/z.u8");  // the same file twice
  m.inputs = json::array({{{"path", "in/fortunes"}, {"format", "text"}, {"doc_separator", "%"}},
                          {{"path", "in/*.jsonl"}, {"format", "jsonl"}, {"field", "content"}},
                          {{"path", "in/dir"}, {"exclude", {"*.dat"}}}});
  return m;
}

TEST(Prepare, MixedInputsBecomeShardsExactly) {
  auto g = rng();
  TempDir dir;
  const MixedCorpus m = write_mixed(g, dir);
  const DataConfig c = config_for(dir, m.inputs);
  ByteTokenizer tok;
  const PrepareResult r = prepare_corpus(c, tok);
  EXPECT_FALSE(r.up_to_date);
  const Manifest& man = r.manifest;
  EXPECT_EQ(man.train_documents + man.val_documents, m.docs.size());

  // Train and validation are complementary subsequences of the corpus, whole documents each.
  const auto train = split_docs(c.out_dir, "train"), val = split_docs(c.out_dir, "val");
  size_t ti = 0, vi = 0;
  for (const auto& d : m.docs) {
    if (ti < train.size() && train[ti] == d) {
      ++ti;
    } else {
      ASSERT_LT(vi, val.size()) << "document missing: " << d;
      ASSERT_EQ(val[vi], d);
      ++vi;
    }
  }
  EXPECT_EQ(ti, train.size());
  EXPECT_EQ(vi, val.size());
  EXPECT_GT(val.size(), 5u);  // 150 documents at 0.2: about 30
  EXPECT_LT(val.size(), 70u);

  // Shards: all but the last hold exactly shard_tokens; headers agree with the manifest.
  const Manifest back = read_manifest(c.out_dir);
  EXPECT_EQ(back.to_json(), man.to_json());
  for (const auto* list : {&back.train, &back.val}) {
    uint64_t docs = 0;
    for (size_t i = 0; i < list->size(); ++i) {
      const ShardFile f(c.out_dir / (*list)[i].file, "byte-tokenizer-v1");
      EXPECT_EQ(f.size(), (*list)[i].tokens);
      EXPECT_EQ(f.header().document_count, (*list)[i].documents);
      if (i + 1 < list->size()) {
        EXPECT_EQ(f.size(), 97u);
      }
      docs += f.header().document_count;
    }
    EXPECT_EQ(docs, list == &back.train ? back.train_documents : back.val_documents);
  }
  EXPECT_EQ(back.signature["files"].size(), 2u + 30u);  // fortunes, jsonl, 30 files; the rest skipped
  EXPECT_EQ(back.tokenizer_kind, "bytes");
  EXPECT_EQ(back.eot_id, ByteTokenizer::kEot);
  EXPECT_EQ(back.config["data"]["shard_tokens"], 97);
  // Nothing but the shards and the manifest, and no staging directory beside it.
  for (const auto& e : fs::directory_iterator(c.out_dir)) {
    const std::string n = e.path().filename().string();
    EXPECT_TRUE(n == "manifest.json" || n.ends_with(".tok")) << n;
  }
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos);
}

TEST(Prepare, SplitIsDeterministicBySeed) {
  auto g = rng();
  TempDir dir;
  const MixedCorpus m = write_mixed(g, dir);
  ByteTokenizer tok;
  const DataConfig a = config_for(dir, m.inputs, {{"out_dir", "a"}, {"threads", 1}, {"batch_bytes", 1 << 20}});
  const DataConfig b = config_for(dir, m.inputs, {{"out_dir", "b"}, {"threads", 3}});
  const DataConfig other = config_for(dir, m.inputs, {{"out_dir", "c"}, {"seed", 6}});
  prepare_corpus(a, tok);
  prepare_corpus(b, tok);
  prepare_corpus(other, tok);
  // Threads and batch size do not change a byte.
  for (const auto& e : fs::directory_iterator(a.out_dir)) {
    if (e.path().extension() == ".tok") {
      EXPECT_EQ(read_file(e.path()), read_file(b.out_dir / e.path().filename()));
    }
  }
  EXPECT_EQ(split_docs(a.out_dir, "val"), split_docs(b.out_dir, "val"));
  EXPECT_NE(split_docs(a.out_dir, "val"), split_docs(other.out_dir, "val"));
}

TEST(Prepare, AddingInputsMovesNoDocumentBetweenSplits) {
  auto g = rng();
  TempDir dir;
  const MixedCorpus m = write_mixed(g, dir);
  ByteTokenizer tok;
  const DataConfig before = config_for(dir, m.inputs, {{"out_dir", "before"}});
  prepare_corpus(before, tok);
  std::string extra;
  for (const auto& d : random_docs(g, 40)) extra += d + "\n%\n";
  write_file(dir / "in/extra", extra);
  nlohmann::json more = m.inputs;
  more.insert(more.begin(), json{{"path", "in/extra"}, {"doc_separator", "%"}});  // in front: every index shifts
  const DataConfig after = config_for(dir, more, {{"out_dir", "after"}});
  prepare_corpus(after, tok);
  const auto val_before = split_docs(before.out_dir, "val"), val_after = split_docs(after.out_dir, "val");
  const std::set<std::string> after_set(val_after.begin(), val_after.end());
  for (const auto& d : val_before) EXPECT_TRUE(after_set.count(d)) << "moved to train: " << d;
  const auto train_before = split_docs(before.out_dir, "train");
  for (const auto& d : train_before) EXPECT_FALSE(after_set.count(d)) << "moved to val: " << d;
}

TEST(Prepare, RerunIsANoOpUntilInputsOrSettingsChange) {
  auto g = rng();
  TempDir dir;
  const MixedCorpus m = write_mixed(g, dir);
  DataConfig c = config_for(dir, m.inputs);
  ByteTokenizer tok;
  prepare_corpus(c, tok);
  const std::string manifest = read_file(c.out_dir / "manifest.json");
  const auto stamp = fs::last_write_time(c.out_dir / "train_00000.tok");
  std::ostringstream log;
  const PrepareResult again = prepare_corpus(c, tok, {.log = &log});
  EXPECT_TRUE(again.up_to_date);
  EXPECT_NE(log.str().find("up to date"), std::string::npos) << log.str();
  EXPECT_TRUE(corpus_up_to_date(c, tok));
  EXPECT_EQ(read_file(c.out_dir / "manifest.json"), manifest);
  EXPECT_EQ(fs::last_write_time(c.out_dir / "train_00000.tok"), stamp);

  // A changed input file is noticed.
  std::ofstream(dir / "in/fortunes", std::ios::app) << "one more fortune\n%\n";
  EXPECT_FALSE(corpus_up_to_date(c, tok));
  PrepareResult r = prepare_corpus(c, tok);
  EXPECT_FALSE(r.up_to_date);
  EXPECT_EQ(r.manifest.train_documents + r.manifest.val_documents, m.docs.size() + 1);
  // So are a changed setting and another tokenizer; the thread count is not a setting that matters.
  c.threads = 1;
  EXPECT_TRUE(corpus_up_to_date(c, tok));
  c.shard_tokens = 50;
  EXPECT_FALSE(prepare_corpus(c, tok).up_to_date);
  EXPECT_FALSE(corpus_up_to_date(c, ByteTokenizer(257, "another")));
  // A damaged shard makes the directory stale.
  fs::resize_file(c.out_dir / "train_00001.tok", 100);
  EXPECT_FALSE(corpus_up_to_date(c, tok));
  EXPECT_FALSE(prepare_corpus(c, tok).up_to_date);
  EXPECT_TRUE(prepare_corpus(c, tok).up_to_date);
}

TEST(Prepare, InterruptedRunKeepsThePreviousOutput) {
  auto g = rng();
  TempDir dir;
  const MixedCorpus m = write_mixed(g, dir);
  const DataConfig c = config_for(dir, m.inputs);
  ByteTokenizer bad;
  bad.fail_on_ = m.docs[100];
  expect_error([&] { prepare_corpus(c, bad); }, {"asked to fail"});
  EXPECT_FALSE(fs::exists(c.out_dir));  // nothing that could look complete
  ByteTokenizer tok;
  prepare_corpus(c, tok);
  const std::string manifest = read_file(c.out_dir / "manifest.json");
  std::ofstream(dir / "in/fortunes", std::ios::app) << "changed\n";
  expect_error([&] { prepare_corpus(c, bad); }, {"asked to fail"});
  EXPECT_EQ(read_file(c.out_dir / "manifest.json"), manifest);  // the old, complete preparation
  split_docs(c.out_dir, "train");                               // still readable
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos);
}

TEST(Prepare, LongDocumentsArePiecesOfOneDocument) {
  auto g = rng();
  TempDir dir;
  std::string longdoc;
  while (longdoc.size() < 3000) longdoc += random_docs(g, 1)[0] + (g() % 3 ? " " : "\n");
  longdoc += "end";
  std::string oneline;  // no newline to cut at: pieces end on UTF-8 boundaries
  while (oneline.size() < 2000) oneline += "诗é";
  write_file(dir / "long.txt", longdoc + "\n%\n" + oneline + "\n");
  write_file(dir / "long.jsonl", json{{"text", longdoc}}.dump() + "\n");
  const DataConfig c =
      config_for(dir, {{{"path", "long.txt"}, {"doc_separator", "%"}}, {{"path", "long.jsonl"}, {"format", "jsonl"}}},
                 {{"max_document_bytes", 64}, {"val_fraction", 0}});
  ByteTokenizer tok;
  prepare_corpus(c, tok);
  EXPECT_EQ(split_docs(c.out_dir, "train"), (std::vector<std::string>{longdoc, oneline, longdoc}));
}

TEST(Prepare, FourByteShardsForLargeVocabularies) {
  TempDir dir;
  write_file(dir / "a.txt", "hello world");
  ByteTokenizer tok(151936);
  const DataConfig c = config_for(dir, {"a.txt"}, {{"val_fraction", 0}});
  prepare_corpus(c, tok);
  const ShardFile f(c.out_dir / "train_00000.tok");
  EXPECT_EQ(f.header().token_width, 4u);
  EXPECT_EQ(f.header().vocab_size, 151936u);
  EXPECT_EQ(split_docs(c.out_dir, "train"), std::vector<std::string>{"hello world"});
}

TEST(PrepareErrors, EmptyCorpus) {
  TempDir dir;
  write_file(dir / "empty.txt", "%\n   \n%\n\n%\n");
  write_file(dir / "empty.jsonl", "\n{\"text\": \"  \"}\n");
  const DataConfig c = config_for(
      dir, {{{"path", "empty.txt"}, {"doc_separator", "%"}}, {{"path", "empty.jsonl"}, {"format", "jsonl"}}});
  ByteTokenizer tok;
  expect_error([&] { prepare_corpus(c, tok); },
               {"data.inputs", "no documents", "2 file(s)", (dir / "empty.txt").string(), "the corpus is empty"});
  EXPECT_FALSE(fs::exists(c.out_dir));
}

TEST(PrepareErrors, MissingInputs) {
  TempDir dir;
  ByteTokenizer tok;
  expect_error([&] { prepare_corpus(config_for(dir, {"nope.txt"}), tok); },
               {(dir / "nope.txt").string(), "does not exist", "data.inputs[0]"});
  expect_error([&] { prepare_corpus(config_for(dir, {"in/*.jsonl"}), tok); },
               {(dir / "in/*.jsonl").string(), "matches no files", "data.inputs[0]"});
  fs::create_directories(dir / "emptydir");
  write_file(dir / "emptydir/x.dat", "excluded");
  expect_error(
      [&] {
        prepare_corpus(config_for(dir, {{{"path", "emptydir"}, {"exclude", {"*.dat"}}}}), tok);
      },
      {(dir / "emptydir").string(), "no text files", "data.inputs[0]"});
  write_file(dir / "bin", std::string("ab\0", 3));
  expect_error([&] { prepare_corpus(config_for(dir, {"bin"}), tok); },
               {(dir / "bin").string(), "looks binary", "byte offset 2"});
}

TEST(PrepareErrors, MalformedJsonl) {
  TempDir dir;
  write_file(dir / "a.jsonl", "{\"text\": \"fine\"}\n\n{\"text\": \"broken\"\n{\"text\": \"fine\"}\n");
  write_file(dir / "b.jsonl", "{\"text\": \"fine\"}\n{\"body\": \"no text\"}\n");
  write_file(dir / "c.jsonl", "[1, 2]\n");
  ByteTokenizer tok;
  expect_error(
      [&] {
        prepare_corpus(config_for(dir, {{{"path", "a.jsonl"}, {"format", "jsonl"}}}), tok);
      },
      {(dir / "a.jsonl").string() + ":3", "malformed JSON line"});
  expect_error(
      [&] {
        prepare_corpus(config_for(dir, {{{"path", "b.jsonl"}, {"format", "jsonl"}}}), tok);
      },
      {(dir / "b.jsonl").string() + ":2", "string field \"text\"", "absent"});
  expect_error(
      [&] {
        prepare_corpus(config_for(dir, {{{"path", "c.jsonl"}, {"format", "jsonl"}}}), tok);
      },
      {(dir / "c.jsonl").string() + ":1", "expected a JSON object"});
}

TEST(PrepareErrors, RefusesToReplaceAForeignDirectory) {
  TempDir dir;
  write_file(dir / "a.txt", "text");
  write_file(dir / "out/precious.txt", "keep me");
  ByteTokenizer tok;
  expect_error([&] { prepare_corpus(config_for(dir, {"a.txt"}), tok); },
               {(dir / "out").string(), "holds no manifest.json", "refusing"});
  EXPECT_EQ(read_file(dir / "out/precious.txt"), "keep me");
}

TEST(PrepareErrors, LoaderRejectsShardsOfAnotherTokenizer) {
  TempDir dir;
  write_file(dir / "a.txt", "some text to tokenise");
  ByteTokenizer tok(257, "tokenizer-A");
  const DataConfig c = config_for(dir, {"a.txt"}, {{"val_fraction", 0}});
  prepare_corpus(c, tok);
  expect_error([&] { TokenStream::from_manifest(c.out_dir, "train", "tokenizer-B"); },
               {(c.out_dir / "manifest.json").string(), "tokenizer-A", "tokenizer-B", "prepare the data again"});
  // A shard swapped in behind the manifest's back is caught by its own header.
  write_shard(c.out_dir / "train_00000.tok", std::vector<int32_t>(22, 1), 257, "tokenizer-B", 1);
  expect_error([&] { TokenStream::from_manifest(c.out_dir, "train", "tokenizer-A"); },
               {(c.out_dir / "train_00000.tok").string(), "tokenizer-B", "tokenizer-A"});
}

TEST(Prepare, ProgressLines) {
  auto g = rng();
  TempDir dir;
  const MixedCorpus m = write_mixed(g, dir);
  ByteTokenizer tok;
  std::ostringstream plain, tty;
  prepare_corpus(config_for(dir, m.inputs, {{"out_dir", "p"}}), tok, {.log = &plain, .progress_interval_s = 1e-9});
  prepare_corpus(config_for(dir, m.inputs, {{"out_dir", "t"}}), tok,
                 {.log = &tty, .tty = true, .progress_interval_s = 1e-9});
  EXPECT_NE(plain.str().find("MB/s"), std::string::npos);
  EXPECT_NE(plain.str().find("tok/s"), std::string::npos);
  EXPECT_EQ(plain.str().find('\r'), std::string::npos);
  EXPECT_NE(tty.str().find('\r'), std::string::npos);
  EXPECT_NE(tty.str().find("tokens/s"), std::string::npos);  // the summary
}

}  // namespace
}  // namespace llm::test
