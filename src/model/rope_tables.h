// Rotary tables as HF builds them: inv_freq and the angles in fp32, cos/sin of the fp32 angle.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "llm/model.h"

namespace llm {

// cos, sin [positions, head_dim / 2], row p holding the angles of position p.
inline void build_rope_tables(const ModelConfig& cfg, int64_t positions, std::vector<float>& cos,
                              std::vector<float>& sin) {
  const int64_t D = cfg.head_dim(), half = D / 2;
  cos.resize(static_cast<size_t>(positions * half));
  sin.resize(cos.size());
  const auto theta = static_cast<float>(cfg.rope_theta);
  for (int64_t i = 0; i < half; ++i) {
    const float inv_freq = 1.0f / std::pow(theta, static_cast<float>(2 * i) / static_cast<float>(D));
    for (int64_t p = 0; p < positions; ++p) {
      const float angle = static_cast<float>(p) * inv_freq;
      cos[static_cast<size_t>(p * half + i)] = static_cast<float>(std::cos(double(angle)));
      sin[static_cast<size_t>(p * half + i)] = static_cast<float>(std::sin(double(angle)));
    }
  }
}

}  // namespace llm
