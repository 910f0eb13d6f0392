#include "progress.h"

#include <cstdio>
#include <iomanip>
#include <sstream>

namespace llm::data {

Progress::Progress(std::ostream* log, bool tty, double interval_s, uint64_t total_bytes)
    : log_(log),
      tty_(tty),
      interval_(interval_s > 0 ? interval_s : (tty ? 0.2 : 10.0)),
      total_bytes_(total_bytes),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::line(uint64_t bytes, uint64_t tokens, uint64_t documents) const {
  const double t = std::max(elapsed(), 1e-9);
  std::ostringstream s;
  s << std::fixed << std::setprecision(1) << "prepare: " << bytes / 1e6 << "/" << total_bytes_ / 1e6 << " MB";
  if (total_bytes_ > 0) s << " (" << std::setprecision(0) << 100.0 * double(bytes) / double(total_bytes_) << "%)";
  s << std::setprecision(2) << "  " << bytes / 1e6 / t << " MB/s  " << std::setprecision(1) << tokens / 1e3 / t
    << "k tok/s  " << tokens << " tokens  " << documents << " docs  " << std::setprecision(1) << t << " s";
  return s.str();
}

void Progress::update(uint64_t bytes, uint64_t tokens, uint64_t documents, bool force) {
  if (!log_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && std::chrono::duration<double>(now - last_).count() < interval_) return;
  last_ = now;
  if (tty_) {
    *log_ << '\r' << line(bytes, tokens, documents) << "\x1b[K" << std::flush;
    printed_ = true;
  } else {
    *log_ << line(bytes, tokens, documents) << '\n' << std::flush;
  }
}

void Progress::done() {
  if (log_ && tty_ && printed_) *log_ << '\n' << std::flush;
  printed_ = false;
}

}  // namespace llm::data
