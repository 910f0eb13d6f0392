// The OpenAI API's request and response shapes, without HTTP: parsing and validating a
// /v1/chat/completions or /v1/completions body into a generation request, and the JSON of
// responses, stream chunks and errors ({"error": {"message", "type", "param", "code"}}).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "llm/chat.h"
#include "llm/generate.h"
#include "llm/sampler.h"

namespace llm::serve {

// An error answered to the client: HTTP status and OpenAI's error object.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field, or empty
  std::string code;   // machine-readable, or empty
  nlohmann::json body() const;
};

enum class Endpoint { Chat, Completion };

// A validated request. The prompt is text: chat messages are rendered with the ChatML template.
struct ApiRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;                  // as the client named it (may be empty)
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // completion
  SamplingParams sampling;
  GenerateOptions gen;
  bool max_tokens_given = false;  // else gen.max_tokens is the server's default
  bool ignore_eos = false;        // extension (vLLM, llama-server): generate max_tokens whatever
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

// Parses and validates a request body. Defaults: OpenAI's (temperature 1, top_p 1, no top-k,
// no repetition penalty) unless the server's `defaults` say otherwise. Throws ApiError naming
// the field.
ApiRequest parse_request(Endpoint endpoint, const std::string& body, const SamplingParams& defaults,
                         int64_t default_max_tokens);

// finish_reason for a stop reason: "stop" (stop token or string), "length" (token limit, context).
std::string finish_reason(StopReason r);

struct ResponseMeta {
  std::string id;       // chatcmpl-... / cmpl-...
  int64_t created = 0;  // unix seconds
  std::string model;
};

nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens);
// The whole (non-streamed) response.
nlohmann::json response_json(Endpoint e, const ResponseMeta& m, const std::string& text, StopReason reason,
                             int64_t prompt_tokens, int64_t completion_tokens);
// One server-sent event's JSON: a text delta (first: with the assistant role), or the final chunk
// with finish_reason (text empty).
nlohmann::json chunk_json(Endpoint e, const ResponseMeta& m, const std::string& text, bool first,
                          std::optional<StopReason> finish);
// The usage chunk streamed last when stream_options.include_usage is set (empty choices).
nlohmann::json usage_chunk_json(Endpoint e, const ResponseMeta& m, int64_t prompt_tokens, int64_t completion_tokens);

}  // namespace llm::serve
