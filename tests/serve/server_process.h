// llmgen --serve as a child process for the server tests: started on a free port of 127.0.0.1,
// stopped with SIGTERM (the drain) when the object dies, its stderr kept for the messages.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace llm::test {

class ServerProcess {
 public:
  // args: llmgen's arguments after the binary (--serve and --port 0 are added).
  ServerProcess(const std::filesystem::path& log, std::vector<std::string> args) : log_(log) {
    args.insert(args.begin(), std::string(LLM_TOOLS_DIR) + "/llmgen");
    args.insert(args.end(), {"--serve", "--port", "0"});
    pid_ = ::fork();
    if (pid_ == 0) {
      // Never outlive the test (an assertion that ends it early), never hold ctest's output pipe.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      std::FILE* err = std::freopen(log.c_str(), "w", stderr);
      std::FILE* out = std::freopen("/dev/null", "w", stdout);
      if (err == nullptr || out == nullptr) ::_exit(126);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // Ready once it prints the address it listens on.
    for (int i = 0; i < 600 && port_ < 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const std::string text = stderr_text();
      if (const auto at = text.find("http://127.0.0.1:"); at != std::string::npos) {
        port_ = std::stoi(text.substr(at + 17));
      }
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) stop();
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  bool ready() const { return port_ > 0 && pid_ > 0; }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string stderr_text() const {
    std::ifstream in(log_);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Resident memory of the server in KiB (/proc).
  long rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
  }
  // SIGTERM and wait; the exit status (-1 when it did not exit normally within the time).
  int stop(std::chrono::seconds within = std::chrono::seconds(60)) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    const auto until = std::chrono::steady_clock::now() + within;
    int st = 0;
    while (::waitpid(pid_, &st, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > until) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  int port_ = -1;
};

}  // namespace llm::test
