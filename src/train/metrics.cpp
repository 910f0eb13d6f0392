// MetricsLog, loss.svg, the progress line and its small formatters.
#include "train/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <vector>

#include "llm/atomic_file.h"
#include "llm/error.h"

namespace llm {

MetricsLog::MetricsLog(const std::filesystem::path& run_dir, int64_t keep_through_step)
    : path_(run_dir / "metrics.jsonl") {
  std::filesystem::create_directories(run_dir);
  if (keep_through_step >= 0 && std::filesystem::exists(path_)) {
    std::ifstream in(path_);
    std::string line, kept;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("step", int64_t(0)) <= keep_through_step) kept += line + "\n";
    }
    write_file_atomic(path_, kept);
  } else if (keep_through_step < 0) {
    write_file_atomic(path_, "");  // a fresh run starts a fresh log
  }
  out_.open(path_, std::ios::app);
  LLM_CHECK(out_.good(), path_.string(), ": cannot open for appending");
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
}

std::string format_progress(const StepProgress& p) {
  std::ostringstream line;
  line << "step " << p.step << "/" << p.total_steps << "  loss " << std::fixed << std::setprecision(4) << p.loss
       << "  lr " << std::scientific << std::setprecision(2) << p.lr << std::defaultfloat << "  "
       << format_count(p.tokens_per_s) << " tok/s  ";
  if (p.peak_flops > 0) {
    line << "MFU " << std::fixed << std::setprecision(1) << 100.0 * p.flops_per_s / p.peak_flops << "%  "
         << std::defaultfloat;
  } else {
    line << std::fixed << std::setprecision(1) << p.flops_per_s / 1e9 << " GFLOP/s  " << std::defaultfloat;
  }
  line << "mem " << format_bytes(p.mem_bytes) << "  ETA " << format_duration(p.eta_s);
  if (p.skipped) line << "  [skipped: non-finite]";
  return line.str();
}

std::string format_eval(int64_t step, double val_loss) {
  std::ostringstream line;
  line << "eval: step " << step << "  val_loss " << std::fixed << std::setprecision(4) << val_loss << "  ppl "
       << std::setprecision(2) << std::exp(val_loss);
  return line.str();
}

ProgressLog::ProgressLog(std::ostream& out, bool tty, int64_t log_every)
    : out_(out), tty_(tty), log_every_(log_every), last_print_(std::chrono::steady_clock::now()) {}

bool ProgressLog::due(int64_t step, bool last) const {
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_print_).count();
  return tty_ || last || step % log_every_ == 0 || since > 30;
}

void ProgressLog::step_line(const std::string& line, bool last) {
  out_ << (tty_ ? "\r\033[K" : "") << line << (tty_ && !last ? "" : "\n") << std::flush;
  last_print_ = std::chrono::steady_clock::now();
}

void ProgressLog::line(const std::string& text) { out_ << (tty_ ? "\r\033[K" : "") << text << "\n" << std::flush; }

void ProgressLog::say(const std::string& text) { out_ << text << "\n" << std::flush; }

std::string format_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60)
    std::snprintf(buf, sizeof(buf), "%.0fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof(buf), "%dm%02ds", int(s / 60), int(s) % 60);
  else
    std::snprintf(buf, sizeof(buf), "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  return buf;
}

std::string format_bytes(double b) {
  char buf[32];
  const char* unit[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.1f %s", b, unit[u]);
  return buf;
}

std::string format_count(double n) {
  char buf[32];
  if (n >= 1e9)
    std::snprintf(buf, sizeof(buf), "%.2fG", n / 1e9);
  else if (n >= 1e6)
    std::snprintf(buf, sizeof(buf), "%.2fM", n / 1e6);
  else if (n >= 1e3)
    std::snprintf(buf, sizeof(buf), "%.1fk", n / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.0f", n);
  return buf;
}

namespace {

struct Point {
  double x, y;
};

std::string polyline(const std::vector<Point>& pts, double x0, double x1, double y0, double y1, const char* style) {
  std::ostringstream o;
  o << "<polyline fill=\"none\" " << style << " points=\"";
  for (const auto& p : pts) {
    const double px = 70 + (p.x - x0) / std::max(1e-12, x1 - x0) * 700;
    const double py = 350 - (p.y - y0) / std::max(1e-12, y1 - y0) * 310;
    o << px << "," << py << " ";
  }
  o << "\"/>\n";
  return o.str();
}

}  // namespace

void write_loss_plot(const std::filesystem::path& run_dir) {
  std::ifstream in(run_dir / "metrics.jsonl");
  std::vector<Point> train, smooth, val;
  std::string line;
  double ema = NAN;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step")) continue;
    const double step = j["step"].get<double>();
    if (j.contains("loss") && j["loss"].is_number()) {
      const double l = j["loss"].get<double>();
      if (!std::isfinite(l)) continue;
      train.push_back({step, l});
      ema = std::isnan(ema) ? l : 0.9 * ema + 0.1 * l;
      smooth.push_back({step, ema});
    }
    if (j.contains("val_loss") && j["val_loss"].is_number()) val.push_back({step, j["val_loss"].get<double>()});
  }
  if (train.empty() && val.empty()) return;
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto* v : {&train, &val}) {
    for (const auto& p : *v) {
      x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
      y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    }
  }
  y0 = std::floor(y0 * 2) / 2, y1 = std::ceil(y1 * 2) / 2;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"400\" font-family=\"sans-serif\" "
       "font-size=\"12\">\n<rect width=\"800\" height=\"400\" fill=\"white\"/>\n"
       "<text x=\"400\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">loss</text>\n"
       "<line x1=\"70\" y1=\"350\" x2=\"770\" y2=\"350\" stroke=\"black\"/>\n"
       "<line x1=\"70\" y1=\"40\" x2=\"70\" y2=\"350\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 5; ++i) {
    const double y = y0 + (y1 - y0) * i / 5, py = 350 - 310.0 * i / 5;
    const double x = x0 + (x1 - x0) * i / 5, px = 70 + 700.0 * i / 5;
    char yl[32], xl[32];
    std::snprintf(yl, sizeof(yl), "%.2f", y);
    std::snprintf(xl, sizeof(xl), "%.0f", x);
    o << "<line x1=\"66\" y1=\"" << py << "\" x2=\"770\" y2=\"" << py << "\" stroke=\"#eee\"/>\n"
      << "<text x=\"62\" y=\"" << py + 4 << "\" text-anchor=\"end\">" << yl << "</text>\n"
      << "<text x=\"" << px << "\" y=\"366\" text-anchor=\"middle\">" << xl << "</text>\n";
  }
  o << "<text x=\"420\" y=\"390\" text-anchor=\"middle\">step</text>\n";
  if (!train.empty()) {
    o << polyline(train, x0, x1, y0, y1, "stroke=\"#9ecae1\" stroke-width=\"1\"");
    o << polyline(smooth, x0, x1, y0, y1, "stroke=\"#08519c\" stroke-width=\"2\"");
  }
  if (!val.empty()) o << polyline(val, x0, x1, y0, y1, "stroke=\"#e6550d\" stroke-width=\"2\"");
  o << "<text x=\"600\" y=\"60\" fill=\"#08519c\">train (smoothed)</text>\n"
       "<text x=\"600\" y=\"78\" fill=\"#e6550d\">validation</text>\n</svg>\n";
  write_file_atomic(run_dir / "loss.svg", o.str());
}

}  // namespace llm
