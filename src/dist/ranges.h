// The argument checks every communicator shares (comm.h), MPI on host buffers and NCCL on device
// buffers alike: the range collectives' partition of a flat buffer into per-rank ranges, and the
// sizes, dtypes and aliasing of the others.
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

// The checks of the other collectives, made by every communicator (MPI on host buffers, NCCL on
// device buffers) before it moves a byte: a call whose sizes do not match across its arguments is
// an error naming the collective, never an overrun of a buffer.
namespace llm {

inline void check_f32_buffer(const char* op, const char* what, const Tensor& t) {
  LLM_CHECK(t.is_contiguous(), op, ": ", what, " ", t.shape_str(), " is not contiguous");
  LLM_CHECK(t.dtype() == DType::F32, op, ": ", what, " ", t.shape_str(), ": the collective sums f32");
}

// out [world * n] <- every rank's in [n]; in may alias this rank's slice of out, nothing else of it.
inline void check_all_gather(const Tensor& in, const Tensor& out, int world, int rank) {
  LLM_CHECK(in.is_contiguous() && out.is_contiguous(), "all_gather: in ", in.shape_str(), " and out ", out.shape_str(),
            " must be contiguous");
  LLM_CHECK(in.dtype() == out.dtype(), "all_gather: in is ", dtype_name(in.dtype()), ", out is ",
            dtype_name(out.dtype()));
  LLM_CHECK(out.numel() == in.numel() * world, "all_gather: out ", out.shape_str(), " is not ", world, " x in ",
            in.shape_str());
  const auto* i = static_cast<const char*>(in.data());
  const auto* o = static_cast<const char*>(out.data());
  const bool overlap = in.nbytes() > 0 && i < o + out.nbytes() && o < i + in.nbytes();
  LLM_CHECK(!overlap || i == o + size_t(rank) * in.nbytes(), "all_gather: in overlaps out but is not rank ", rank,
            "'s slice of it");
}

// out [n] <- the sum over ranks of slice `rank` of in [world * n]; out may alias that slice only.
inline void check_reduce_scatter(const Tensor& in, const Tensor& out, int world, int rank) {
  check_f32_buffer("reduce_scatter_sum", "in", in);
  check_f32_buffer("reduce_scatter_sum", "out", out);
  LLM_CHECK(in.numel() == out.numel() * world, "reduce_scatter_sum: in ", in.shape_str(), " is not ", world, " x out ",
            out.shape_str());
  const auto* i = static_cast<const char*>(in.data());
  const auto* o = static_cast<const char*>(out.data());
  const bool overlap = out.nbytes() > 0 && i < o + out.nbytes() && o < i + in.nbytes();
  LLM_CHECK(!overlap || o == i + size_t(rank) * out.nbytes(), "reduce_scatter_sum: out overlaps in but is not rank ",
            rank, "'s slice of it");
}

// out [offsets[rank + 1] - offsets[rank]] <- the sum over ranks of that range of in [offsets[world]].
inline void check_reduce_scatter_ranges(const Tensor& in, const Tensor& out, std::span<const int64_t> offsets,
                                        int world, int rank) {
  check_ranges("reduce_scatter_ranges_sum", in, offsets, world);
  check_f32_buffer("reduce_scatter_ranges_sum", "in", in);
  check_f32_buffer("reduce_scatter_ranges_sum", "out", out);
  const int64_t mine_n = offsets[size_t(rank) + 1] - offsets[size_t(rank)];
  LLM_CHECK(out.numel() == mine_n, "reduce_scatter_ranges_sum: out ", out.shape_str(), " for rank ", rank,
            "'s range of ", mine_n);
}

inline void check_broadcast(const Tensor& t, int root, int world) {
  LLM_CHECK(root >= 0 && root < world, "broadcast: root ", root, " does not exist in a world of ", world);
  LLM_CHECK(t.is_contiguous(), "broadcast: tensor ", t.shape_str(), " is not contiguous");
}

}  // namespace llm
