// learning_rate: warmup, then cosine, warmup-stable-decay or constant.
#include <cmath>
#include <numbers>

#include "llm/optimizer.h"

namespace llm {

double learning_rate(const OptimSection& o, int64_t step, int64_t total) {
  const double peak = o.lr, floor = o.lr * o.min_lr_ratio;
  if (step < o.warmup_steps) return peak * double(step + 1) / double(o.warmup_steps);
  switch (o.schedule) {
    case LrSchedule::Constant: return peak;
    case LrSchedule::Cosine: {
      const int64_t span = std::max<int64_t>(1, total - o.warmup_steps);
      const double p = std::min(1.0, double(step - o.warmup_steps) / double(span));
      return floor + (peak - floor) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
    }
    case LrSchedule::Wsd: {
      // Stable at the peak, then a linear decay to the floor over the last decay_fraction.
      const auto decay_steps =
          std::max<int64_t>(1, static_cast<int64_t>(std::llround(o.wsd_decay_fraction * double(total))));
      const int64_t decay_start = std::max(o.warmup_steps, total - decay_steps);
      if (step < decay_start) return peak;
      const double p =
          std::min(1.0, double(step - decay_start + 1) / double(std::max<int64_t>(1, total - decay_start)));
      return peak + (floor - peak) * p;
    }
  }
  return peak;
}

}  // namespace llm
