// What the user sees of a run: metrics.jsonl (one JSON object per step or evaluation), the live
// progress line, and loss.svg, a loss-curve picture redrawn from metrics.jsonl.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
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

std::string format_duration(double seconds);    // "3m12s", "1h04m"
std::string format_bytes(double bytes);         // "1.2 GB"
std::string format_count(double n);             // "12.3k", "4.5M"

}  // namespace llm
