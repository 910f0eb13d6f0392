// tokenize_stream (the library half of `llmtrain tokenize`) and encode_batch on the fixture
// tokenizer: output format and order, the three modes, errors naming the line.
#include <sstream>

#include "llm/tokenizer.h"
#include "qwen_fixture.h"
#include "test_util.h"
#include "tokenizer_test_util.h"

namespace llm::test {
namespace {

std::unique_ptr<Tokenizer> fixture_tokenizer(const TempDir& dir) {
  write_file(dir / "tokenizer.json", qwen_fixture_json({{"h", "i"}, {" ", "w"}}).dump());
  return load_tokenizer(dir / "tokenizer.json");
}

std::string run(const Tokenizer& t, const std::string& input, TokenizeStreamOptions opt) {
  std::istringstream in(input);
  std::ostringstream out;
  tokenize_stream(t, in, out, opt);
  return out.str();
}

void expect_stream_error(const Tokenizer& t, const std::string& input, TokenizeStreamOptions opt,
                         const std::string& expected, const std::string& written_before) {
  std::istringstream in(input);
  std::ostringstream out;
  try {
    tokenize_stream(t, in, out, opt);
    ADD_FAILURE() << "no error for " << input;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
  EXPECT_EQ(out.str(), written_before);
}

TEST(TokenizeStream, RawLinesJsonlAndDecode) {
  TempDir dir;
  const auto t = fixture_tokenizer(dir);
  // Raw lines: the newline ends the line and is not encoded; an empty line gives [].
  EXPECT_EQ(run(*t, "hi\n\nhi w\n", {}), "[256]\n[]\n[256,257]\n");
  EXPECT_EQ(run(*t, "hi", {}), "[256]\n");  // a last line without newline
  EXPECT_EQ(run(*t, "", {}), "");
  // JSON strings: escapes, added tokens, surrounding blanks.
  EXPECT_EQ(run(*t, "\"hi\\nhi\"\n  \"<|endoftext|>\"  \n\"\"\n", {.jsonl = true}), "[256,10,256]\n[1000]\n[]\n");
  // Decode: JSON arrays of ids -> JSON strings (invalid UTF-8 -> U+FFFD, escapes as JSON).
  EXPECT_EQ(run(*t, "[256,10,1000]\n[]\n[228, 184]\n[34]\n", {.decode = true}),
            "\"hi\\n<|endoftext|>\"\n\"\"\n\"\xEF\xBF\xBD\"\n\"\\\"\"\n");
}

TEST(TokenizeStream, OrderIsKeptWithManyThreadsAndBlocks) {
  TempDir dir;
  const auto t = fixture_tokenizer(dir);
  auto g = rng();
  std::uniform_int_distribution<int> len(0, 40), ch('a', 'k');
  std::string input, expected;
  std::vector<std::string> texts;
  for (int i = 0; i < 20000; ++i) {  // more than one block of 8192 lines
    std::string s(static_cast<size_t>(len(g)), ' ');
    for (auto& c : s) c = static_cast<char>(ch(g));
    input += s + "\n";
    texts.push_back(s);
  }
  for (const auto& ids : encode_batch(*t, texts, 1)) {
    nlohmann::json j = ids;
    expected += j.dump() + "\n";
  }
  EXPECT_EQ(run(*t, input, {.threads = 4}), expected);
  EXPECT_EQ(run(*t, input, {.threads = 1}), expected);
}

TEST(TokenizeStream, BadLinesNameTheLineNumber) {
  TempDir dir;
  const auto t = fixture_tokenizer(dir);
  expect_stream_error(*t, "\"hi\"\n\"ok\"\n\"unterminated\n\"hi\"\n", {.jsonl = true},
                      "tokenize: line 3: not a JSON string", "[256]\n[111,107]\n");
  expect_stream_error(*t, "\"hi\"\n42\n", {.jsonl = true}, "tokenize: line 2: expected a JSON string, got number 42",
                      "[256]\n");
  expect_stream_error(*t, "[1]\n[1, \"x\"]\n", {.decode = true},
                      "tokenize: line 2: element 1: expected an integer id, got string \"x\"", "\"\\u0001\"\n");
  expect_stream_error(*t, "[5000]\n", {.decode = true}, "tokenize: line 1: element 0: id 5000 is outside [0, 1002)",
                      "");
  expect_stream_error(*t, "{\"a\": 1}\n", {.decode = true},
                      "tokenize: line 1: expected a JSON array of ids, got object", "");
  expect_stream_error(*t, "[1,\n", {.decode = true}, "tokenize: line 1: not a JSON array of ids", "");
  // A number beyond a double (nlohmann's out_of_range, not a parse error).
  expect_stream_error(*t, "[1]\n[1e400]\n", {.decode = true},
                      "tokenize: line 2: expected a JSON array of ids, got a number beyond a double", "\"\\u0001\"\n");
  expect_stream_error(*t, "1e400\n", {.jsonl = true},
                      "tokenize: line 1: expected a JSON string, got a number beyond a double", "");
  // Ids in range that name no token (the gap between the vocabulary and the added tokens).
  expect_stream_error(*t, "[600]\n", {.decode = true}, "tokenize: line 1: decode: id 600 belongs to no token", "");
}

}  // namespace
}  // namespace llm::test
