// Where REPL lines come from: libedit (editing and history on a terminal) or any stream (a pipe).
#include <langinfo.h>

#include <clocale>
#include <cstdlib>
#include <istream>
#include <memory>
#include <string_view>

#include <editline/readline.h>

#include "llm/chat.h"

namespace llm {

namespace {

// libedit decodes what is typed with the C library's multibyte functions (mbrtowc) in the LC_CTYPE
// locale. A program starts in the "C" locale, where every byte >= 0x80 is invalid, so libedit
// dropped each byte of 春眠不觉晓 and returned an empty line. Take the user's LC_CTYPE (LANG/LC_ALL);
// when it is not UTF-8 (unset, C or POSIX, as in many containers) use C.UTF-8 anyway: the
// tokenizer, the prompt and the model's answers are UTF-8 whatever the locale says. In a UTF-8
// locale libedit treats a character as one unit (one Backspace deletes it) and moves the cursor
// by its wcwidth (2 columns for CJK and emoji).
void use_utf8_ctype() {
  std::setlocale(LC_CTYPE, "");
  if (std::string_view(::nl_langinfo(CODESET)) != "UTF-8") std::setlocale(LC_CTYPE, "C.UTF-8");
}

class TerminalLineSource final : public LineSource {
 public:
  TerminalLineSource() {
    use_utf8_ctype();  // before the first libedit call, which reads the locale
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
