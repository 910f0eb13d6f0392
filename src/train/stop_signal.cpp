// StopSignals: async-signal-safe handlers that record the first SIGTERM/SIGINT and turn the
// second into the default action (termination by that signal).
#include "llm/stop_signal.h"

#include <unistd.h>

#include <csignal>
#include <cstring>

#include "llm/error.h"

namespace llm {

namespace {

// The signal received (0: none). A handler can only reach global state: this flag is the one
// piece of global mutable state here, as llmgen's interrupt flag is.
volatile std::sig_atomic_t g_stop_signal = 0;

void say(const char* s) {
  // write(2) is async-signal-safe; a failure to tell is no reason to fail.
  [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, s, std::strlen(s));
}

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal != 0) {
    say("llmtrain: second signal: stopping now (the previous checkpoint is intact)\n");
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_stop_signal = sig;
  say("llmtrain: signal received: finishing this step, then a checkpoint and exit (signal again to stop now)\n");
}

}  // namespace

StopSignals::StopSignals() {
  g_stop_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // reads and writes in progress resume
  LLM_CHECK(::sigaction(SIGTERM, &sa, &previous_term_) == 0 && ::sigaction(SIGINT, &sa, &previous_int_) == 0,
            "StopSignals: cannot install the SIGTERM/SIGINT handlers");
}

StopSignals::~StopSignals() {
  ::sigaction(SIGTERM, &previous_term_, nullptr);
  ::sigaction(SIGINT, &previous_int_, nullptr);
}

bool StopSignals::requested() const { return g_stop_signal != 0; }
int StopSignals::signal() const { return g_stop_signal; }

}  // namespace llm
