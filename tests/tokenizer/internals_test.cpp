// The Qwen pipeline's parts on hand-derived cases: the pre-tokenizer split (each expectation is
// worked out from the regex in docs/tokenizers.md), the two BPE merge loops against each other,
// UTF-8 maximal subparts, the jsonl string parser.
#include <random>
#include <set>

#include "test_util.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/json_string.h"
#include "tokenizer/qwen_pretokenizer.h"
#include "tokenizer/unicode_tables.h"
#include "tokenizer/utf8.h"

namespace llm::test {
namespace {

std::vector<std::string> split(const std::string& s) {
  static const tok::UnicodeTables tables;
  std::vector<std::string_view> pieces;
  tok::qwen_pretokenize(tables, s, pieces);
  return {pieces.begin(), pieces.end()};
}

using V = std::vector<std::string>;

TEST(QwenPretokenizer, RegexAlternatives) {
  EXPECT_EQ(split("Hello world"), (V{"Hello", " world"}));
  // 1: contractions, ASCII apostrophe, either case, first alternative wins over longer words.
  EXPECT_EQ(split("I'm"), (V{"I", "'m"}));
  EXPECT_EQ(split("WE'LL"), (V{"WE", "'LL"}));
  EXPECT_EQ(split("'sa"), (V{"'s", "a"}));
  EXPECT_EQ(split("'Re'vE'd"), (V{"'Re", "'vE", "'d"}));
  EXPECT_EQ(split("'x"), (V{"'x"}));                                // not a contraction: alternative 2
  EXPECT_EQ(split("it\xE2\x80\x99s"), (V{"it", "\xE2\x80\x99s"}));  // ’ is not '
  // 2: one non-letter, non-digit, non-newline character may lead a letter run.
  EXPECT_EQ(split("(hello"), (V{"(hello"}));
  EXPECT_EQ(split("\thello"), (V{"\thello"}));
  EXPECT_EQ(split("\xC2\xA0word"), (V{"\xC2\xA0word"}));                          // NBSP
  EXPECT_EQ(split("\xE3\x80\x80\xE6\xBC\xA2"), (V{"\xE3\x80\x80\xE6\xBC\xA2"}));  // ideographic space + 漢
  EXPECT_EQ(split("\nword"), (V{"\n", "word"}));
  EXPECT_EQ(split("1abc"), (V{"1", "abc"}));
  // 3: digits one by one.
  EXPECT_EQ(split("2024"), (V{"2", "0", "2", "4"}));
  EXPECT_EQ(split("\xC2\xBD\xE2\x85\xAB"), (V{"\xC2\xBD", "\xE2\x85\xAB"}));  // ½ Ⅻ are \p{N}
  // 4: an optional space, a run of other characters, then newlines.
  EXPECT_EQ(split("x!!!\n\ny"), (V{"x", "!!!\n\n", "y"}));
  EXPECT_EQ(split(" ..."), (V{" ..."}));
  EXPECT_EQ(split("a  ..."), (V{"a", " ", " ..."}));
  // 5: whitespace up to its last newline.
  EXPECT_EQ(split("a  \n\n  b"), (V{"a", "  \n\n", " ", " b"}));
  EXPECT_EQ(split("\r\n\r\nx"), (V{"\r\n\r\n", "x"}));
  EXPECT_EQ(split(" \n \t"), (V{" \n", " \t"}));
  // 6: whitespace before non-whitespace leaves its last character to the next piece.
  EXPECT_EQ(split("a   b"), (V{"a", "  ", " b"}));
  EXPECT_EQ(split("end   "), (V{"end", "   "}));
  // 7: a single whitespace character before something that alternative 2/4 does not take.
  EXPECT_EQ(split("\t1"), (V{"\t", "1"}));
  // JavaScript \s: U+FEFF is whitespace, U+0085 (NEL) is not.
  EXPECT_EQ(split("a\xEF\xBB\xBF\xEF\xBB\xBF"
                  "1"),
            (V{"a", "\xEF\xBB\xBF", "\xEF\xBB\xBF", "1"}));
  EXPECT_EQ(split("\xC2\x85!"), (V{"\xC2\x85!"}));
  // Combining marks are not letters: they break a letter run.
  EXPECT_EQ(split("e\xCC\x81t"), (V{"e", "\xCC\x81t"}));
  // Ill-formed UTF-8: a maximal subpart is one "other" character.
  EXPECT_EQ(split("\xFF"
                  "abc"),
            (V{"\xFF"
               "abc"}));
  EXPECT_EQ(split("\xE4\xB8"
                  "abc"),
            (V{"\xE4\xB8"
               "abc"}));
  EXPECT_EQ(split("\xE4\xB8\xFF"), (V{"\xE4\xB8\xFF"}));
  EXPECT_EQ(split(""), V{});
}

TEST(QwenPretokenizer, PiecesCoverTheText) {
  auto g = rng();
  const std::vector<std::string> parts = {" ",
                                          "\n",
                                          "\r",
                                          "\t",
                                          "a",
                                          "Z",
                                          "7",
                                          "'",
                                          "s",
                                          "!",
                                          "\xC3\xA9",
                                          "\xE4\xB8\xAD",
                                          "\xF0\x9F\x98\x80",
                                          "\xE3\x80\x80",
                                          "\xFF",
                                          "\xCC\x81",
                                          "\xC2\xA0"};
  std::uniform_int_distribution<size_t> pick(0, parts.size() - 1), len(0, 30);
  for (int k = 0; k < 2000; ++k) {
    std::string s;
    for (size_t n = len(g); n > 0; --n) s += parts[pick(g)];
    std::string joined;
    for (const std::string& p : split(s)) {
      EXPECT_FALSE(p.empty());
      joined += p;
    }
    ASSERT_EQ(joined, s);
  }
}

// Random merge tables over a 4-letter alphabet: the quadratic loop and the heap loop must agree
// on every word (ties between equal pairs included).
TEST(BpeModel, ShortAndHeapLoopsAgree) {
  auto g = rng();
  for (int table = 0; table < 20; ++table) {
    int32_t byte_ids[256];
    for (int b = 0; b < 256; ++b) byte_ids[b] = b;
    tok::BpeModel bpe{std::span<const int32_t, 256>(byte_ids)};
    std::vector<int32_t> ids = {'a', 'b', 'c', 'd'};
    std::set<std::pair<int32_t, int32_t>> used;
    std::uniform_int_distribution<int> n_merges(5, 60);
    int32_t next = 256;
    for (int m = n_merges(g); m > 0; --m) {
      std::uniform_int_distribution<size_t> pick(0, ids.size() - 1);
      const int32_t l = ids[pick(g)], r = ids[pick(g)];
      if (!used.insert({l, r}).second) continue;
      bpe.add_merge(l, r, next);
      ids.push_back(next++);
    }
    bpe.finish();
    std::uniform_int_distribution<size_t> len(1, tok::BpeModel::kShortWord);
    std::uniform_int_distribution<int> letter(0, 3);
    for (int w = 0; w < 300; ++w) {
      std::string word(len(g), 'a');
      for (auto& c : word) c = static_cast<char>('a' + letter(g));
      std::vector<int32_t> a, b;
      bpe.encode_word_short(word, a);
      bpe.encode_word_heap(word, b);
      ASSERT_EQ(a, b) << word;
    }
  }
}

TEST(Utf8, MaximalSubpartsAsUnicodeTable3_8) {
  // The example of Unicode 15 section 3.9 (Table 3-8): 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  std::string out;
  tok::append_utf8_lossy(out, "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64");
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(out, "a" + r + r + r + "b" + r + "c" + r + r + "d");
  out.clear();
  tok::append_utf8_lossy(out, "\xED\xA0\x80\xF4\x90\x80\x80");  // a surrogate, above U+10FFFF
  EXPECT_EQ(out, r + r + r + r + r + r + r);
  EXPECT_TRUE(tok::is_valid_utf8("\xF0\x9F\x98\x80 \xE4\xB8\xAD"));
  EXPECT_FALSE(tok::is_valid_utf8("\xC0\x80"));
}

TEST(JsonStringLine, ParsesStringsAndRejectsEverythingElse) {
  std::string out;
  EXPECT_TRUE(tok::parse_json_string_line(R"(  "a\"b\\c\/\n\t\r\b\f\u00e9\ud83d\ude00"  )", out));
  EXPECT_EQ(out, "a\"b\\c/\n\t\r\b\f\xC3\xA9\xF0\x9F\x98\x80");
  EXPECT_TRUE(tok::parse_json_string_line("\"\xE4\xB8\xAD\"", out));
  EXPECT_EQ(out, "\xE4\xB8\xAD");
  EXPECT_TRUE(tok::parse_json_string_line(R"("\u0000")", out));
  EXPECT_EQ(out, std::string(1, '\0'));
  for (const std::string bad : {"", "5", "\"abc", "\"a\" x", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\u12\"",
                                "\"a\tb\"", "\"\xFF\"", "[\"a\"]", "null"}) {
    EXPECT_FALSE(tok::parse_json_string_line(bad, out)) << bad;
  }
}

}  // namespace
}  // namespace llm::test
