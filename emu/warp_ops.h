// What a completed warp collective returns to each lane: the semantics of every *_sync
// intrinsic, given the arrivals of all lanes of the group (block.cpp decides when a group is
// complete; this file only computes its results).
#pragma once

#include <cstdint>

#include "block.h"

namespace llm::emu {

// A shuffle lane whose source is outside the group (undefined on a GPU); lane < 0: none.
struct BadRead {
  int lane = -1;
  unsigned source = 0;
  const char* why = "";
};

// arrivals[l] for the lanes l of `group` (all with the same op and mask); exists / exited: the
// warp's lanes. Fills results[l] (and predicates[l] for __match_all_sync). With `strict`, the
// first shuffle reading outside the group is returned instead of computed (as all ones without).
BadRead compute_collective(const WarpArrival* const arrivals[32], unsigned group, unsigned exists, unsigned exited,
                           bool strict, uint64_t results[32], int predicates[32]);

}  // namespace llm::emu
