// Request parsing and validation of the OpenAI API shapes (src/serve/openai_api.cpp): defaults,
// every sampling field, and one error naming the field for each kind of bad input.
#include <gtest/gtest.h>

#include "serve/openai_api.h"

namespace llm::serve {
namespace {

const SamplingParams kDefaults{1.0f, 0, 1.0f, 0.0f, 1.0f, 0};

ApiRequest chat(const std::string& extra) {
  return parse_request(Endpoint::Chat, R"({"messages": [{"role": "user", "content": "hi"}])" + extra + "}", kDefaults,
                       512);
}

// The field an error names, or "<no error>".
std::string error_param(Endpoint e, const std::string& body) {
  try {
    parse_request(e, body, kDefaults, 512);
  } catch (const ApiError& err) {
    EXPECT_EQ(err.status, 400);
    EXPECT_FALSE(err.message.empty());
    return err.param.empty() ? "<body>" : err.param;
  }
  return "<no error>";
}

TEST(OpenAiRequest, DefaultsAreOpenAisAndFieldsOverrideThem) {
  const ApiRequest d = chat("");
  EXPECT_EQ(d.sampling.temperature, 1.0f);
  EXPECT_EQ(d.sampling.top_p, 1.0f);
  EXPECT_EQ(d.sampling.top_k, 0);
  EXPECT_EQ(d.sampling.repeat_penalty, 1.0f);
  EXPECT_EQ(d.gen.max_tokens, 512);
  EXPECT_FALSE(d.max_tokens_given);
  EXPECT_FALSE(d.stream);
  const ApiRequest r = chat(R"(, "temperature": 0.25, "top_p": 0.5, "top_k": 7, "min_p": 0.1, "seed": 99,
      "max_tokens": 33, "stop": ["a", "bc"], "stream": true, "stream_options": {"include_usage": true},
      "repeat_penalty": 1.1, "user": "ignored", "frequency_penalty": 0, "logprobs": false)");
  EXPECT_EQ(r.sampling.temperature, 0.25f);
  EXPECT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_EQ(r.sampling.seed, 99u);
  EXPECT_EQ(r.gen.max_tokens, 33);
  EXPECT_TRUE(r.max_tokens_given);
  EXPECT_EQ(r.gen.stop, (std::vector<std::string>{"a", "bc"}));
  EXPECT_TRUE(r.stream && r.include_usage);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.1f);
  EXPECT_EQ(chat(R"(, "max_completion_tokens": 9)").gen.max_tokens, 9);
}

TEST(OpenAiRequest, MessagesAcceptTextPartsAndTheDeveloperRole) {
  const ApiRequest r = parse_request(Endpoint::Chat,
                                     R"({"messages": [{"role": "developer", "content": "be brief"},
          {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]})",
                                     kDefaults, 16);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "ab");
  const ApiRequest c = parse_request(Endpoint::Completion, R"({"prompt": ["once"]})", kDefaults, 16);
  EXPECT_EQ(c.prompt, "once");
}

TEST(OpenAiRequest, EachBadFieldIsAnErrorNamingIt) {
  const std::string m = R"("messages": [{"role": "user", "content": "hi"}])";
  auto c = [&](const std::string& extra) { return error_param(Endpoint::Chat, "{" + m + ", " + extra + "}"); };
  EXPECT_EQ(error_param(Endpoint::Chat, "{oops"), "<body>");
  EXPECT_EQ(error_param(Endpoint::Chat, "[1]"), "<body>");
  EXPECT_EQ(error_param(Endpoint::Chat, "{}"), "messages");
  EXPECT_EQ(error_param(Endpoint::Chat, R"({"messages": []})"), "messages");
  EXPECT_EQ(error_param(Endpoint::Chat, R"({"messages": [{"role": "bot", "content": "x"}]})"), "messages[0].role");
  EXPECT_EQ(error_param(Endpoint::Chat, R"({"messages": [{"role": "user", "content": 5}]})"), "messages[0].content");
  EXPECT_EQ(error_param(Endpoint::Completion, "{}"), "prompt");
  EXPECT_EQ(error_param(Endpoint::Completion, R"({"prompt": ["a", "b"]})"), "prompt");
  EXPECT_EQ(c(R"("temperature": "hot")"), "temperature");
  EXPECT_EQ(c(R"("temperature": -1)"), "temperature");
  EXPECT_EQ(c(R"("top_p": 0)"), "top_p");
  EXPECT_EQ(c(R"("top_k": 1.5)"), "top_k");
  EXPECT_EQ(c(R"("min_p": 2)"), "min_p");
  EXPECT_EQ(c(R"("max_tokens": 0)"), "max_tokens");
  EXPECT_EQ(c(R"("max_tokens": "9")"), "max_tokens");
  EXPECT_EQ(c(R"("n": 3)"), "n");
  EXPECT_EQ(c(R"("stop": [1])"), "stop");
  EXPECT_EQ(c(R"("stop": "")"), "stop");
  EXPECT_EQ(c(R"("stream": "yes")"), "stream");
  EXPECT_EQ(c(R"("seed": "x")"), "seed");
  EXPECT_EQ(c(R"("model": 3)"), "model");
  EXPECT_EQ(c(R"("tools": [])"), "tools");
  EXPECT_EQ(c(R"("logprobs": true)"), "logprobs");
  EXPECT_EQ(c(R"("logit_bias": {"5": 100})"), "logit_bias");
  EXPECT_EQ(c(R"("presence_penalty": 0.5)"), "presence_penalty");
  EXPECT_EQ(c(R"("response_format": {"type": "json_object"})"), "response_format");
  EXPECT_EQ(error_param(Endpoint::Completion, R"({"prompt": "a", "echo": true})"), "echo");
}

TEST(OpenAiResponse, ShapesAreOpenAis) {
  const ResponseMeta meta{"chatcmpl-1", 1700000000, "m"};
  const auto r = response_json(Endpoint::Chat, meta, "hello", StopReason::MaxTokens, 5, 2);
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["total_tokens"], 7);
  const auto first = chunk_json(Endpoint::Chat, meta, "he", true, std::nullopt);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "he");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  const auto last = chunk_json(Endpoint::Chat, meta, "", false, StopReason::StopString);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_FALSE(last["choices"][0]["delta"].contains("content"));
  const auto t = response_json(Endpoint::Completion, ResponseMeta{"cmpl-2", 1, "m"}, "x", StopReason::StopToken, 1, 1);
  EXPECT_EQ(t["object"], "text_completion");
  EXPECT_EQ(t["choices"][0]["text"], "x");
  const ApiError e{404, "no", "invalid_request_error", "model", "model_not_found"};
  EXPECT_EQ(e.body()["error"]["code"], "model_not_found");
  EXPECT_EQ(e.body()["error"]["param"], "model");
}

}  // namespace
}  // namespace llm::serve
