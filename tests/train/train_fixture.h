// A small real training setup for trainer tests: a slice of Debian's fortunes as the corpus, a
// sentencepiece tokenizer trained on it, a tiny model, and a config built as JSON text.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/io_test_util.h"
#include "llm/config.h"
#include "llm/safetensors.h"
#include "test_util.h"

namespace llm::test {

inline const char* kFortunes = "/usr/share/games/fortunes/fortunes";

class TrainFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(kFortunes, std::ios::binary);
    ASSERT_TRUE(in.good()) << kFortunes << " is missing: run scripts/setup.sh (Debian package fortunes)";
    std::string text(200000, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<size_t>(in.gcount()));
    text.resize(text.rfind("\n%\n") + 3);  // whole fortunes only
    write_bytes(dir / "corpus.txt", text);
  }

  // The JSON of a config over the fixture's corpus; `extra` entries override "section.key".
  std::string config_json(const std::string& run_name = "run") const {
    nlohmann::json j = {{"model",
                         {{"vocab_size", 512},
                          {"hidden_size", 64},
                          {"intermediate_size", 96},
                          {"num_hidden_layers", 2},
                          {"num_attention_heads", 4},
                          {"num_key_value_heads", 2},
                          {"max_position_embeddings", 128},
                          {"rope_theta", 10000.0},
                          {"tie_word_embeddings", true}}},
                        {"tokenizer",
                         {{"kind", "sentencepiece"},
                          {"path", (dir / "tok.model").string()},
                          {"train", {{"vocab_size", 512}, {"max_sentences", 20000}}}}},
                        {"data",
                         {{"inputs", {{{"path", (dir / "corpus.txt").string()}, {"doc_separator", "%"}}}},
                          {"out_dir", (dir / "shards").string()},
                          {"val_fraction", 0.05}}},
                        {"train",
                         {{"device", "cpu"},
                          {"threads", 2},
                          {"seq_len", 32},
                          {"micro_batch", 4},
                          {"steps", 8},
                          {"eval_every", 4},
                          {"eval_batches", 2},
                          {"log_every", 100}}},
                        {"optim", {{"lr", 0.003}, {"warmup_steps", 2}}},
                        {"io", {{"run_dir", (dir / run_name).string()}, {"save_every", 0}, {"keep_last", 2}}}};
    return j.dump(2);
  }

  Config config(const std::vector<std::string>& sets = {}, const std::string& run_name = "run") const {
    return parse_config(config_json(run_name), "test.json", dir.path(), sets);
  }

  // Losses of each step of a run, from its metrics.jsonl.
  static std::vector<double> losses(const std::filesystem::path& run_dir) {
    std::ifstream in(run_dir / "metrics.jsonl");
    std::vector<double> out;
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) out.push_back(j["loss"].get<double>());
    }
    return out;
  }

  // The bytes of tensor `name` of a safetensors file.
  static std::string tensor_bytes(const std::filesystem::path& file, const std::string& name) {
    const SafetensorsReader r(file);
    const auto b = r.bytes(r.at(name));
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }

  TempDir dir;
};

}  // namespace llm::test
