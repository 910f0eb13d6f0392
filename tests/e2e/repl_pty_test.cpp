// The REPL as a person uses it: llmgen in a pseudo-terminal, a prompt typed, /set, /reset, an
// unknown command and /quit; Chinese, emoji and a mix typed and edited with Backspace. The test
// reads the screen (and replays the echoed line as a terminal would draw it).
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <regex>
#include <thread>

#include "tokenizer/utf8.h"

#include "e2e/e2e_fixture.h"

namespace llm::test {
namespace {

class Pty {
 public:
  // env: NAME=VALUE settings for the child on top of the test's environment.
  explicit Pty(const std::vector<std::string>& argv, const std::vector<std::string>& env = {}) {
    pid_ = ::forkpty(&fd_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
      for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Pty() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    if (fd_ >= 0) ::close(fd_);
  }
  bool started() const { return pid_ > 0; }
  void type(const std::string& s) { ASSERT_EQ(::write(fd_, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  // One key (one UTF-8 character) at a time, 10 ms apart, as a person types: a burst of edits
  // written at once lost one Backspace in a loaded CI run (the line editor read the keys in
  // another grouping than a terminal delivers them).
  void type_keys(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
      const auto n = static_cast<size_t>(std::max(1, tok::decode_utf8(s, i).len));
      type(s.substr(i, n));
      i += n;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Reads the screen until it contains `text` after position `from`, or the deadline passes.
  bool wait_for(const std::string& text, size_t from, double seconds = 60) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (screen_.find(text, from) == std::string::npos) {
      if (std::chrono::steady_clock::now() > end) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fd_, buf, sizeof(buf));
      if (n <= 0) return screen_.find(text, from) != std::string::npos;
      screen_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // Waits until the line editor has the terminal (echo and canonical input off; tcgetattr on the
  // master side reads the pair's settings). libedit prints the prompt first and switches to raw
  // mode after, when it reads the first key: a key typed in between is echoed by the terminal
  // driver and again by libedit (a loaded CI run drew "> 春春眠晓" for 春眠不觉x⌫⌫晓, while the model
  // got the right line). Every terminal program that prints before its raw mode does that to
  // type-ahead; a person cannot type in those microseconds, a test can.
  bool wait_until_editing(double seconds = 60) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
      termios tio{};
      if (::tcgetattr(fd_, &tio) == 0 && (tio.c_lflag & (ECHO | ICANON)) == 0) return true;
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  int wait() {
    int st = 0;
    ::waitpid(pid_, &st, 0);
    exited_ = true;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }
  const std::string& screen() const { return screen_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool exited_ = false;
  std::string screen_;
};

std::vector<std::string> llmgen_argv() {
  return {std::string(LLM_TOOLS_DIR) + "/llmgen",
          "--model",
          (EndToEnd::dir_->path() / "memorised/latest").string(),
          "--temp",
          "0",
          "--repeat-penalty",
          "1",
          "--max-tokens",
          "12",
          "--threads",
          "2"};
}

TEST_F(EndToEnd, ReplInAPseudoTerminal) {
  Pty t(llmgen_argv());
  ASSERT_TRUE(t.started());
  ASSERT_TRUE(t.wait_for("> ", 0)) << t.screen();
  ASSERT_TRUE(t.wait_until_editing());
  size_t mark = t.screen().size();
  t.type("All human beings are\r");
  ASSERT_TRUE(t.wait_for("born free and equal", mark)) << t.screen();
  ASSERT_TRUE(t.wait_for("> ", mark)) << t.screen();
  mark = t.screen().size();
  t.type("/set temp 0.5\r");
  EXPECT_TRUE(t.wait_for("[temp = 0.5]", mark)) << t.screen();
  mark = t.screen().size();
  t.type("/set\r");
  EXPECT_TRUE(t.wait_for("0.5", mark)) << t.screen();
  mark = t.screen().size();
  t.type("/reset\r");
  EXPECT_TRUE(t.wait_for("[reset]", mark)) << t.screen();
  mark = t.screen().size();
  t.type("/frobnicate\r");
  EXPECT_TRUE(t.wait_for("frobnicate", mark)) << t.screen();
  EXPECT_TRUE(t.wait_for("> ", mark + 1)) << "the REPL must go on after an unknown command: " << t.screen();
  t.type("/quit\r");
  EXPECT_EQ(t.wait(), 0) << t.screen();
}

// Columns a character takes in a terminal: 2 for the wide ones this test types (CJK ideographs,
// emoji), 1 otherwise.
int columns(int32_t cp) {
  const bool wide = (cp >= 0x2E80 && cp <= 0xA4CF) || (cp >= 0xAC00 && cp <= 0xD7A3) ||
                    (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                    (cp >= 0x1F300 && cp <= 0x1FAFF);
  return wide ? 2 : 1;
}

struct TerminalLine {
  std::string text;  // what the line shows
  int cursor = 0;    // the cursor's column (0-based)
};

// Draws `bytes` (one line's output: text, \r, \b, bell, ESC[nG, ESC[nC, ESC[nD, ESC[K) on an
// empty line as a terminal does, a wide character filling two cells. Any other control sequence
// fails the test, so a new one in libedit's output is noticed rather than misread.
TerminalLine draw_line(const std::string& bytes) {
  std::vector<std::string> cells;  // one per column; "" is the right half of a wide character
  int col = 0;
  auto put = [&](const std::string& ch, int width) {
    if (static_cast<int>(cells.size()) < col + width) cells.resize(static_cast<size_t>(col + width), " ");
    cells[static_cast<size_t>(col)] = ch;
    if (width == 2) cells[static_cast<size_t>(col + 1)] = "";
    col += width;
  };
  for (size_t i = 0; i < bytes.size();) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    if (b == '\r') {
      col = 0, ++i;
    } else if (b == '\b') {
      col = std::max(0, col - 1), ++i;
    } else if (b == 0x07) {
      ++i;
    } else if (b == 0x1B) {
      size_t j = i + 2;
      EXPECT_EQ(bytes[i + 1], '[') << "escape at byte " << i;
      int n = 0;
      bool has_n = false;
      for (; j < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[j])); ++j) {
        n = n * 10 + (bytes[j] - '0'), has_n = true;
      }
      const char op = j < bytes.size() ? bytes[j] : '?';
      if (!has_n) n = 1;
      if (op == 'G') {
        col = n - 1;
      } else if (op == 'C') {
        col += n;
      } else if (op == 'D') {
        col = std::max(0, col - n);
      } else if (op == 'K') {
        if (static_cast<int>(cells.size()) > col) cells.resize(static_cast<size_t>(col));
      } else {
        ADD_FAILURE() << "unexpected control sequence ESC[" << bytes.substr(i + 2, j - i - 1);
      }
      i = j + 1;
    } else if (b < 0x20) {
      ADD_FAILURE() << "unexpected control byte " << int(b) << " at " << i;
      ++i;
    } else {
      const tok::Utf8Char c = tok::decode_utf8(bytes, i);
      EXPECT_GE(c.cp, 0) << "invalid UTF-8 on the screen at byte " << i;
      put(bytes.substr(i, static_cast<size_t>(c.len)), c.cp >= 0 ? columns(c.cp) : 1);
      i += static_cast<size_t>(c.len);
    }
  }
  TerminalLine r{"", col};
  for (const auto& c : cells) r.text += c;
  while (!r.text.empty() && r.text.back() == ' ') r.text.pop_back();
  return r;
}

int display_width(const std::string& s) {
  int w = 0;
  for (size_t i = 0; i < s.size();) {
    const tok::Utf8Char c = tok::decode_utf8(s, i);
    w += columns(c.cp);
    i += static_cast<size_t>(c.len);
  }
  return w;
}

// Control bytes as \xNN, the rest as it is: a failure shows what the line editor wrote.
std::string escaped(const std::string& bytes) {
  std::string r;
  for (const char ch : bytes) {
    const auto b = static_cast<uint8_t>(ch);
    if (b < 0x20 || b == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02X", b);
      r += hex;
    } else {
      r += ch;
    }
  }
  return r;
}

// "prefill: N tokens" in a stats line.
int64_t prefill_tokens(const std::string& text) {
  std::smatch m;
  const std::regex re("prefill: ([0-9]+) tokens");
  return std::regex_search(text, m, re) ? std::stoll(m[1]) : -1;
}

// What typing `keys` (DEL = Backspace) then Enter should hand the model: `expected`. The terminal
// must show the prompt and `expected` with the cursor after it; the model must get the tokens
// that `llmgen --prompt expected` gets (the stats' prompt length) and answer as it does.
void type_and_check(Pty& t, const std::string& keys, const std::string& expected) {
  SCOPED_TRACE("typed: " + keys);
  const Proc ref =
      run_tool("llmgen",
               cat("--model ", (EndToEnd::dir_->path() / "memorised/latest").string(), " --prompt ",
                   shell_quote(expected), " --temp 0 --repeat-penalty 1 --max-tokens 12 --threads 2 --stats"),
               EndToEnd::dir_->path());
  ASSERT_EQ(ref.status, 0) << ref.err;
  const int64_t ref_tokens = prefill_tokens(ref.err);
  ASSERT_GT(ref_tokens, 0) << ref.err;

  t.type("/reset\r");  // a fresh prompt: nothing reused from the line before
  size_t mark = t.screen().size();
  ASSERT_TRUE(t.wait_for("[reset]", mark)) << t.screen();
  mark = t.screen().find("[reset]", mark);  // the prompt after it (the one before may come late)
  ASSERT_TRUE(t.wait_for("> ", mark)) << t.screen();
  mark = t.screen().find("> ", mark) + 2;
  ASSERT_TRUE(t.wait_until_editing()) << "the line editor never took the terminal";
  t.type_keys(keys);
  t.type("\r");
  ASSERT_TRUE(t.wait_for("\r\n", mark)) << t.screen();
  const size_t eol = t.screen().find("\r\n", mark);
  const std::string echoed = t.screen().substr(mark, eol - mark);
  const TerminalLine shown = draw_line("> " + echoed);
  EXPECT_EQ(shown.text, "> " + expected) << "echoed bytes: " << escaped(echoed);
  EXPECT_EQ(shown.cursor, 2 + display_width(expected)) << "echoed bytes: " << escaped(echoed);

  ASSERT_TRUE(t.wait_for("prefill: ", eol)) << t.screen();
  ASSERT_TRUE(t.wait_for(" tokens", t.screen().find("prefill: ", eol))) << t.screen();
  const std::string after = t.screen().substr(eol);
  EXPECT_EQ(prefill_tokens(after), ref_tokens) << "the model got another prompt than \"" << expected << "\"";
  std::string answer = std::regex_replace(ref.out, std::regex("\n"), "\r\n");
  EXPECT_NE(after.find(answer), std::string::npos) << "expected the answer " << ref.out << " in " << after;
}

// Multi-byte input: libedit decodes keys in the LC_CTYPE locale, and a program starts in "C",
// where bytes >= 0x80 were dropped (春眠不觉晓 sent an empty line). Under a UTF-8 locale and under
// "C" (llmgen then uses C.UTF-8): Chinese, emoji, a mix, each edited with Backspace.
TEST_F(EndToEnd, ReplTakesChineseAndEmojiAndEditsThem) {
  for (const std::string locale : {"C.UTF-8", "C"}) {
    SCOPED_TRACE("LC_ALL=" + locale);
    Pty t(llmgen_argv(), {"LC_ALL=" + locale});
    ASSERT_TRUE(t.started());
    ASSERT_TRUE(t.wait_for("> ", 0)) << t.screen();
    const std::string del = "\x7f";
    type_and_check(t, "春眠不觉晓", "春眠不觉晓");
    type_and_check(t, "春眠不觉x" + del + del + "晓", "春眠不晓");
    type_and_check(t, "😀👍🎉" + del + "!", "😀👍!");
    type_and_check(t, "Hello 春眠😀x" + del + del + del + "晓, 世界 🌏", "Hello 春晓, 世界 🌏");
    t.type("/quit\r");
    EXPECT_EQ(t.wait(), 0) << t.screen();
  }
}

}  // namespace
}  // namespace llm::test
