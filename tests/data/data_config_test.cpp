#include "llm/data_config.h"

#include "data_test_util.h"

namespace llm::test {
namespace {

using nlohmann::json;

json good_data() {
  return {{"inputs",
           {{{"path", "/usr/share/games/fortunes"},
             {"doc_separator", "%"},
             {"strip_terminal_codes", true},
             {"exclude", {"*.dat", "*.u8"}}},
            {{"path", "corpus/*.jsonl"}, {"format", "jsonl"}, {"field", "content"}},
            "books/"}},
          {"out_dir", "../runs/x/data/"},
          {"shard_tokens", 1000},
          {"val_fraction", 0.05},
          {"val_max_tokens", 5000},
          {"seed", 9},
          {"threads", 3}};
}

TEST(DataConfig, ParsesAndResolvesPaths) {
  const DataConfig c = parse_data_config(good_data(), "/work/configs");
  ASSERT_EQ(c.inputs.size(), 3u);
  EXPECT_EQ(c.inputs[0].path, "/usr/share/games/fortunes");
  EXPECT_TRUE(c.inputs[0].has_separator);
  EXPECT_EQ(c.inputs[0].doc_separator, "%");
  EXPECT_TRUE(c.inputs[0].strip_terminal_codes);
  EXPECT_EQ(c.inputs[0].exclude, (std::vector<std::string>{"*.dat", "*.u8"}));
  EXPECT_EQ(c.inputs[1].path, "/work/configs/corpus/*.jsonl");
  EXPECT_EQ(c.inputs[1].format, "jsonl");
  EXPECT_EQ(c.inputs[1].field, "content");
  EXPECT_EQ(c.inputs[2].path, "/work/configs/books/");
  EXPECT_EQ(c.inputs[2].format, "text");
  EXPECT_FALSE(c.inputs[2].has_separator);
  EXPECT_EQ(c.out_dir, "/work/runs/x/data");
  EXPECT_EQ(c.shard_tokens, 1000);
  EXPECT_EQ(c.val_fraction, 0.05);
  EXPECT_EQ(c.val_max_tokens, 5000);
  EXPECT_EQ(c.seed, 9u);
  EXPECT_EQ(c.threads, 3);
  EXPECT_EQ(c.prefetch_batches, 4);  // a default
  // The effective config reads back to the same thing.
  EXPECT_EQ(to_json(parse_data_config(to_json(c), "/elsewhere")), to_json(c));
}

TEST(DataConfig, Errors) {
  auto with = [](const std::string& key, json v) {
    json j = good_data();
    j[key] = v;
    return j;
  };
  const std::string base = "/b";
  expect_error([&] { parse_data_config(with("bogus", 1), base); },
               {"data.bogus", "unknown key", "inputs", "out_dir", "shard_tokens", "val_fraction"});
  expect_error([&] { parse_data_config(with("val_fraction", 0.9), base); }, {"data.val_fraction", "[0, 0.5]", "0.9"});
  expect_error([&] { parse_data_config(with("shard_tokens", 0), base); }, {"data.shard_tokens", "positive"});
  expect_error([&] { parse_data_config(with("seed", "x"), base); }, {"data.seed", "expected an integer"});
  expect_error([&] { parse_data_config(with("inputs", json::array()), base); }, {"data.inputs", "empty"});
  json j = good_data();
  j.erase("inputs");
  expect_error([&] { parse_data_config(j, base); }, {"data.inputs", "required"});
  j = good_data();
  j.erase("out_dir");
  expect_error([&] { parse_data_config(j, base); }, {"data.out_dir", "required"});
  j = good_data();
  j["inputs"][1]["bogus"] = true;
  expect_error([&] { parse_data_config(j, base); }, {"data.inputs[1].bogus", "unknown key", "path", "format", "field"});
  j = good_data();
  j["inputs"][1]["format"] = "csv";
  expect_error([&] { parse_data_config(j, base); }, {"data.inputs[1].format", "\"csv\"", "text, jsonl"});
  j = good_data();
  j["inputs"][0]["field"] = "text";
  expect_error([&] { parse_data_config(j, base); }, {"data.inputs[0].field", "only for format \"jsonl\""});
  j = good_data();
  j["inputs"][1]["doc_separator"] = "%";
  expect_error([&] { parse_data_config(j, base); }, {"data.inputs[1].doc_separator", "only for format \"text\""});
  j = good_data();
  j["inputs"][0].erase("path");
  expect_error([&] { parse_data_config(j, base); }, {"data.inputs[0].path", "required"});
  j = good_data();
  j["inputs"][2] = 5;
  expect_error([&] { parse_data_config(j, base); }, {"data.inputs[2]", "expected an object"});
}

TEST(TokenizerConfig, ParsesTrainingOptions) {
  const json j = {
      {"kind", "sentencepiece"},
      {"path", "../runs/tiny/tokenizer.model"},
      {"train",
       {{"vocab_size", 4096}, {"special_tokens", {"<|endoftext|>", "<|im_start|>"}}, {"model_type", "unigram"}}}};
  ConfigReader r(j, "tokenizer");
  const TokenizerConfig c = parse_tokenizer_config(r, "/work/configs");
  EXPECT_EQ(c.kind, "sentencepiece");
  EXPECT_EQ(c.path, "/work/runs/tiny/tokenizer.model");
  EXPECT_TRUE(c.train_if_missing);
  EXPECT_EQ(c.train.vocab_size, 4096);
  EXPECT_EQ(c.train.model_type, "unigram");
  EXPECT_TRUE(c.train.byte_fallback);
  EXPECT_EQ(c.train.special_tokens, (std::vector<std::string>{"<|endoftext|>", "<|im_start|>"}));
  ConfigReader again(to_json(c), "tokenizer");
  EXPECT_EQ(to_json(parse_tokenizer_config(again, "/x")), to_json(c));

  ConfigReader qwen(json{{"kind", "qwen-bpe"}, {"path", "/models/qwen"}}, "tokenizer");
  const TokenizerConfig q = parse_tokenizer_config(qwen, "/work");
  EXPECT_EQ(q.kind, "qwen-bpe");
  EXPECT_FALSE(q.train_if_missing);
}

TEST(TokenizerConfig, Errors) {
  const auto parse = [](json j) {
    ConfigReader r(j, "tokenizer");
    return parse_tokenizer_config(r, "/b");
  };
  expect_error([&] { parse({{"kind", "wordpiece"}, {"path", "x"}}); }, {"tokenizer.kind", "sentencepiece, qwen-bpe"});
  expect_error([&] { parse({{"kind", "sentencepiece"}}); }, {"tokenizer.path", "required"});
  expect_error(
      [&] {
        parse({{"kind", "qwen-bpe"}, {"path", "x"}, {"train", {{"vocab_size", 100}}}});
      },
      {"tokenizer.train", "only available for kind \"sentencepiece\""});
  expect_error(
      [&] {
        parse({{"path", "x"}, {"train", {{"vocab", 100}}}});
      },
      {"tokenizer.train.vocab", "unknown key", "vocab_size", "byte_fallback"});
  expect_error([&] { parse({{"path", "x"}, {"train", {{"vocab_size", 10}}}}); }, {"tokenizer.train.vocab_size", "64"});
  expect_error(
      [&] {
        parse({{"path", "x"}, {"colour", "red"}});
      },
      {"tokenizer.colour", "unknown key", "kind", "path", "train"});
}

}  // namespace
}  // namespace llm::test
