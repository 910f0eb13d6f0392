// OpenAI request parsing and response shapes (see openai_api.h).
#include "serve/openai_api.h"

#include <cmath>

namespace llm::serve {

using nlohmann::json;

json ApiError::body() const {
  json e = {{"message", message}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return json{{"error", e}};
}

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError{400, message, "invalid_request_error", param, ""};
}

// The field, when present and not null.
const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* name, double lo, double hi, double fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) bad(name, std::string("'") + name + "' must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi)) {
    bad(name, std::string("'") + name + "' is " + v->dump() + ", expected a number in [" + json(lo).dump() + ", " +
                  json(hi).dump() + "]");
  }
  return x;
}

int64_t integer(const json& body, const char* name, int64_t lo, int64_t fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) bad(name, std::string("'") + name + "' must be an integer");
  const auto x = v->get<int64_t>();
  if (x < lo)
    bad(name, std::string("'") + name + "' is " + std::to_string(x) + ", expected at least " + std::to_string(lo));
  return x;
}

bool boolean(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(name, std::string("'") + name + "' must be true or false");
  return v->get<bool>();
}

// Fields that would change the answer in ways this server does not implement: refused rather
// than silently ignored.
void refuse_unsupported(const json& body, Endpoint e) {
  for (const char* name : {"tools", "functions", "tool_choice", "function_call", "top_logprobs"}) {
    if (field(body, name)) bad(name, std::string("'") + name + "' is not supported by this server");
  }
  for (const char* name : {"frequency_penalty", "presence_penalty"}) {
    if (number(body, name, -2.0, 2.0, 0.0) != 0.0) {
      bad(name, std::string("'") + name + "' is not supported (use repeat_penalty, HF's repetition penalty)");
    }
  }
  if (const json* v = field(body, "logprobs"); v && !(v->is_boolean() && !v->get<bool>())) {
    bad("logprobs", "'logprobs' is not supported by this server");
  }
  if (const json* v = field(body, "logit_bias"); v && !(v->is_object() && v->empty())) {
    bad("logit_bias", "'logit_bias' is not supported by this server");
  }
  if (const json* v = field(body, "response_format")) {
    if (!v->is_object() || v->value("type", "") != "text") {
      bad("response_format", "'response_format' other than {\"type\": \"text\"} is not supported");
    }
  }
  if (e == Endpoint::Completion) {
    if (boolean(body, "echo", false)) bad("echo", "'echo' is not supported by this server");
    if (integer(body, "best_of", 1, 1) != 1) bad("best_of", "'best_of' must be 1");
    if (const json* v = field(body, "suffix"); v && !(v->is_string() && v->get<std::string>().empty())) {
      bad("suffix", "'suffix' is not supported by this server");
    }
  }
}

std::string message_content(const json& m, size_t i) {
  const std::string where = "messages[" + std::to_string(i) + "].content";
  const json* c = field(m, "content");
  if (!c) return "";
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) bad(where, "'" + where + "' must be a string or an array of text parts");
  std::string text;
  for (const json& part : *c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
      bad(where, "'" + where + "' may only hold parts {\"type\": \"text\", \"text\": \"...\"}");
    }
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const json& body) {
  const json* ms = field(body, "messages");
  if (!ms) bad("messages", "'messages' is required");
  if (!ms->is_array() || ms->empty()) bad("messages", "'messages' must be a non-empty array");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < ms->size(); ++i) {
    const json& m = (*ms)[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) bad(where, "'" + where + "' must be an object");
    const json* role = field(m, "role");
    if (!role || !role->is_string()) bad(where + ".role", "'" + where + ".role' is required and must be a string");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system role
    if (r != "system" && r != "user" && r != "assistant") {
      bad(where + ".role", "'" + where + ".role' is \"" + r + "\", expected system, user or assistant");
    }
    out.push_back(ChatMessage{r, message_content(m, i)});
  }
  return out;
}

std::string parse_prompt(const json& body) {
  const json* p = field(body, "prompt");
  if (!p) bad("prompt", "'prompt' is required");
  if (p->is_string()) return p->get<std::string>();
  if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) return (*p)[0].get<std::string>();
  bad("prompt", "'prompt' must be a string (or an array of one string)");
}

std::vector<std::string> parse_stop(const json& body) {
  const json* s = field(body, "stop");
  if (!s) return {};
  std::vector<std::string> out;
  if (s->is_string()) {
    out.push_back(s->get<std::string>());
  } else if (s->is_array() && s->size() <= 16) {
    for (const json& x : *s) {
      if (!x.is_string()) bad("stop", "'stop' must be a string or an array of strings");
      out.push_back(x.get<std::string>());
    }
  } else {
    bad("stop", "'stop' must be a string or an array of at most 16 strings");
  }
  for (const auto& x : out) {
    if (x.empty()) bad("stop", "'stop' holds an empty string");
  }
  return out;
}

}  // namespace

ApiRequest parse_request(Endpoint endpoint, const std::string& body_text, const SamplingParams& defaults,
                         int64_t default_max_tokens) {
  json body;
  try {
    body = json::parse(body_text);
  } catch (const json::exception& e) {
    bad("", std::string("the body is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) bad("", "the body must be a JSON object");
  ApiRequest r;
  r.endpoint = endpoint;
  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", "'model' must be a string");
    r.model = m->get<std::string>();
  }
  refuse_unsupported(body, endpoint);
  if (endpoint == Endpoint::Chat) {
    r.messages = parse_messages(body);
  } else {
    r.prompt = parse_prompt(body);
  }
  if (integer(body, "n", 1, 1) != 1) bad("n", "'n' must be 1");
  r.sampling = defaults;
  r.sampling.temperature = static_cast<float>(number(body, "temperature", 0.0, 2.0, defaults.temperature));
  r.sampling.top_p = static_cast<float>(number(body, "top_p", 0.0, 1.0, defaults.top_p));
  if (r.sampling.top_p <= 0.0f) bad("top_p", "'top_p' must be greater than 0");
  r.sampling.top_k = integer(body, "top_k", 0, defaults.top_k);
  r.sampling.min_p = static_cast<float>(number(body, "min_p", 0.0, 1.0, defaults.min_p));
  r.sampling.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", 0.0, 10.0, defaults.repeat_penalty));
  if (r.sampling.repeat_penalty <= 0.0f) bad("repeat_penalty", "'repeat_penalty' must be greater than 0");
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) bad("seed", "'seed' must be an integer");
    r.sampling.seed = s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>());
  }
  const char* max_name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  r.gen.max_tokens = integer(body, max_name, 1, default_max_tokens);
  r.max_tokens_given = field(body, max_name) != nullptr;
  r.gen.stop = parse_stop(body);
  r.ignore_eos = boolean(body, "ignore_eos", false);
  r.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object");
    r.include_usage = boolean(*so, "include_usage", false);
  }
  return r;
}

std::string finish_reason(StopReason r) {
  return r == StopReason::MaxTokens || r == StopReason::ContextFull ? "length" : "stop";
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

namespace {
json envelope(Endpoint e, const ResponseMeta& m, bool chunk) {
  const char* object = e == Endpoint::Chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model}};
}
}  // namespace

json response_json(Endpoint e, const ResponseMeta& m, const std::string& text, StopReason reason, int64_t prompt_tokens,
                   int64_t completion_tokens) {
  json r = envelope(e, m, false);
  json choice = {{"index", 0}, {"finish_reason", finish_reason(reason)}, {"logprobs", nullptr}};
  if (e == Endpoint::Chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  r["choices"] = json::array({choice});
  r["usage"] = usage_json(prompt_tokens, completion_tokens);
  return r;
}

json chunk_json(Endpoint e, const ResponseMeta& m, const std::string& text, bool first,
                std::optional<StopReason> finish) {
  json r = envelope(e, m, true);
  json choice = {{"index", 0}, {"logprobs", nullptr}};
  choice["finish_reason"] = finish ? json(finish_reason(*finish)) : json(nullptr);
  if (e == Endpoint::Chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!finish) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  r["choices"] = json::array({choice});
  return r;
}

json usage_chunk_json(Endpoint e, const ResponseMeta& m, int64_t prompt_tokens, int64_t completion_tokens) {
  json r = envelope(e, m, true);
  r["choices"] = json::array();
  r["usage"] = usage_json(prompt_tokens, completion_tokens);
  return r;
}

}  // namespace llm::serve
