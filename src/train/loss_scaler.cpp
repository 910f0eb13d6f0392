// LossScaler: dynamic loss scaling state machine, checkpointed with the trainer state.
#include "llm/error.h"
#include "llm/optimizer.h"

namespace llm {

LossScaler::LossScaler(bool dynamic, double init, int64_t growth_interval, double backoff, int64_t max_skipped)
    : dynamic_(dynamic),
      scale_(dynamic ? init : 1.0),
      growth_interval_(growth_interval),
      backoff_(backoff),
      max_skipped_(max_skipped) {}

bool LossScaler::update(bool finite) {
  if (!finite) {
    ++skipped_total_;
    ++consecutive_skipped_;
    clean_run_ = 0;
    if (dynamic_) scale_ = std::max(1.0, scale_ * backoff_);
    return false;
  }
  consecutive_skipped_ = 0;
  if (dynamic_ && ++clean_run_ >= growth_interval_) {
    scale_ = std::min(scale_ * 2.0, 16777216.0);  // 2^24: beyond it fp16 gradients overflow anyway
    clean_run_ = 0;
  }
  return true;
}

nlohmann::json LossScaler::to_json() const {
  return {{"dynamic", dynamic_},
          {"scale", scale_},
          {"clean_run", clean_run_},
          {"skipped_total", skipped_total_},
          {"consecutive_skipped", consecutive_skipped_}};
}

void LossScaler::from_json(const nlohmann::json& j, const std::string& where) {
  try {
    scale_ = j.at("scale").get<double>();
    clean_run_ = j.at("clean_run").get<int64_t>();
    skipped_total_ = j.at("skipped_total").get<int64_t>();
    consecutive_skipped_ = j.at("consecutive_skipped").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": loss_scaler: ", e.what());
  }
  LLM_CHECK(scale_ >= 1.0, where, ": loss_scaler.scale ", scale_, " is below 1");
}

}  // namespace llm
