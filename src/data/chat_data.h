// Chat data (docs/fine-tuning-data.md): one conversation per JSONL line, in the OpenAI shape
// ({"messages": [{"role", "content"}]}), the ShareGPT shape ({"conversations": [{"from", "value"}]})
// or as a prompt/completion pair, rendered with Qwen2.5's ChatML template exactly as HF's
// apply_chat_template renders it, and flagged per token: which tokens are trained on (each
// assistant reply and its <|im_end|>) and where the conversation starts. Private to src/data.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "llm/chat.h"
#include "llm/tokenizer.h"

namespace llm::data {

// The messages of one JSONL object. Errors name `where` (file:line) and the message index: no
// conversation key, an unknown role, content that is not a string, tool calls, content holding
// <|im_start|> or <|im_end|> (it would forge turns), a conversation without an assistant message.
std::vector<ChatMessage> parse_conversation(const nlohmann::json& j, const std::string& where);

// The ChatML text of a conversation (no generation prompt) and, per rendered message (Qwen's
// default system message first when the conversation has none), whether it is the assistant's.
struct RenderedChat {
  std::string text;
  std::vector<bool> assistant;
};
RenderedChat render_conversation(std::span<const ChatMessage> messages);

// The flag byte of each token of ids = tok.encode(chat.text): kTokenDocStart on the first token,
// kTokenTrained on every token of an assistant message after its "<|im_start|>assistant\n" header
// through its <|im_end|>; the "\n" after <|im_end|> is not trained (as TRL's assistant_only_loss).
// A token that holds the header's newline is header (not trained). Errors name `where`.
std::vector<uint8_t> conversation_flags(const Tokenizer& tok, std::span<const int32_t> ids, const RenderedChat& chat,
                                        const std::string& where);

// Errors unless tok has <|im_start|> and <|im_end|> as single tokens (`what` names the input).
void check_chat_tokens(const Tokenizer& tok, const std::string& what);

}  // namespace llm::data
