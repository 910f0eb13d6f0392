// The generation loop on a small random model with a byte tokenizer, against a hand-written
// greedy loop over a second copy of the model: stop ids, stop strings, token limit, a full
// context, interruption, prefix reuse, and the padded vocabulary.
#include <gtest/gtest.h>

#include "gen_test_util.h"
#include "llm/error.h"
#include "llm/generate.h"
#include "test_util.h"

namespace llm::test {
namespace {

SamplingParams greedy() {
  SamplingParams p;
  p.temperature = 0.0f;
  p.repeat_penalty = 1.0f;
  return p;
}

// What the stream shows for ids: special tokens are hidden (GenerateOptions::show_special).
std::string visible(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::vector<int32_t> shown;
  for (int32_t id : ids) {
    if (!tok.is_special(id)) shown.push_back(id);
  }
  return tok.decode(shown);
}

class GenerateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_ = rng();
    weights_ = peaked_weights(g_, cfg_);
  }
  std::unique_ptr<InferenceModel> model(int64_t context = 128) {
    InferenceOptions io;
    io.context = context;
    io.prefill_chunk = 8;
    return std::make_unique<InferenceModel>(cfg_, weights_, cpu_, io);
  }
  // Greedy by hand: forward the prompt, then argmax over the tokenizer's ids and forward it,
  // until a stop id or n tokens.
  std::vector<int32_t> reference(const Tokenizer& tok, const std::vector<int32_t>& prompt, int n) {
    auto m = model();
    std::vector<float> l = m->forward(prompt);
    std::vector<int32_t> out;
    const auto stops = tok.stop_ids();
    while (int(out.size()) < n) {
      const auto end = l.begin() + tok.vocab_size();
      const auto id = int32_t(std::max_element(l.begin(), end) - l.begin());
      if (std::find(stops.begin(), stops.end(), id) != stops.end()) break;
      out.push_back(id);
      l = m->forward(std::vector<int32_t>{id});
    }
    return out;
  }

  std::mt19937_64 g_;
  ModelConfig cfg_ = small_gen_config();
  std::vector<float> weights_;
  CpuBackend cpu_{1};
};

TEST_F(GenerateTest, GreedyMatchesAHandWrittenLoopAndStreamsCompleteCharacters) {
  ByteTokenizer tok;
  tok.set_stop_ids({});
  auto m = model();
  Session s(*m, tok);
  Sampler smp(greedy());
  GenerateOptions o;
  o.max_tokens = 30;
  const auto prompt = tok.encode("Hello, world: ");
  std::string streamed;
  const GenerateResult r = s.generate(prompt, smp, o, [&](std::string_view t) {
    EXPECT_TRUE(valid_utf8(t));
    streamed += t;
  });
  const auto want = reference(tok, prompt, 30);
  EXPECT_EQ(r.tokens, want);
  EXPECT_EQ(r.text, visible(tok, want));
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.stats.reason, StopReason::MaxTokens);
  EXPECT_EQ(r.stats.generated, 30);
  EXPECT_EQ(r.stats.prompt_tokens, int64_t(prompt.size()));
  EXPECT_EQ(r.stats.decode_tokens, 29);  // the last token is not forwarded
  // The session mirrors the cache: the prompt and all but the last generated token.
  EXPECT_EQ(int64_t(s.cached().size()), m->position());
  EXPECT_EQ(s.cached().size(), prompt.size() + 29);
  // With show_special the special tokens are printed as their text.
  o.show_special = true;
  Sampler smp2(greedy());
  EXPECT_EQ(s.generate(prompt, smp2, o, {}).text, tok.decode(want));
}

TEST_F(GenerateTest, StopsOnAStopIdWithoutPrintingIt) {
  ByteTokenizer free_tok;
  free_tok.set_stop_ids({});
  const auto prompt = free_tok.encode("The answer is");
  const auto free_run = reference(free_tok, prompt, 30);
  // The last token that does not occur before its position becomes a stop id (the first token
  // when a random model repeats one token).
  size_t k = 0;
  for (size_t i = 1; i < free_run.size(); ++i) {
    if (std::find(free_run.begin(), free_run.begin() + long(i), free_run[i]) == free_run.begin() + long(i)) k = i;
  }
  ByteTokenizer tok;
  tok.set_stop_ids({free_run[k]});
  auto m = model();
  Session s(*m, tok);
  Sampler smp(greedy());
  GenerateOptions o;
  o.max_tokens = 30;
  const GenerateResult r = s.generate(prompt, smp, o, {});
  EXPECT_EQ(r.tokens, std::vector<int32_t>(free_run.begin(), free_run.begin() + long(k)));
  EXPECT_EQ(r.stats.reason, StopReason::StopToken);
  EXPECT_EQ(r.stats.generated, int64_t(k) + 1);
  EXPECT_EQ(r.text, visible(tok, r.tokens));
}

TEST_F(GenerateTest, StopsAtAStopStringWithoutPrintingIt) {
  ByteTokenizer tok;
  tok.set_stop_ids({});
  const auto prompt = tok.encode("Once upon a time");
  const std::string text = visible(tok, reference(tok, prompt, 40));
  // Two characters from the middle of the text, starting on a character boundary.
  size_t p = text.size() / 2;
  while (p > 0 && (uint8_t(text[p]) & 0xC0) == 0x80) --p;
  size_t e = p;
  for (int c = 0; c < 2 && e < text.size(); ++c) {
    ++e;
    while (e < text.size() && (uint8_t(text[e]) & 0xC0) == 0x80) ++e;
  }
  const std::string stop = text.substr(p, e - p);
  ASSERT_FALSE(stop.empty());
  auto m = model();
  Session s(*m, tok);
  Sampler smp(greedy());
  GenerateOptions o;
  o.max_tokens = 40;
  o.stop = {"a string that never appears \x01\x02", stop};
  std::string streamed;
  const GenerateResult r = s.generate(prompt, smp, o, [&](std::string_view t) { streamed += t; });
  EXPECT_EQ(r.text, text.substr(0, text.find(stop))) << "stop string \"" << stop << "\"";
  EXPECT_EQ(streamed, r.text);
  EXPECT_EQ(r.stats.reason, StopReason::StopString);
}

TEST_F(GenerateTest, AFullContextStopsCleanly) {
  ByteTokenizer tok;
  tok.set_stop_ids({});
  auto m = model(16);
  Session s(*m, tok);
  Sampler smp(greedy());
  GenerateOptions o;
  o.max_tokens = -1;
  const auto prompt = tok.encode("0123456789");
  const GenerateResult r = s.generate(prompt, smp, o, {});
  EXPECT_EQ(r.stats.reason, StopReason::ContextFull);
  EXPECT_EQ(r.tokens.size(), 16u - 10u + 1u);  // the token sampled after the 16th position is kept
  EXPECT_EQ(m->position(), 16);
  EXPECT_EQ(r.tokens, reference(tok, prompt, 7));

  try {
    s.generate(tok.encode("this prompt is too long"), smp, o, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "prompt: 23 tokens do not fit the context of 16 tokens (--ctx)");
  }
  try {
    s.generate(std::vector<int32_t>{}, smp, o, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "prompt: no tokens");
  }
}

TEST_F(GenerateTest, InterruptionStopsBetweenTokens) {
  ByteTokenizer tok;
  tok.set_stop_ids({});
  auto m = model();
  Session s(*m, tok);
  Sampler smp(greedy());
  int calls = 0;
  const GenerateResult r = s.generate(tok.encode("abc"), smp, GenerateOptions{}, {}, [&] { return ++calls > 3; });
  EXPECT_EQ(r.tokens.size(), 3u);
  EXPECT_EQ(r.stats.reason, StopReason::Interrupted);
}

TEST_F(GenerateTest, ASharedPrefixIsReusedAndGivesTheSameLogits) {
  ByteTokenizer tok;
  auto a = model(), b = model();
  Session warm(*a, tok), cold(*b, tok);
  Sampler smp(greedy());
  GenerateOptions o;
  o.max_tokens = 5;
  const auto p1 = tok.encode("The cat sat on the mat.");
  warm.generate(p1, smp, o, {});
  auto p2 = p1;
  for (int32_t id : tok.encode(" It was happy.")) p2.push_back(id);
  int64_t reused = -1;
  const auto got = warm.prefill(p2, &reused);
  EXPECT_GE(reused, int64_t(p1.size()));  // at least the first prompt; more if the answer began with " "
  const auto want = cold.prefill(p2);
  double ss = 0;
  for (float v : want) ss += double(v) * v;
  EXPECT_LE(max_rel_err(got, want, std::sqrt(ss / double(want.size()))).err, 1e-5);
  // The same prompt again: everything but the last token is reused.
  EXPECT_EQ(warm.cached(), p2);
  warm.prefill(p2, &reused);
  EXPECT_EQ(reused, int64_t(p2.size()) - 1);
  // A prompt that diverges at once.
  warm.prefill(tok.encode("Xyz"), &reused);
  EXPECT_EQ(reused, 0);
}

TEST_F(GenerateTest, NeverSamplesThePaddedVocabulary) {
  ByteTokenizer tok;  // 259 ids, the model has 300
  tok.set_stop_ids({});
  auto m = model(256);
  Session s(*m, tok);
  SamplingParams p;
  p.temperature = 50.0f;  // nearly uniform over everything allowed
  p.top_k = 0;
  p.top_p = 1.0f;
  p.repeat_penalty = 1.0f;
  p.seed = g_();
  Sampler smp(p);
  GenerateOptions o;
  o.max_tokens = 250;
  const GenerateResult r = s.generate(tok.encode("x"), smp, o, {});
  ASSERT_EQ(r.tokens.size(), 250u);
  for (int32_t id : r.tokens) ASSERT_LT(id, tok.vocab_size());
}

TEST_F(GenerateTest, RejectsATokenizerLargerThanTheModel) {
  std::vector<std::string> extra;
  for (int i = 0; i < 60; ++i) extra.push_back("piece" + std::to_string(i));
  ByteTokenizer big(extra);  // 319 ids
  auto m = model();
  try {
    Session s(*m, big);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "generate: the tokenizer has 319 ids but the model's vocabulary is 300");
  }
}

TEST(GenerateOptions, RejectsBadValues) {
  GenerateOptions o;
  o.max_tokens = 0;
  try {
    o.validate("--");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--max-tokens: 0 is not a positive count (-1: until the context is full)");
  }
  o.max_tokens = 5;
  o.stop = {""};
  EXPECT_THROW(o.validate("--"), Error);
}

}  // namespace
}  // namespace llm::test
