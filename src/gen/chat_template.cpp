// ChatML as Qwen2.5-Instruct renders it, and a history trimmed to the context window.
#include "llm/chat.h"
#include "llm/error.h"

namespace llm {

std::string render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string s;
  auto message = [&](std::string_view role, std::string_view content) {
    s.append("<|im_start|>").append(role).append("\n").append(content).append("<|im_end|>\n");
  };
  // The template's first branch: no leading system message -> Qwen's default one.
  if (messages.empty() || messages[0].role != "system") message("system", kQwenDefaultSystem);
  for (const ChatMessage& m : messages) {
    LLM_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant", "chat template: role \"", m.role,
              "\" is not system, user or assistant");
    message(m.role, m.content);
  }
  if (add_generation_prompt) s.append("<|im_start|>assistant\n");
  return s;
}

void check_chat_tokenizer(const Tokenizer& tok) {
  for (const char* t : {"<|im_start|>", "<|im_end|>"}) {
    LLM_CHECK(tok.token_id(t) >= 0, "--chat: the tokenizer (", tok.kind(), ") has no ", t,
              " token, so the model has no ChatML chat template; use --prompt or the plain REPL");
  }
}

ChatHistory::ChatHistory(std::string system) : messages_{{"system", std::move(system)}} {}

void ChatHistory::clear() { messages_.resize(1); }

std::vector<int32_t> ChatHistory::begin_turn(const Tokenizer& tok, std::string user, int64_t max_tokens,
                                             int64_t* dropped) {
  if (messages_.back().role == "user") messages_.pop_back();  // a turn that got no answer
  std::vector<ChatMessage> msgs = messages_;
  msgs.push_back({"user", std::move(user)});
  int64_t n_dropped = 0;
  for (;;) {
    std::vector<int32_t> ids = tok.encode(render_chatml(msgs, true));
    if (static_cast<int64_t>(ids.size()) <= max_tokens) {
      messages_ = std::move(msgs);
      if (dropped) *dropped = n_dropped;
      return ids;
    }
    LLM_CHECK(msgs.size() > 2, "chat: the system prompt and the message are ", ids.size(), " tokens, more than the ",
              max_tokens, " the context leaves for them (--ctx, --max-tokens)");
    // The oldest turn: a user message and the answer to it.
    msgs.erase(msgs.begin() + 1);
    if (msgs.size() > 2 && msgs[1].role == "assistant") msgs.erase(msgs.begin() + 1);
    ++n_dropped;
  }
}

void ChatHistory::end_turn(std::string answer) { messages_.push_back({"assistant", std::move(answer)}); }

}  // namespace llm
