// The progress line of corpus preparation: MB/s and tokens/s, updated in place on a terminal,
// an occasional plain line otherwise. Private to src/data.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace llm::data {

class Progress {
 public:
  Progress(std::ostream* log, bool tty, double interval_s, uint64_t total_bytes);
  // Reports the counters when the interval has passed (always when force).
  void update(uint64_t bytes, uint64_t tokens, uint64_t documents, bool force = false);
  // Ends the in-place line, if any.
  void done();
  double elapsed() const;

 private:
  std::string line(uint64_t bytes, uint64_t tokens, uint64_t documents) const;

  std::ostream* log_;
  bool tty_;
  double interval_;
  uint64_t total_bytes_;
  std::chrono::steady_clock::time_point start_, last_;
  bool printed_ = false;
};

}  // namespace llm::data
