// Checks shared by the communicators' range collectives (comm.h: all_gather_ranges,
// reduce_scatter_ranges_sum): one partition of a flat buffer into per-rank ranges.
#pragma once

#include <cstdint>
#include <span>

#include "llm/error.h"
#include "llm/tensor.h"

namespace llm {

inline void check_ranges(const char* op, const Tensor& buf, std::span<const int64_t> offsets, int world) {
  LLM_CHECK(buf.is_contiguous(), op, ": buffer ", buf.shape_str(), " is not contiguous");
  LLM_CHECK(static_cast<int64_t>(offsets.size()) == int64_t(world) + 1, op, ": ", offsets.size(),
            " offsets for a world of ", world, " (expected world + 1)");
  LLM_CHECK(offsets.front() == 0 && offsets.back() == buf.numel(), op, ": offsets span [", offsets.front(), ", ",
            offsets.back(), "), the buffer holds ", buf.numel(), " elements");
  for (size_t r = 0; r + 1 < offsets.size(); ++r) {
    LLM_CHECK(offsets[r] <= offsets[r + 1], op, ": offsets decrease at rank ", r, " (", offsets[r], " > ",
              offsets[r + 1], ")");
  }
}

}  // namespace llm
