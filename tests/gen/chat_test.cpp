// The ChatML template against hand-written strings, the history trimming against token counts
// worked out by hand (one token per byte, one per special token), and multi-turn chat reusing
// the cache.
#include <gtest/gtest.h>

#include <sstream>

#include "gen_test_util.h"
#include "llm/chat.h"
#include "llm/error.h"
#include "test_util.h"

namespace llm::test {
namespace {

TEST(ChatTemplate, RendersQwenChatMl) {
  const std::vector<ChatMessage> one = {{"user", "Hi"}};
  EXPECT_EQ(render_chatml(one, true),
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  const std::vector<ChatMessage> turns = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye\nnow"}};
  EXPECT_EQ(render_chatml(turns, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nBye\nnow<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(render_chatml(std::span(turns).first(3), false),
            "<|im_start|>system\nBe brief.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n");
  // An empty system prompt is still a system message (no default inserted).
  const std::vector<ChatMessage> empty_sys = {{"system", ""}, {"user", "x"}};
  EXPECT_EQ(render_chatml(empty_sys, false), "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nx<|im_end|>\n");
  const std::vector<ChatMessage> bad = {{"tool", "x"}};
  EXPECT_THROW(render_chatml(bad, true), Error);
}

// Tokens of a message block with ByteTokenizer: <|im_start|> role \n content <|im_end|> \n.
int64_t block(const std::string& role, const std::string& content) {
  return 1 + int64_t(role.size()) + 1 + int64_t(content.size()) + 1 + 1;
}

TEST(ChatHistory, DropsTheOldestTurnsToFit) {
  const ByteTokenizer tok;
  const int64_t gen_prompt = 1 + 9 + 1;  // <|im_start|>assistant\n
  const int64_t full =
      block("system", "S") + 2 * (block("user", "u1") + block("assistant", "a1")) + block("user", "u3") + gen_prompt;
  ASSERT_EQ(full, 82);
  auto make = [&] {
    ChatHistory h("S");
    h.begin_turn(tok, "u1", 1000);
    h.end_turn("a1");
    h.begin_turn(tok, "u2", 1000);
    h.end_turn("a2");
    return h;
  };
  int64_t dropped = -1;
  {
    ChatHistory h = make();
    const auto ids = h.begin_turn(tok, "u3", 82, &dropped);
    EXPECT_EQ(dropped, 0);
    EXPECT_EQ(int64_t(ids.size()), 82);
    EXPECT_EQ(ids, tok.encode(render_chatml(h.messages(), true)));
  }
  {
    ChatHistory h = make();
    const auto ids = h.begin_turn(tok, "u3", 81, &dropped);
    EXPECT_EQ(dropped, 1);
    EXPECT_EQ(int64_t(ids.size()), 57);
    const std::vector<ChatMessage> want = {{"system", "S"}, {"user", "u2"}, {"assistant", "a2"}, {"user", "u3"}};
    ASSERT_EQ(h.messages().size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(h.messages()[i].role, want[i].role);
      EXPECT_EQ(h.messages()[i].content, want[i].content);
    }
    EXPECT_EQ(ids, tok.encode(render_chatml(want, true)));
  }
  {
    ChatHistory h = make();
    EXPECT_EQ(h.begin_turn(tok, "u3", 56, &dropped).size(), 32u);
    EXPECT_EQ(dropped, 2);
    EXPECT_EQ(h.messages().size(), 2u);
  }
  {
    ChatHistory h = make();
    try {
      h.begin_turn(tok, "u3", 31);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()),
                "chat: the system prompt and the message are 32 tokens, more than the 31 the context leaves for them "
                "(--ctx, --max-tokens)");
    }
    EXPECT_EQ(h.messages().size(), 5u);  // unchanged
  }
}

TEST(ChatHistory, AnUnansweredMessageIsReplaced) {
  const ByteTokenizer tok;
  ChatHistory h("S");
  h.begin_turn(tok, "first", 1000);
  h.begin_turn(tok, "second", 1000);
  ASSERT_EQ(h.messages().size(), 2u);
  EXPECT_EQ(h.messages()[1].content, "second");
  h.clear();
  EXPECT_EQ(h.messages().size(), 1u);
}

TEST(ChatHistory, RequiresChatTokens) {
  const ByteTokenizer plain({}, {"<|endoftext|>"});
  try {
    check_chat_tokenizer(plain);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "--chat: the tokenizer (byte-test) has no <|im_start|> token, so the model has no ChatML chat template; "
              "use --prompt or the plain REPL");
  }
  EXPECT_NO_THROW(check_chat_tokenizer(ByteTokenizer()));
}

FrontendOptions greedy_chat(int64_t max_tokens) {
  FrontendOptions o;
  o.sampling.temperature = 0.0f;
  o.sampling.repeat_penalty = 1.0f;
  o.gen.max_tokens = max_tokens;
  o.chat = true;
  o.system = "S";
  return o;
}

TEST(ChatFrontend, LaterTurnsReuseTheCacheAndAnswerAsAFreshModel) {
  auto g = rng();
  const ModelConfig cfg = small_gen_config();
  const auto w = peaked_weights(g, cfg);
  CpuBackend cpu(1);
  InferenceOptions io;
  io.context = 256;
  io.prefill_chunk = 8;
  InferenceModel m(cfg, w, cpu, io), fresh(cfg, w, cpu, io);
  const ByteTokenizer tok;
  Frontend fe(m, tok, greedy_chat(12));
  std::ostringstream out, err;
  const GenerateResult r1 = fe.answer("Hi there", out, err);
  EXPECT_EQ(out.str(), r1.text + "\n");
  const size_t first_prompt =
      tok.encode(render_chatml(std::vector<ChatMessage>{{"system", "S"}, {"user", "Hi there"}}, true)).size();
  const GenerateResult r2 = fe.answer("And then?", out, err);
  EXPECT_GE(r2.stats.reused_tokens, int64_t(first_prompt));
  // The second prompt is the whole conversation so far; a fresh model answers it the same way.
  const auto& msgs = fe.history().messages();
  ASSERT_EQ(msgs.size(), 5u);
  EXPECT_EQ(msgs[2].content, r1.text);
  EXPECT_EQ(msgs[4].content, r2.text);
  const auto prompt2 = tok.encode(render_chatml(std::span(msgs).first(4), true));
  EXPECT_EQ(r2.stats.reused_tokens + r2.stats.prompt_tokens, int64_t(prompt2.size()));
  Session s(fresh, tok);
  Sampler smp(greedy_chat(12).sampling);
  GenerateOptions go;
  go.max_tokens = 12;
  EXPECT_EQ(s.generate(prompt2, smp, go, {}).tokens, r2.tokens);
  fe.reset();
  EXPECT_EQ(fe.history().messages().size(), 1u);
  EXPECT_EQ(m.position(), 0);
}

TEST(ChatFrontend, KeepsTheConversationInsideASmallContext) {
  auto g = rng();
  CpuBackend cpu(1);
  auto m = make_model(g, cpu, 64);
  const ByteTokenizer tok;
  Frontend fe(*m, tok, greedy_chat(8));
  EXPECT_EQ(fe.chat_budget(), 56);
  std::ostringstream out, err;
  for (int turn = 0; turn < 6; ++turn) {
    const GenerateResult r = fe.answer("hello there", out, err);
    EXPECT_LE(r.stats.reused_tokens + r.stats.prompt_tokens, 56) << "turn " << turn;
  }
  EXPECT_NE(err.str().find("oldest turn(s) to fit the context]"), std::string::npos) << err.str();
}

TEST(ChatFrontend, ChatModeNeedsChatTokens) {
  auto g = rng();
  CpuBackend cpu(1);
  auto m = make_model(g, cpu, 64);
  const ByteTokenizer plain({}, {"<|endoftext|>"});
  EXPECT_THROW(Frontend(*m, plain, greedy_chat(8)), Error);
}

}  // namespace
}  // namespace llm::test
