// Reliability tests: llmtrain (its hooked test build) started in the background, signalled or
// killed at moments the test picks, resumed; and the checks that a run directory is sound.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "dist/dist_fixture.h"
#include "llm/checkpoint.h"
#include "llm/checksum.h"
#include "llm/stop_signal.h"

namespace llm::test {

class ReliabilityFixture : public DistFixture {
 protected:
  // Starts `cmd` under /bin/sh with exec, so the pid is the command's own (llmtrain or mpirun),
  // in a new session: kill(-pid, sig) then reaches it and every process it starts (the ranks).
  static pid_t spawn(const std::string& cmd) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setsid();
      ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return pid;
  }

  // Exit status of pid; -signal when a signal ended it.
  static int wait_for(pid_t pid) {
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  }

  // Polls every 5 ms until pred() holds or the process ends; true when pred() held.
  template <class Pred>
  static bool wait_until(pid_t pid, Pred pred, double timeout_s = 60) {
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < timeout_s) {
      if (pred()) return true;
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        // Ended by itself: put the status back for wait_for by re-raising nothing; record it.
        ended_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  // The highest "step" of the step records in run's metrics.jsonl so far (0: none).
  int64_t steps_logged(const std::string& run) const {
    std::ifstream in(dir / run / "metrics.jsonl");
    std::string line;
    int64_t step = 0;
    while (std::getline(in, line)) {
      if (line.find("\"loss\"") == std::string::npos) continue;
      try {
        step = std::max(step, nlohmann::json::parse(line).at("step").get<int64_t>());
      } catch (const std::exception&) {  // a line being written
      }
    }
    return step;
  }

  // An entry of dir whose name starts with prefix (a checkpoint or shard staging directory).
  static bool has_entry(const std::filesystem::path& d, const std::string& prefix) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(d, ec)) {
      if (e.path().filename().string().starts_with(prefix)) return true;
    }
    return false;
  }

  // Names in run_dir that a finished run must not leave: temporary or half-deleted checkpoints,
  // aside copies, temporary files.
  static std::vector<std::string> stale_entries(const std::filesystem::path& run_dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(run_dir)) {
      const std::string n = e.path().filename().string();
      if (n.find(".tmp") != std::string::npos || n.find(".deleting") != std::string::npos ||
          n.find(".old.") != std::string::npos) {
        out.push_back(n);
      }
    }
    return out;
  }

  static std::string file_bytes(const std::filesystem::path& p) { return read_bytes(p); }

  // The final weights and the whole optimizer state of a run's checkpoint are those of `ref`.
  static void expect_same_checkpoint(const std::filesystem::path& got, const std::filesystem::path& ref) {
    EXPECT_TRUE(file_bytes(got / "model.safetensors") == file_bytes(ref / "model.safetensors"))
        << got << " and " << ref << ": model.safetensors differ";
    for (const char* t : {"master", "m", "v"}) {
      EXPECT_TRUE(optimizer_flat(got, t) == optimizer_flat(ref, t)) << got << ": optimizer " << t << " differs";
    }
  }

  static inline int ended_status_ = 0;
};

}  // namespace llm::test
