// Chat conversations: parsing the JSONL shapes, ChatML rendering, and the per-token loss flags.
#include "chat_data.h"

#include "llm/error.h"
#include "llm/shard.h"

namespace llm::data {

namespace {

// The canonical role of an OpenAI or ShareGPT role name; "" when unknown.
std::string canonical_role(const std::string& r) {
  if (r == "system" || r == "user" || r == "assistant") return r;
  if (r == "human") return "user";
  if (r == "gpt") return "assistant";
  return "";
}

ChatMessage parse_message(const nlohmann::json& m, const std::string& where) {
  LLM_CHECK(m.is_object(), where, ": expected a message object {\"role\", \"content\"} or {\"from\", \"value\"}, got ",
            m.type_name());
  const bool openai = m.contains("role");
  const char* role_key = openai ? "role" : "from";
  const char* content_key = openai ? "content" : "value";
  LLM_CHECK(m.contains(role_key), where,
            ": a message needs \"role\" and \"content\" (or ShareGPT's \"from\" and "
            "\"value\")");
  LLM_CHECK(!m.contains("tool_calls"), where, ": tool calls are not supported in chat data");
  const auto& role = m[role_key];
  LLM_CHECK(role.is_string(), where, ".", role_key, ": expected a string, got ", role.type_name());
  ChatMessage out;
  out.role = canonical_role(role.get<std::string>());
  LLM_CHECK(!out.role.empty(), where, ".", role_key, ": unknown role \"", role.get<std::string>(),
            "\"; valid: system, user, assistant (ShareGPT: system, human, gpt)");
  const auto it = m.find(content_key);
  LLM_CHECK(it != m.end() && it->is_string(), where, ".", content_key, ": expected a string",
            it == m.end() ? std::string(" (absent)") : cat(", got ", it->type_name()));
  out.content = it->get<std::string>();
  for (const char* special : {"<|im_start|>", "<|im_end|>"}) {
    LLM_CHECK(out.content.find(special) == std::string::npos, where, ".", content_key, ": holds ", special,
              ", which would forge a turn of the chat template");
  }
  return out;
}

void append_messages(const nlohmann::json& list, const std::string& where, std::vector<ChatMessage>& out) {
  LLM_CHECK(list.is_array(), where, ": expected a list of messages, got ", list.type_name());
  for (size_t i = 0; i < list.size(); ++i) out.push_back(parse_message(list[i], cat(where, "[", i, "]")));
}

// A prompt or completion: a string (one message of `role`) or a list of messages.
void append_part(const nlohmann::json& part, const char* role, const std::string& where,
                 std::vector<ChatMessage>& out) {
  if (part.is_string()) {
    out.push_back(parse_message({{"role", role}, {"content", part}}, where));
  } else {
    append_messages(part, where, out);
  }
}

}  // namespace

std::vector<ChatMessage> parse_conversation(const nlohmann::json& j, const std::string& where) {
  LLM_CHECK(j.is_object(), where, ": expected a JSON object, got ", j.type_name());
  std::vector<ChatMessage> msgs;
  if (j.contains("messages") || j.contains("conversations")) {
    const char* key = j.contains("messages") ? "messages" : "conversations";
    append_messages(j[key], cat(where, ": ", key), msgs);
  } else if (j.contains("prompt") && j.contains("completion")) {
    append_part(j["prompt"], "user", cat(where, ": prompt"), msgs);
    append_part(j["completion"], "assistant", cat(where, ": completion"), msgs);
  } else {
    fail(where, ": expected \"messages\" (or ShareGPT's \"conversations\"), or \"prompt\" and \"completion\"");
  }
  bool any_assistant = false;
  for (const auto& m : msgs) any_assistant = any_assistant || m.role == "assistant";
  LLM_CHECK(any_assistant, where, ": the conversation has no assistant message, so nothing in it would be trained on");
  return msgs;
}

RenderedChat render_conversation(std::span<const ChatMessage> messages) {
  RenderedChat r;
  r.text = render_chatml(messages, false);
  if (messages.empty() || messages[0].role != "system") r.assistant.push_back(false);  // the default system message
  for (const auto& m : messages) r.assistant.push_back(m.role == "assistant");
  return r;
}

std::vector<uint8_t> conversation_flags(const Tokenizer& tok, std::span<const int32_t> ids, const RenderedChat& chat,
                                        const std::string& where) {
  const int32_t start = tok.token_id("<|im_start|>"), end = tok.token_id("<|im_end|>");
  std::vector<uint8_t> flags(ids.size(), 0);
  size_t message = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != start) continue;
    LLM_CHECK(message < chat.assistant.size(), where, ": the rendered conversation has more <|im_start|> tokens than ",
              chat.assistant.size(), " messages");
    if (chat.assistant[message++]) {
      size_t k = i + 1;  // the header "assistant\n": trained from the token after its newline
      while (k < ids.size() && ids[k] != end && tok.token_bytes(ids[k]).find('\n') == std::string::npos) ++k;
      LLM_CHECK(k < ids.size() && ids[k] != end, where, ": no newline after <|im_start|>assistant");
      for (++k; k < ids.size() && ids[k] != end; ++k) flags[k] = kTokenTrained;
      LLM_CHECK(k < ids.size(), where, ": an assistant message without <|im_end|>");
      flags[k] = kTokenTrained;  // <|im_end|> ends the reply: the model learns to stop
    }
  }
  LLM_CHECK(message == chat.assistant.size(), where, ": the rendered conversation has ", message,
            " <|im_start|> tokens for ", chat.assistant.size(), " messages");
  if (!flags.empty()) flags[0] |= kTokenDocStart;
  return flags;
}

void check_chat_tokens(const Tokenizer& tok, const std::string& what) {
  for (const char* t : {"<|im_start|>", "<|im_end|>"}) {
    LLM_CHECK(tok.token_id(t) >= 0, what, ": chat data needs the tokenizer (", tok.kind(), ") to have ", t,
              " as one token (the ChatML template); add it to tokenizer.train.special_tokens");
  }
}

}  // namespace llm::data
