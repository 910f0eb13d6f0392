// The Qwen tokenizer on small tokenizer.json files built here: BPE rank order, merges as strings
// or pairs, added-token flags, tokenizer_config.json, the fingerprint.
#include "qwen_fixture.h"
#include "llm/tokenizer.h"
#include "test_util.h"
#include "tokenizer/fingerprint.h"
#include "tokenizer_test_util.h"

namespace llm::test {
namespace {

using Merges = std::vector<std::pair<std::string, std::string>>;

std::unique_ptr<Tokenizer> load_json(const TempDir& dir, const nlohmann::json& j,
                                     const std::string& name = "tokenizer.json") {
  write_file(dir / name, j.dump());
  return load_tokenizer(dir / name);
}

// Ids of the byte-level tokens of a string (ids 0..255 are the bytes).
std::vector<int32_t> bytes_of(const std::string& s) {
  std::vector<int32_t> ids;
  for (const char c : s) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

TEST(QwenFixture, MergesApplyByRankLeftmostFirst) {
  TempDir dir;
  // "abc": with (b,c) ranked first the result is a|bc, with (a,b) first ab|c.
  {
    const auto t = load_json(dir, qwen_fixture_json({{"b", "c"}, {"a", "b"}}));
    EXPECT_EQ(t->encode("abc"), (std::vector<int32_t>{'a', 256}));
  }
  {
    const auto t = load_json(dir, qwen_fixture_json({{"a", "b"}, {"b", "c"}}));
    EXPECT_EQ(t->encode("abc"), (std::vector<int32_t>{256, 'c'}));
  }
  {
    // Equal pairs: the leftmost merges first, so "aaa" is aa|a, and "aaaa" becomes aaaa.
    const auto t = load_json(dir, qwen_fixture_json({{"a", "a"}, {"aa", "aa"}}));
    EXPECT_EQ(t->encode("aaa"), (std::vector<int32_t>{256, 'a'}));
    EXPECT_EQ(t->encode("aaaa"), (std::vector<int32_t>{257}));
    EXPECT_EQ(t->encode("aaaaa"), (std::vector<int32_t>{257, 'a'}));
    // A long run takes the heap path of BPE: 100 a's are 25 aaaa's.
    EXPECT_EQ(t->encode(std::string(100, 'a')), std::vector<int32_t>(25, 257));
  }
}

TEST(QwenFixture, MergesAsStringsAndAsPairsAreTheSameTokenizer) {
  TempDir dir;
  const Merges merges = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}};
  const auto pairs = load_json(dir, qwen_fixture_json(merges, true), "pairs.json");
  const auto strings = load_json(dir, qwen_fixture_json(merges, false), "strings.json");
  for (const std::string s : {"hello world", "hellhell", "  \n héllo"}) EXPECT_EQ(pairs->encode(s), strings->encode(s));
  EXPECT_EQ(pairs->encode("hello"), std::vector<int32_t>{259});
  EXPECT_EQ(pairs->fingerprint(), strings->fingerprint());
  // The fingerprint ignores JSON formatting but sees every merge.
  const auto reordered = load_json(
      dir, qwen_fixture_json({{"l", "l"}, {"h", "e"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}}), "reordered.json");
  EXPECT_NE(reordered->fingerprint(), pairs->fingerprint());
  write_file(dir / "pretty.json", qwen_fixture_json(merges).dump(2));
  EXPECT_EQ(load_tokenizer(dir / "pretty.json")->fingerprint(), pairs->fingerprint());
}

TEST(QwenFixture, AddedTokenFlags) {
  TempDir dir;
  nlohmann::json j = qwen_fixture_json({});
  nlohmann::json l = added_token(1002, "<L>"), r = added_token(1003, "<R>"), w = added_token(1004, "<W>"),
                 n = added_token(1005, "\xC3\xA9"), longer = added_token(1006, "<L>>");
  l["lstrip"] = true;
  r["rstrip"] = true;
  w["single_word"] = true;
  n["normalized"] = true;  // "é", matched after NFC
  for (const auto& t : {l, r, w, n, longer}) j["added_tokens"].push_back(t);
  const auto t = load_json(dir, j);
  // lstrip: the whitespace before <L> goes; after it stays.
  EXPECT_EQ(t->encode("x \t <L> y"), (std::vector<int32_t>{'x', 1002, ' ', 'y'}));
  // rstrip: the whitespace after <R> goes (newlines too: JavaScript's \s).
  EXPECT_EQ(t->encode("x <R> \n y"), (std::vector<int32_t>{'x', ' ', 1003, 'y'}));
  // single_word: not a token when glued to a letter or digit.
  EXPECT_EQ(t->encode("a<W>"), (std::vector<int32_t>{'a', '<', 'W', '>'}));
  EXPECT_EQ(t->encode("(<W>)"), (std::vector<int32_t>{'(', 1004, ')'}));
  // normalized: matches the NFC form of a decomposed é.
  EXPECT_EQ(t->encode("e\xCC\x81"), (std::vector<int32_t>{1005}));
  // Longest match first: <L>> beats <L>.
  EXPECT_EQ(t->encode("<L>>"), (std::vector<int32_t>{1006}));
  // Added tokens are found in the raw text, also inside words, and decode to their content.
  EXPECT_EQ(t->encode("a<|endoftext|>b"), (std::vector<int32_t>{'a', 1000, 'b'}));
  EXPECT_EQ(t->decode(std::vector<int32_t>{'a', 1000, 1002}), "a<|endoftext|><L>");
  EXPECT_TRUE(t->is_special(1000));
  EXPECT_FALSE(t->is_special(1002));
  EXPECT_EQ(t->vocab_size(), 1007);
  // Ids between the vocabulary and the added tokens belong to nothing.
  EXPECT_THROW(t->token_bytes(500), Error);
}

TEST(QwenFixture, ConfigAddsTokensCleanUpAndEos) {
  TempDir dir;
  write_file(dir / "tokenizer_config.json", R"({
    "clean_up_tokenization_spaces": true,
    "eos_token": {"content": "<|eos|>", "__type": "AddedToken"},
    "added_tokens_decoder": {"1000": {"content": "<|endoftext|>", "special": true},
                             "1010": {"content": "<|eos|>", "special": true}}})");
  const auto t = load_json(dir, qwen_fixture_json({}));
  EXPECT_EQ(t->encode("a<|eos|>"), (std::vector<int32_t>{'a', 1010}));
  EXPECT_EQ(t->stop_ids(), (std::vector<int32_t>{1000, 1001, 1010}));
  EXPECT_EQ(t->eot_id(), 1000);
  EXPECT_EQ(t->decode(bytes_of("a . b , c 's")), "a. b, c's");  // HF clean-up
  TempDir out;
  t->save(out.path());
  EXPECT_EQ(read_file(out / "tokenizer_config.json"), read_file(dir / "tokenizer_config.json"));
  EXPECT_EQ(load_tokenizer(out.path())->fingerprint(), t->fingerprint());
}

TEST(QwenFixture, EotFallsBackToTheConfigEosToken) {
  TempDir dir;
  nlohmann::json j = qwen_fixture_json({});
  j["added_tokens"] = {added_token(300, "</s>")};
  write_file(dir / "tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_EQ(load_json(dir, j)->eot_id(), 300);
}

TEST(QwenFixture, FnvTestVectors) {
  // Published FNV-1a 128 values: the hash behind every fingerprint.
  tok::Fnv128 empty;
  EXPECT_EQ(empty.hex(), "6c62272e07bb014262b821756295c58d");
  tok::Fnv128 a;
  a.bytes("a", 1);
  EXPECT_EQ(a.hex(), "d228cb696f1a8caf78912b704e4a8964");
  tok::Fnv128 foobar;
  foobar.bytes("foobar", 6);
  EXPECT_EQ(foobar.hex(), "343e1662793c64bf6f0d3597ba446f18");
}

}  // namespace
}  // namespace llm::test
