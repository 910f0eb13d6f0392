// The REPL as a person uses it: llmgen in a pseudo-terminal, a prompt typed, /set, /reset, an
// unknown command and /quit; the test reads the screen.
#include <poll.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "e2e/e2e_fixture.h"

namespace llm::test {
namespace {

class Pty {
 public:
  explicit Pty(const std::vector<std::string>& argv) {
    pid_ = ::forkpty(&fd_, nullptr, nullptr, nullptr);
    if (pid_ == 0) {
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

TEST_F(EndToEnd, ReplInAPseudoTerminal) {
  Pty t({std::string(LLM_TOOLS_DIR) + "/llmgen", "--model", path("memorised/latest").string(), "--temp", "0",
         "--repeat-penalty", "1", "--max-tokens", "12", "--threads", "2"});
  ASSERT_TRUE(t.started());
  ASSERT_TRUE(t.wait_for("> ", 0)) << t.screen();
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

}  // namespace
}  // namespace llm::test
