// Helpers for the generation tests: a byte-level tokenizer whose token counts a test can work
// out by hand, small random models, temporary directories.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "llm/error.h"
#include "llm/hf_weights.h"
#include "llm/inference.h"
#include "llm/tokenizer.h"
#include "model/model_test_util.h"
#include "test_util.h"
#include "tokenizer/utf8.h"

namespace llm::test {

// Ids 0..255 are the bytes; then the special tokens (by default <|endoftext|>, <|im_start|>,
// <|im_end|>), then `extra` multi-byte pieces (matched longest first). Special tokens written in
// the text become their ids. decode() replaces ill-formed UTF-8 as Tokenizer requires.
class ByteTokenizer final : public Tokenizer {
 public:
  explicit ByteTokenizer(std::vector<std::string> extra = {},
                         std::vector<std::string> specials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
      : n_special_(static_cast<int32_t>(specials.size())) {
    for (int b = 0; b < 256; ++b) pieces_.emplace_back(1, static_cast<char>(b));
    for (auto& s : specials) pieces_.push_back(std::move(s));
    for (auto& s : extra) pieces_.push_back(std::move(s));
    for (const char* s : {"<|endoftext|>", "<|im_end|>"}) {
      if (const int32_t id = token_id(s); id >= 0) stop_.push_back(id);
    }
  }
  void set_stop_ids(std::vector<int32_t> ids) { stop_ = std::move(ids); }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < text.size();) {
      int32_t best = static_cast<uint8_t>(text[i]);
      size_t len = 1;
      for (size_t id = 256; id < pieces_.size(); ++id) {
        const std::string& p = pieces_[id];
        if (p.size() > len && text.substr(i, p.size()) == p) best = static_cast<int32_t>(id), len = p.size();
      }
      ids.push_back(best);
      i += len;
    }
    return ids;
  }
  std::string decode(std::span<const int32_t> ids) const override {
    std::string bytes, out;
    for (const int32_t id : ids) bytes += token_bytes(id);
    tok::append_utf8_lossy(out, bytes);
    return out;
  }
  std::string token_bytes(int32_t id) const override {
    LLM_CHECK(id >= 0 && id < vocab_size(), "ByteTokenizer: id ", id, " out of range");
    return pieces_[static_cast<size_t>(id)];
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t eot_id() const override { return token_id("<|endoftext|>"); }
  std::vector<int32_t> stop_ids() const override { return stop_; }
  int32_t token_id(std::string_view piece) const override {
    const auto it = std::find(pieces_.begin(), pieces_.end(), piece);
    return it == pieces_.end() ? -1 : static_cast<int32_t>(it - pieces_.begin());
  }
  bool is_special(int32_t id) const override { return id >= 256 && id < 256 + n_special_; }
  std::string fingerprint() const override { return "byte-test"; }
  std::string kind() const override { return "byte-test"; }
  void save(const std::filesystem::path& dir) const override { fail(dir.string(), ": ByteTokenizer cannot be saved"); }

 private:
  std::vector<std::string> pieces_;
  int32_t n_special_;
  std::vector<int32_t> stop_;
};

// A small model whose vocabulary (300) is larger than the ByteTokenizer's (259): padded rows,
// as real checkpoints have. Untied: with a tied output layer a random model's greedy choice is
// mostly the input token again, and the tests want varied text.
inline ModelConfig small_gen_config(int64_t vocab = 300, int64_t max_pos = 256) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = max_pos;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = false;
  return c;
}

// Random weights with the output layer scaled up so the logits are peaked, as a trained
// model's are (greedy near-ties are then rare).
inline std::vector<float> peaked_weights(std::mt19937_64& g, const ModelConfig& cfg, float scale = 3.0f) {
  const ParamTable table(cfg);
  std::vector<float> w = random_weights(g, table);
  if (const ParamInfo* h = table.find("lm_head.weight")) {
    for (int64_t i = 0; i < h->numel; ++i) w[size_t(h->offset + i)] *= scale;
  }
  return w;
}

inline std::unique_ptr<InferenceModel> make_model(std::mt19937_64& g, Backend& be, int64_t context,
                                                  const ModelConfig& cfg = small_gen_config()) {
  InferenceOptions io;
  io.context = context;
  io.prefill_chunk = 8;  // prompts span several prefill chunks
  return std::make_unique<InferenceModel>(cfg, peaked_weights(g, cfg), be, io);
}

// A model directory as llmgen takes it: a sentencepiece tokenizer (320 pieces, with the ChatML
// special tokens) trained on a fixed synthetic corpus, so the tokenizer is the same every run, and
// random peaked weights from `weight_seed` with a padded vocabulary, as real models have. Returns
// the corpus lines.
inline std::vector<std::string> write_sentencepiece_model(const std::filesystem::path& dir, uint64_t weight_seed) {
  std::filesystem::create_directories(dir);
  const std::vector<std::string> words = {"the",  "cat",  "sat",   "on",    "a",     "mat",   "dog",   "ran",  "far",
                                          "away", "and",  "then",  "it",    "was",   "happy", "sad",   "big",  "small",
                                          "red",  "blue", "hello", "world", "model", "text",  "token", "over", "under"};
  std::mt19937_64 g(12345);
  std::uniform_int_distribution<size_t> w(0, words.size() - 1), len(3, 12);
  std::vector<std::string> corpus;
  for (int i = 0; i < 3000; ++i) {
    std::string line;
    for (size_t k = len(g); k > 0; --k) line += (line.empty() ? "" : " ") + words[w(g)];
    corpus.push_back(line + ".");
  }
  SentencePieceTrainOptions o;
  o.vocab_size = 320;
  o.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  o.threads = 1;
  train_sentencepiece_on(corpus, o, dir / "tokenizer.model");
  const auto tok = load_tokenizer(dir / "tokenizer.model");
  std::mt19937_64 wg(weight_seed);
  const ModelConfig cfg = small_gen_config(tok->vocab_size() + 13);  // padded, as real models are
  write_hf_config(dir / "config.json", cfg, DType::F32);
  write_model_safetensors(dir / "model.safetensors", ParamTable(cfg), peaked_weights(wg, cfg), DType::F32);
  return corpus;
}

// A fresh directory under the system temp dir, removed when the object dies.
class GenTempDir {
 public:
  GenTempDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    const std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "suite";
    path_ = std::filesystem::temp_directory_path() / ("llm_gen_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~GenTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  GenTempDir(const GenTempDir&) = delete;
  GenTempDir& operator=(const GenTempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

inline bool valid_utf8(std::string_view s) { return tok::is_valid_utf8(s); }

}  // namespace llm::test
