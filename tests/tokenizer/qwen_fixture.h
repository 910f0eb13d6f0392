// A tiny tokenizer.json in the Qwen format, built in the test: the 256 byte tokens (ids 0..255
// in byte order), a few merges and added tokens. Tests edit the JSON to make bad files.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace llm::test {

// The tokenizer.json spelling of raw bytes.
inline std::string spell(const std::string& bytes) { return tok::bytes_to_byte_level(bytes); }

struct Fixture {
  nlohmann::json json;
  std::vector<std::pair<std::string, std::string>> merges;  // raw bytes
};

// merges: pairs of raw-byte strings in rank order; each merged token gets the next id from 256.
inline nlohmann::json qwen_fixture_json(const std::vector<std::pair<std::string, std::string>>& merges,
                                        bool merges_as_pairs = true) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[spell(std::string(1, static_cast<char>(b)))] = b;
  int next = 256;
  nlohmann::json m = nlohmann::json::array();
  for (const auto& [a, b] : merges) {
    if (!vocab.contains(spell(a + b))) vocab[spell(a + b)] = next++;
    if (merges_as_pairs) {
      m.push_back({spell(a), spell(b)});
    } else {
      m.push_back(spell(a) + " " + spell(b));
    }
  }
  auto added = [](int id, const std::string& content, bool special) {
    return nlohmann::json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                          {"rstrip", false}, {"normalized", false}, {"special", special}};
  };
  nlohmann::json j;
  j["version"] = "1.0";
  j["added_tokens"] = {added(1000, "<|endoftext|>", true), added(1001, "<|im_end|>", true)};
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}};
  j["post_processor"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", false},
                {"vocab", vocab},
                {"merges", m}};
  return j;
}

inline nlohmann::json added_token(int id, const std::string& content) {
  return nlohmann::json{{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
                        {"rstrip", false}, {"normalized", false}, {"special", false}};
}

}  // namespace llm::test
