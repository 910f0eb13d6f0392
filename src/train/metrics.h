// What the user sees of a run: metrics.jsonl (one JSON object per step or evaluation), the live
// progress line, and loss.svg, a loss-curve picture redrawn from metrics.jsonl.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iosfwd>
#include <string>

namespace llm {

class MetricsLog {
 public:
  // Opens run_dir/metrics.jsonl for appending; when keep_through_step >= 0, first drops the lines
  // of steps after it (a resumed run rewrites what came after its checkpoint).
  MetricsLog(const std::filesystem::path& run_dir, int64_t keep_through_step);
  void write(const nlohmann::json& record);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

// Redraws run_dir/loss.svg from run_dir/metrics.jsonl: training loss (raw and smoothed) and
// validation loss against the step. Written atomically.
void write_loss_plot(const std::filesystem::path& run_dir);

// One step of the progress line: "step 12/100  loss 3.1234  lr 3.00e-04  12.3k tok/s  MFU 1.2%  mem 1.2 MB
// ETA 3m12s" (GFLOP/s in place of MFU when the device's peak is unknown).
struct StepProgress {
  int64_t step = 0, total_steps = 0;
  double loss = 0;
  float lr = 0;
  double tokens_per_s = 0;
  double flops_per_s = 0, peak_flops = 0;  // peak 0: unknown
  double mem_bytes = 0;
  double eta_s = 0;
  bool skipped = false;  // the step was not applied (non-finite)
};
std::string format_progress(const StepProgress& p);
// "eval: step 4  val_loss 3.1234  ppl 22.81"
std::string format_eval(int64_t step, double val_loss);

// The console of rank 0: progress lines (on a terminal one line rewritten in place, else one line
// every log_every steps, on the last step and at least every 30 s) and lines that stay.
class ProgressLog {
 public:
  ProgressLog(std::ostream& out, bool tty, int64_t log_every);
  // The loop starts: the 30 s count starts here.
  void start() { last_print_ = std::chrono::steady_clock::now(); }
  // Whether the step line of `step` is due (last: the run's last step).
  bool due(int64_t step, bool last) const;
  void step_line(const std::string& line, bool last);
  // A line that stays, clearing a progress line in place first.
  void line(const std::string& text);
  // A line that stays, written as it is.
  void say(const std::string& text);
  std::ostream& out() { return out_; }
  bool tty() const { return tty_; }

 private:
  std::ostream& out_;
  bool tty_;
  int64_t log_every_;
  std::chrono::steady_clock::time_point last_print_;
};

std::string format_duration(double seconds);  // "3m12s", "1h04m"
std::string format_bytes(double bytes);       // "1.2 GB"
std::string format_count(double n);           // "12.3k", "4.5M"

}  // namespace llm
