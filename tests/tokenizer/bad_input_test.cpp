// Bad tokenizer files: each is one llm::Error whose message names the file and the place.
#include "llm/tokenizer.h"
#include "qwen_fixture.h"
#include "test_util.h"
#include "tokenizer_test_util.h"

namespace llm::test {
namespace {

// Loads path and expects an llm::Error whose message contains each of `parts`.
void expect_load_error(const std::filesystem::path& path, const std::vector<std::string>& parts) {
  try {
    load_tokenizer(path);
    ADD_FAILURE() << "loading " << path << " did not fail";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts)
      EXPECT_NE(msg.find(p), std::string::npos) << "missing \"" << p << "\" in: " << msg;
  }
}

// Writes j as tokenizer.json in a fresh directory and expects the load to fail with `parts`
// (the path of the file is always expected).
void expect_json_error(const nlohmann::json& j, std::vector<std::string> parts) {
  TempDir dir;
  write_file(dir / "tokenizer.json", j.dump());
  parts.push_back((dir / "tokenizer.json").string() + ": ");
  expect_load_error(dir / "tokenizer.json", parts);
}

nlohmann::json good() { return qwen_fixture_json({{"a", "b"}, {"ab", "c"}}); }

TEST(TokenizerBadInput, MissingFileOrDirectory) {
  expect_load_error("/nonexistent/dir/tokenizer.json", {"/nonexistent/dir/tokenizer.json: no such tokenizer file"});
  TempDir dir;
  expect_load_error(dir.path(),
                    {dir.path().string(), "expected tokenizer.json, tokenizer.model or exactly one *.model"});
}

TEST(TokenizerBadInput, NotJson) {
  TempDir dir;
  write_file(dir / "tokenizer.json", "{\"model\": {\"vocab\": ");
  expect_load_error(dir / "tokenizer.json", {(dir / "tokenizer.json").string() + ": not valid JSON"});
  write_file(dir / "tokenizer.json", "");
  expect_load_error(dir / "tokenizer.json", {(dir / "tokenizer.json").string() + ": not valid JSON"});
}

TEST(TokenizerBadInput, WrongTopLevelAndMissingModel) {
  expect_json_error(nlohmann::json::array({1, 2}), {"(top level): expected an object, got array"});
  nlohmann::json j = good();
  j.erase("model");
  expect_json_error(j, {"model: missing (required)"});
  j = good();
  j["model"].erase("vocab");
  expect_json_error(j, {"model.vocab: missing (required)"});
  j = good();
  j["model"].erase("merges");
  expect_json_error(j, {"model.merges: missing (required)"});
  j = good();
  j["model"]["type"] = "WordPiece";
  expect_json_error(j, {"model.type: expected \"BPE\""});
}

TEST(TokenizerBadInput, WrongTypes) {
  nlohmann::json j = good();
  j["model"]["vocab"] = nlohmann::json::array();
  expect_json_error(j, {"model.vocab: expected an object of token -> id, got array"});
  j = good();
  j["model"]["vocab"]["a"] = "97";
  expect_json_error(j, {"model.vocab[\"a\"]: expected an id", "string \"97\""});
  j = good();
  j["model"]["vocab"]["a"] = -1;
  expect_json_error(j, {"model.vocab[\"a\"]: expected an id"});
  j = good();
  j["model"]["merges"] = "a b";
  expect_json_error(j, {"model.merges: expected an array, got string"});
  j = good();
  j["model"]["merges"][1] = 7;
  expect_json_error(j, {"model.merges[1]: expected \"a b\" or [\"a\", \"b\"], got number 7"});
  j = good();
  j["model"]["merges"][0] = "a b c";
  expect_json_error(j, {"model.merges[0]: expected two tokens separated by one space"});
  j = good();
  j["added_tokens"][0]["content"] = 5;
  expect_json_error(j, {"added_tokens[0].content: expected a string, got number 5"});
  j = good();
  j["added_tokens"][1]["lstrip"] = "yes";
  expect_json_error(j, {"added_tokens[1].lstrip: expected true or false"});
  j = good();
  j["added_tokens"][1].erase("id");
  expect_json_error(j, {"added_tokens[1].id: missing (required)"});
  j = good();
  j["added_tokens"] = {{{"id", 1000}, {"content", "x"}}, {{"id", 1000}, {"content", "y"}}};
  expect_json_error(j, {"added_tokens: id 1000 is given to both \"x\" and \"y\""});
}

TEST(TokenizerBadInput, MergesReferringToUnknownTokens) {
  nlohmann::json j = good();
  j["model"]["merges"].push_back({"zz", "a"});
  expect_json_error(j, {"model.merges[2]: \"zz\" is not in model.vocab"});
  j = good();
  j["model"]["vocab"].erase(spell("abc"));
  expect_json_error(j, {"model.merges[1]: the merged token \"abc\" is not in model.vocab"});
}

TEST(TokenizerBadInput, VocabularyProblems) {
  nlohmann::json j = good();
  j["model"]["vocab"].erase("A");
  expect_json_error(j, {"model.vocab: has no token for byte 0x41"});
  j = good();
  j["model"]["vocab"]["extra"] = 97;
  expect_json_error(j, {"model.vocab: id 97 is given to both"});
  j = good();
  j["model"]["vocab"]["tab\t"] = 5000;  // a raw tab is not in GPT-2's byte alphabet
  expect_json_error(j, {"is not a byte-level token"});
}

TEST(TokenizerBadInput, UnsupportedPipelineParts) {
  nlohmann::json j = good();
  j["normalizer"] = {{"type", "NFKC"}};
  expect_json_error(j, {"normalizer: only {\"type\": \"NFC\"} or null is supported"});
  j = good();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+";
  expect_json_error(j, {"pre_tokenizer: only the Qwen2 pre-tokenizer is supported"});
  j = good();
  j["pre_tokenizer"] = nullptr;
  expect_json_error(j, {"pre_tokenizer: only the Qwen2 pre-tokenizer is supported", "got null"});
  j = good();
  j["model"]["byte_fallback"] = true;
  expect_json_error(j, {"model.byte_fallback: not supported"});
  j = good();
  j["model"]["dropout"] = 0.1;
  expect_json_error(j, {"model.dropout: BPE dropout is not supported"});
  j = good();
  j["decoder"] = {{"type", "Metaspace"}};
  expect_json_error(j, {"decoder: expected {\"type\": \"ByteLevel\"} or null"});
}

TEST(TokenizerBadInput, NoEndOfTextToken) {
  nlohmann::json j = good();
  j["added_tokens"] = nlohmann::json::array();
  expect_json_error(j, {"no <|endoftext|> token and no eos_token"});
}

TEST(TokenizerBadInput, BadTokenizerConfig) {
  TempDir dir;
  write_file(dir / "tokenizer.json", good().dump());
  write_file(dir / "tokenizer_config.json", "{ not json");
  expect_load_error(dir / "tokenizer.json", {(dir / "tokenizer_config.json").string() + ": not valid JSON"});
  write_file(dir / "tokenizer_config.json", R"({"clean_up_tokenization_spaces": "no"})");
  expect_load_error(dir / "tokenizer.json", {(dir / "tokenizer_config.json").string() +
                                             ": clean_up_tokenization_spaces: expected true or false"});
  write_file(dir / "tokenizer_config.json", R"({"added_tokens_decoder": {"1000": {"content": "<|other|>"}}})");
  expect_load_error(dir / "tokenizer.json", {(dir / "tokenizer_config.json").string() +
                                             ": added_tokens_decoder[\"1000\"]: content \"<|other|>\" differs"});
  write_file(dir / "tokenizer_config.json", R"({"added_tokens_decoder": {"x1": {"content": "<|other|>"}}})");
  expect_load_error(dir / "tokenizer.json", {"added_tokens_decoder[\"x1\"]: the key must be a decimal id"});
  write_file(dir / "tokenizer_config.json", R"({"eos_token": 3})");
  expect_load_error(dir / "tokenizer.json", {"eos_token: expected a string or {\"content\": ...}, got number 3"});
}

TEST(TokenizerBadInput, CorruptSentencePieceModel) {
  TempDir dir;
  write_file(dir / "bad.model", "this is not a protobuf \xFF\xFF\xFF\xFF");
  expect_load_error(dir / "bad.model", {(dir / "bad.model").string() + ": not a sentencepiece model"});
  write_file(dir / "empty.model", "");
  expect_load_error(dir / "empty.model", {(dir / "empty.model").string() + ": not a sentencepiece model"});
  // A directory with one *.model file loads that file.
  TempDir one;
  write_file(one / "x.model", "garbage");
  expect_load_error(one.path(), {(one / "x.model").string() + ": not a sentencepiece model"});
}

}  // namespace
}  // namespace llm::test
