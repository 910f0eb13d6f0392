// Where REPL lines come from: libedit (editing and history on a terminal) or any stream (a pipe).
#include <cstdlib>
#include <istream>
#include <memory>

#include <editline/readline.h>

#include "llm/chat.h"

namespace llm {

namespace {

class TerminalLineSource final : public LineSource {
 public:
  TerminalLineSource() {
    // The prompt and the echo go to stderr, so `llmgen ... > answers.txt` keeps only answers.
    // Set before the first libedit call, which initialises the editor with these streams.
    rl_outstream = stderr;
    // Tab inserts a tab instead of completing file names (prompts are not paths).
    rl_bind_key('\t', rl_insert);
  }
  std::optional<std::string> read_line(const std::string& prompt) override {
    // readline() returns a malloc'd line, or NULL at the end of input (or after Ctrl-C).
    std::unique_ptr<char, decltype(&std::free)> p(readline(prompt.c_str()), &std::free);
    if (!p) return std::nullopt;
    std::string line(p.get());
    if (line.find_first_not_of(" \t") != std::string::npos) add_history(line.c_str());
    return line;
  }
};

class StreamLineSource final : public LineSource {
 public:
  explicit StreamLineSource(std::istream& in) : in_(in) {}
  std::optional<std::string> read_line(const std::string& /*prompt*/) override {
    std::string line;
    if (!std::getline(in_, line)) return std::nullopt;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }

 private:
  std::istream& in_;
};

}  // namespace

std::unique_ptr<LineSource> terminal_line_source() { return std::make_unique<TerminalLineSource>(); }
std::unique_ptr<LineSource> stream_line_source(std::istream& in) { return std::make_unique<StreamLineSource>(in); }

}  // namespace llm
