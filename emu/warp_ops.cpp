#include "warp_ops.h"

#include <bit>

namespace llm::emu {
namespace {

// The source lane of a shuffle, exactly as PTX shfl.sync defines it: c packs the segment mask
// (32 - width) << 8 and the clamp (0x1f, or 0 for .up); lanes outside the segment read their own.
unsigned shuffle_source(WarpOp op, unsigned lane, int param, int width) {
  const unsigned segmask = static_cast<unsigned>(32 - width) & 0x1fu;
  const unsigned clamp = op == WarpOp::ShflUp ? 0u : 0x1fu;
  const int max_lane = static_cast<int>((lane & segmask) | (clamp & ~segmask));
  const int min_lane = static_cast<int>(lane & segmask);
  const int b = param & 0x1f;
  const int l = static_cast<int>(lane);
  int j = l;
  bool in_range = false;
  switch (op) {
    case WarpOp::ShflUp:
      j = l - b;
      in_range = j >= max_lane;
      break;
    case WarpOp::ShflDown:
      j = l + b;
      in_range = j <= max_lane;
      break;
    case WarpOp::ShflXor:
      j = l ^ b;
      in_range = j <= max_lane;
      break;
    default:
      j = min_lane | (b & static_cast<int>(~segmask & 0x1fu));
      in_range = j <= max_lane;
      break;
  }
  return static_cast<unsigned>(in_range ? j : l);
}

}  // namespace

const char* warp_op_name(WarpOp op) {
  switch (op) {
    case WarpOp::SyncWarp: return "__syncwarp";
    case WarpOp::ShflIdx: return "__shfl_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Any: return "__any_sync";
    case WarpOp::All: return "__all_sync";
    case WarpOp::MatchAny: return "__match_any_sync";
    case WarpOp::MatchAll: return "__match_all_sync";
    case WarpOp::ReduceAddU: return "__reduce_add_sync";
    case WarpOp::ReduceMinU:
    case WarpOp::ReduceMinI: return "__reduce_min_sync";
    case WarpOp::ReduceMaxU:
    case WarpOp::ReduceMaxI: return "__reduce_max_sync";
    case WarpOp::ReduceAnd: return "__reduce_and_sync";
    case WarpOp::ReduceOr: return "__reduce_or_sync";
    case WarpOp::ReduceXor: return "__reduce_xor_sync";
    case WarpOp::Custom: return "warp collective";
  }
  return "?";
}

BadRead compute_collective(const WarpArrival* const arrivals[32], unsigned group, unsigned exists, unsigned exited,
                           bool strict, uint64_t results[32], int predicates[32]) {
  const WarpArrival& r = *arrivals[std::countr_zero(group)];
  switch (r.op) {
    case WarpOp::SyncWarp: break;
    case WarpOp::ShflIdx:
    case WarpOp::ShflUp:
    case WarpOp::ShflDown:
    case WarpOp::ShflXor:
      for (unsigned g = group; g; g &= g - 1) {
        const unsigned l = static_cast<unsigned>(std::countr_zero(g));
        const WarpArrival& a = *arrivals[l];
        const unsigned j = shuffle_source(a.op, l, a.param, a.width);
        if (j != l && !(group >> j & 1u)) {
          if (strict) {
            return BadRead{static_cast<int>(l), j,
                           !(exists >> j & 1u)  ? "does not exist (the block is smaller)"
                           : (exited >> j & 1u) ? "has already returned from the kernel"
                                                : "is not named in the mask"};
          }
          results[l] = ~uint64_t{0};  // undefined on a GPU: make any use of it visible
          continue;
        }
        results[l] = arrivals[j]->value;
      }
      break;
    case WarpOp::Ballot:
    case WarpOp::Any:
    case WarpOp::All: {
      unsigned bits = 0;
      for (unsigned g = group; g; g &= g - 1) {
        const unsigned l = static_cast<unsigned>(std::countr_zero(g));
        if (arrivals[l]->value != 0) bits |= 1u << l;
      }
      const uint64_t v = r.op == WarpOp::Ballot ? bits : r.op == WarpOp::Any ? (bits != 0) : (bits == group);
      for (int l = 0; l < 32; ++l) results[l] = v;
      break;
    }
    case WarpOp::MatchAny:
    case WarpOp::MatchAll: {
      bool all_equal = true;
      for (unsigned g = group; g; g &= g - 1) {
        const unsigned l = static_cast<unsigned>(std::countr_zero(g));
        unsigned same = 0;
        for (unsigned h = group; h; h &= h - 1) {
          const unsigned k = static_cast<unsigned>(std::countr_zero(h));
          if (arrivals[k]->value == arrivals[l]->value) same |= 1u << k;
        }
        results[l] = same;
        all_equal = all_equal && same == group;
      }
      if (r.op == WarpOp::MatchAll) {
        for (unsigned l = 0; l < 32; ++l) {
          results[l] = all_equal ? group : 0;
          predicates[l] = all_equal ? 1 : 0;
        }
      }
      break;
    }
    case WarpOp::ReduceAddU:
    case WarpOp::ReduceMinU:
    case WarpOp::ReduceMaxU:
    case WarpOp::ReduceMinI:
    case WarpOp::ReduceMaxI:
    case WarpOp::ReduceAnd:
    case WarpOp::ReduceOr:
    case WarpOp::ReduceXor: {
      const unsigned first = static_cast<unsigned>(std::countr_zero(group));
      uint32_t acc = static_cast<uint32_t>(arrivals[first]->value);
      for (unsigned g = group & (group - 1); g; g &= g - 1) {
        const uint32_t v = static_cast<uint32_t>(arrivals[std::countr_zero(g)]->value);
        switch (r.op) {
          case WarpOp::ReduceAddU: acc += v; break;
          case WarpOp::ReduceMinU: acc = v < acc ? v : acc; break;
          case WarpOp::ReduceMaxU: acc = v > acc ? v : acc; break;
          case WarpOp::ReduceMinI: acc = static_cast<int32_t>(v) < static_cast<int32_t>(acc) ? v : acc; break;
          case WarpOp::ReduceMaxI: acc = static_cast<int32_t>(v) > static_cast<int32_t>(acc) ? v : acc; break;
          case WarpOp::ReduceAnd: acc &= v; break;
          case WarpOp::ReduceOr: acc |= v; break;
          default: acc ^= v; break;
        }
      }
      for (int l = 0; l < 32; ++l) results[l] = acc;
      break;
    }
    case WarpOp::Custom: {
      const void* inputs[32] = {};
      void* outputs[32] = {};
      for (unsigned g = group; g; g &= g - 1) {
        const unsigned l = static_cast<unsigned>(std::countr_zero(g));
        inputs[l] = arrivals[l]->custom_in;
        outputs[l] = arrivals[l]->custom_out;
      }
      r.custom->compute(inputs, outputs, group);
      break;
    }
  }

  return BadRead{};
}

}  // namespace llm::emu
