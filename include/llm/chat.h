// The llmgen front end: Qwen2.5's ChatML template, a chat history kept inside the context window,
// one-shot and multi-turn answers with stats, and the REPL (commands, line editing). docs/llmgen.md.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "llm/generate.h"

namespace llm {

// ---- chat template ------------------------------------------------------------------------------

inline constexpr std::string_view kQwenDefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

// Qwen2.5-Instruct's chat_template (tokenizer_config.json) without tools: every message as
// "<|im_start|>{role}\n{content}<|im_end|>\n", the default system message first when the first
// message is not a system message, and "<|im_start|>assistant\n" when add_generation_prompt.
std::string render_chatml(std::span<const ChatMessage> messages, bool add_generation_prompt);

// Error starting "--chat" unless <|im_start|> and <|im_end|> are single tokens of tok.
void check_chat_tokenizer(const Tokenizer& tok);

// A conversation: the system message, then user/assistant turns. The prompt for the next answer
// drops the oldest turns until it fits a token budget.
class ChatHistory {
 public:
  explicit ChatHistory(std::string system);
  const std::vector<ChatMessage>& messages() const { return messages_; }
  void set_system(std::string system) { messages_[0].content = std::move(system); }
  void clear();  // keeps the system message
  // Adds the user's message (replacing an earlier one that got no answer) and returns the tokens
  // of the rendered conversation with the generation prompt, after dropping the oldest turns
  // while it has more than max_tokens. Error (nothing added) when the system message and this
  // message alone have more. dropped: turns dropped by this call.
  std::vector<int32_t> begin_turn(const Tokenizer& tok, std::string user, int64_t max_tokens,
                                  int64_t* dropped = nullptr);
  void end_turn(std::string answer);

 private:
  std::vector<ChatMessage> messages_;
};

// ---- front end -----------------------------------------------------------------------------------

struct FrontendOptions {
  SamplingParams sampling;
  GenerateOptions gen;
  bool chat = false;
  std::string system = std::string(kQwenDefaultSystem);
  bool stats = false;  // a stats line on err after every answer
};

// What llmgen does with one input: a prompt (or, in chat mode, the user's message) in, the
// answer streamed to out and ended with a newline; notices and stats to err.
class Frontend {
 public:
  Frontend(InferenceModel& model, const Tokenizer& tok, const FrontendOptions& opt);

  GenerateResult answer(std::string_view input, std::ostream& out, std::ostream& err,
                        const std::function<bool()>& interrupted = {});
  void reset();  // forgets the history and the cache
  const FrontendOptions& options() const { return opt_; }
  void set_options(const FrontendOptions& opt);  // validates; re-seeds only on a new seed
  const std::optional<GenerateStats>& last_stats() const { return last_; }
  Session& session() { return session_; }
  const ChatHistory& history() const { return history_; }
  // Prompt tokens a chat may use: the context less room for the answer (see docs/llmgen.md).
  int64_t chat_budget() const;

 private:
  FrontendOptions opt_;
  Session session_;
  Sampler sampler_;
  ChatHistory history_;
  std::optional<GenerateStats> last_;
};

// ---- REPL ----------------------------------------------------------------------------------------

enum class ReplAction { None, Prompt, Help, Reset, Set, Stats, Quit };
struct ReplCommand {
  ReplAction action = ReplAction::None;
  std::string text;   // Prompt: the input; Set: the parameter name
  std::string value;  // Set: the value (may be empty)
};
// "/cmd args" or a prompt; blank lines are None. Unknown commands are an error naming them.
ReplCommand parse_repl_line(std::string_view line);
// /set NAME VALUE into opt (validated; errors start with "/set NAME").
void apply_setting(FrontendOptions& opt, std::string_view name, std::string_view value);
std::string repl_help();
std::string settings_text(const FrontendOptions& opt);

class LineSource {
 public:
  virtual ~LineSource() = default;
  // The next line without its newline; nullopt at the end of input (Ctrl-D).
  virtual std::optional<std::string> read_line(const std::string& prompt) = 0;
};
// libedit's readline: line editing and in-session history (for a terminal on stdin).
std::unique_ptr<LineSource> terminal_line_source();
std::unique_ptr<LineSource> stream_line_source(std::istream& in);

struct ReplIo {
  std::ostream& out;
  std::ostream& err;
  bool interactive = false;               // a terminal: prompts, banner and a stats line per answer
  std::function<bool()> interrupted;      // Ctrl-C seen (checked between tokens)
  std::function<void()> clear_interrupt;  // called before reading each line
};

// Reads lines until the end of input or /quit: prompts are answered, commands run. An error in
// one line is reported on err and the loop goes on. Returns the number of lines that failed.
int run_repl(Frontend& fe, LineSource& in, const ReplIo& io);

}  // namespace llm
