// The document reader: separators, trimming, cleaning, pieces, UTF-8.
#include "data/corpus.h"

#include "data_test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;
using data::DocPiece;

struct Doc {
  std::string text;
  size_t pieces = 0;
};

// Reads every document of the given inputs, joining pieces.
std::vector<Doc> read_docs(const DataConfig& c) {
  data::DocumentReader r(c, data::resolve_inputs(c));
  std::vector<Doc> out;
  DocPiece p;
  bool open = false;
  while (r.next(p)) {
    if (!open) out.emplace_back();
    out.back().text += p.text;
    ++out.back().pieces;
    open = !p.last;
  }
  EXPECT_FALSE(open) << "the last document has no final piece";
  return out;
}

std::vector<std::string> texts(const std::vector<Doc>& d) {
  std::vector<std::string> t;
  for (const auto& x : d) t.push_back(x.text);
  return t;
}

DataConfig one_input(const fs::path& p, nlohmann::json opts = nlohmann::json::object()) {
  opts["path"] = p.string();
  return parse_data_config({{"inputs", {opts}}, {"out_dir", "/tmp/unused"}}, "/");
}

TEST(DocumentReader, SeparatorModes) {
  TempDir dir;
  const std::string text =
      "\n\nfirst doc\nline two  \n%\n%\r\n\nsecond\r\nthird line\n% \n   \n%\nlast without newline";
  write_file(dir / "f.txt", text);
  EXPECT_EQ(texts(read_docs(one_input(dir / "f.txt", {{"doc_separator", "%"}}))),
            (std::vector<std::string>{"first doc\nline two", "second\nthird line", "last without newline"}));
  // Blank lines separate documents with "".
  write_file(dir / "g.txt", "a\nb\n\n\n  \nc\n\nd");
  EXPECT_EQ(texts(read_docs(one_input(dir / "g.txt", {{"doc_separator", ""}}))),
            (std::vector<std::string>{"a\nb", "c", "d"}));
  // Without a separator a file is one document.
  EXPECT_EQ(texts(read_docs(one_input(dir / "g.txt"))), (std::vector<std::string>{"a\nb\n\n\n  \nc\n\nd"}));
}

TEST(DocumentReader, TerminalCodesAndInvalidUtf8) {
  EXPECT_EQ(data::strip_terminal_codes("\x1b[32m《感遇・其一》\x1b[m\n\x1b[33m作者：张九龄\x1b[m"),
            "《感遇・其一》\n作者：张九龄");
  EXPECT_EQ(data::strip_terminal_codes("_\bH_\bi b\bbo\bol\bld\bd"), "Hi bold");
  EXPECT_EQ(data::strip_terminal_codes("\x1b"
                                       "7x\x1b[1;31;40my"),
            "xy");
  EXPECT_EQ(data::count_invalid_utf8("ok \xff\xfe bad \xe8\xaf end \xe8\xaf\x97"), 4u);
  EXPECT_EQ(data::count_invalid_utf8("\xc0\xaf\xed\xa0\x80"), 5u);  // overlong '/', a UTF-16 surrogate
  EXPECT_EQ(data::count_invalid_utf8("plain 诗 text 𝄞"), 0u);

  TempDir dir;
  write_file(dir / "zh", "\x1b[32m《题》\x1b[m\n床前\xff明月光\n%\n\x1b[33m二\x1b[m\n");
  EXPECT_EQ(texts(read_docs(one_input(dir / "zh", {{"doc_separator", "%"}, {"strip_terminal_codes", true}}))),
            (std::vector<std::string>{"《题》\n床前\xff明月光", "二"}));  // bytes are kept as they are
}

TEST(DocumentReader, PiecesCutAtNewlinesOrCharacterBoundaries) {
  auto g = rng();
  // piece_cut against a brute-force statement of its rule.
  for (int trial = 0; trial < 200; ++trial) {
    std::string s;
    const size_t n = 1 + g() % 200;
    static const std::vector<std::string> parts = {"a", "\n", "é", "诗", "𝄞", " "};
    while (s.size() < n) s += parts[g() % parts.size()];
    const size_t limit = 4 + g() % 60;
    const size_t cut = data::piece_cut(s, limit);
    if (s.size() <= limit) {
      EXPECT_EQ(cut, s.size());
      continue;
    }
    ASSERT_GT(cut, 0u);
    ASSERT_LE(cut, limit);
    EXPECT_NE(static_cast<unsigned char>(s[cut]) & 0xC0, 0x80u) << "cut inside a character";
    const size_t nl = s.rfind('\n', limit - 1);
    if (nl != std::string::npos && nl + 1 >= limit / 2) {
      EXPECT_EQ(cut, nl + 1);
    }
  }

  TempDir dir;
  std::string big;
  while (big.size() < 5000) big += (g() % 5 ? "诗é word " : "\n");
  big = "x" + big + "y";
  write_file(dir / "big.txt", big);
  const auto docs = read_docs(one_input(dir / "big.txt", {{"doc_separator", "%"}}));
  DataConfig c = one_input(dir / "big.txt");
  c.max_document_bytes = 100;
  const auto pieces = read_docs(c);
  ASSERT_EQ(pieces.size(), 1u);
  EXPECT_EQ(pieces[0].text, docs[0].text);
  EXPECT_GE(pieces[0].pieces, big.size() / 100);
}

TEST(DocumentReader, VeryLongLinesStayBounded) {
  TempDir dir;
  std::string line(3 << 20, 'a');  // one 3 MiB line, no newline
  for (size_t i = 0; i < line.size(); i += 1000) line[i] = '\xe8', line[i + 1] = '\xaf', line[i + 2] = '\x97';
  write_file(dir / "line.txt", line + "\n%\nnext");
  DataConfig c = one_input(dir / "line.txt", {{"doc_separator", "%"}});
  c.max_document_bytes = 4096;
  data::DocumentReader r(c, data::resolve_inputs(c));
  DocPiece p;
  std::string joined;
  size_t largest = 0;
  while (r.next(p)) {
    largest = std::max(largest, p.text.size());
    joined += p.text;
    if (p.last) break;
  }
  EXPECT_EQ(joined, line);
  EXPECT_LE(largest, 4096u);
  ASSERT_TRUE(r.next(p));
  EXPECT_EQ(p.text, "next");
  EXPECT_FALSE(r.next(p));
  EXPECT_EQ(r.invalid_utf8_bytes(), 0u);
  EXPECT_EQ(r.bytes_read(), line.size() + 7);
}

TEST(DocumentReader, DebianFortunesZhIsCleanText) {
  const fs::path tang = "/usr/share/games/fortunes/tang300";
  if (!fs::exists(tang)) GTEST_SKIP() << tang << " is not installed (Debian package fortunes-zh)";
  const auto docs = read_docs(one_input(tang, {{"doc_separator", "%"}, {"strip_terminal_codes", true}}));
  ASSERT_GT(docs.size(), 250u);  // three hundred Tang poems
  for (const auto& d : docs) {
    ASSERT_EQ(d.text.find('\x1b'), std::string::npos) << d.text;
    ASSERT_NE(d.text.find("作者"), std::string::npos) << d.text;
  }
}

}  // namespace
}  // namespace llm::test
