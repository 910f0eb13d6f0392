// Streaming output: characters split across token pieces, ill-formed bytes (checked against the
// tokenizers' lossy decoding), and stop strings split across pieces.
#include <gtest/gtest.h>

#include "gen_test_util.h"
#include "llm/error.h"
#include "llm/generate.h"
#include "test_util.h"

namespace llm::test {
namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

// Pushes the pieces one by one and returns what each push (and the final flush) gave.
std::vector<std::string> stream(const std::vector<std::string>& pieces) {
  Utf8Stream s;
  std::vector<std::string> out;
  for (const auto& p : pieces) out.push_back(s.push(p));
  out.push_back(s.flush());
  return out;
}

TEST(Utf8Stream, HoldsSplitCharactersUntilComplete) {
  // é = C3 A9, 中 = E4 B8 AD, 😀 = F0 9F 98 80
  EXPECT_EQ(stream({"a\xC3",
                    "\xA9"
                    "b"}),
            (std::vector<std::string>{"a",
                                      "\xC3\xA9"
                                      "b",
                                      ""}));
  EXPECT_EQ(stream({"\xE4", "\xB8", "\xAD"}), (std::vector<std::string>{"", "", "\xE4\xB8\xAD", ""}));
  EXPECT_EQ(stream({"\xF0", "\x9F\x98\x80"}), (std::vector<std::string>{"", "\xF0\x9F\x98\x80", ""}));
  EXPECT_EQ(stream({"x\xF0\x9F", "\x98\x80\xE4", "\xB8\xAD"}),
            (std::vector<std::string>{"x", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD", ""}));
}

TEST(Utf8Stream, InvalidBytesBecomeReplacementCharacters) {
  // A byte that never starts a character is replaced at once.
  EXPECT_EQ(stream({"\xFF", "a"}), (std::vector<std::string>{kFFFD, "a", ""}));
  // A lead byte followed by a non-continuation: one U+FFFD for the lead, then the byte.
  EXPECT_EQ(stream({"\xC3", "A"}), (std::vector<std::string>{"", kFFFD + "A", ""}));
  // An unfinished character at the end: one U+FFFD for the maximal subpart E4 B8.
  EXPECT_EQ(stream({"\xE4\xB8"}), (std::vector<std::string>{"", kFFFD}));
  // A surrogate (ED A0 80): three maximal subparts of one byte each.
  EXPECT_EQ(stream({"\xED", "\xA0", "\x80"}), (std::vector<std::string>{"", kFFFD + kFFFD, kFFFD, ""}));
  // Overlong E0 80: E0 is not a prefix of any character with 80 next.
  EXPECT_EQ(stream({"\xE0",
                    "\x80"
                    "z"}),
            (std::vector<std::string>{"", kFFFD + kFFFD + "z", ""}));
}

TEST(Utf8Stream, RandomSplitsGiveTheTokenizersLossyDecoding) {
  auto g = rng();
  const ByteTokenizer tok;
  // Bytes biased to UTF-8 structure: ASCII, continuation bytes, lead bytes, invalid bytes.
  const std::vector<uint8_t> alphabet = {'a',  ' ',  0x80, 0x8F, 0x9F, 0xA0, 0xBF, 0xC2, 0xC3, 0xDF,
                                         0xE0, 0xE4, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0xC0};
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1), piece(1, 4);
  for (int rep = 0; rep < 2000; ++rep) {
    std::vector<int32_t> ids;
    for (int i = 0; i < 24; ++i) ids.push_back(alphabet[pick(g)]);
    std::vector<std::string> pieces;
    for (size_t i = 0; i < ids.size();) {
      const size_t n = std::min(piece(g), ids.size() - i);
      std::string p;
      for (size_t k = 0; k < n; ++k) p += tok.token_bytes(ids[i + k]);
      pieces.push_back(p);
      i += n;
    }
    std::string joined;
    for (const auto& part : stream(pieces)) {
      ASSERT_TRUE(valid_utf8(part)) << "a push returned part of a character";
      joined += part;
    }
    ASSERT_EQ(joined, tok.decode(ids));
  }
}

TEST(StopFilter, HoldsBackPossibleStartsAndCutsAtTheStop) {
  StopFilter f({"END", "\n\n"});
  EXPECT_EQ(f.push("abcE"), "abc");
  EXPECT_EQ(f.push("N"), "");
  EXPECT_EQ(f.push("x"), "ENx");  // not a stop after all
  EXPECT_EQ(f.push("yE"), "y");
  EXPECT_EQ(f.push("ND and more"), "");
  EXPECT_TRUE(f.stopped());
  EXPECT_EQ(f.push("later"), "");
  EXPECT_EQ(f.flush(), "");

  StopFilter two({"bc", "abcd"});
  EXPECT_EQ(two.push("xab"), "x");  // "ab" may begin "abcd"
  EXPECT_EQ(two.push("cd"), "");    // "abcd" starts before "bc"
  EXPECT_TRUE(two.stopped());

  StopFilter none({"zz"});
  EXPECT_EQ(none.push("az"), "a");
  EXPECT_EQ(none.flush(), "z");
  EXPECT_FALSE(none.stopped());
}

TEST(StopFilter, RejectsAnEmptyStopString) {
  try {
    StopFilter f({"a", ""});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--stop: a stop string is empty");
  }
}

}  // namespace
}  // namespace llm::test
