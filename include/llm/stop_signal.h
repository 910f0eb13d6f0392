// Graceful stop for long runs (docs/long-runs.md): the first SIGTERM or SIGINT asks the trainer to
// finish its step, write a checkpoint and exit (status kExitStopped); a second one stops the
// process at once by the signal's default action (the previous checkpoint stays intact: a
// checkpoint is only ever renamed into place complete).
#pragma once

#include <signal.h>

namespace llm {

// Exit statuses of llmtrain besides 0 (done) and 1 (an error).
inline constexpr int kExitSaveFailed = 74;  // a checkpoint could not be written; the run stopped (EX_IOERR)
inline constexpr int kExitStopped = 75;     // stopped by SIGTERM/SIGINT after a checkpoint (EX_TEMPFAIL)

// Installs the SIGTERM/SIGINT handlers for its lifetime (one instance at a time, in main's
// thread) and restores the previous ones when destroyed. The handlers only record the signal.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  bool requested() const;  // a first signal arrived
  int signal() const;      // which (0: none)

 private:
  struct sigaction previous_term_ {
  }, previous_int_{};
};

}  // namespace llm
