// The argument checks every communicator makes before moving a byte (src/dist/ranges.h): NCCL
// takes raw device pointers, so a call whose sizes, dtypes or aliasing do not match must be
// refused here, naming the collective, rather than overrun a buffer. Checked on host tensors;
// the NCCL and MPI communicators call the same functions.
#include <gtest/gtest.h>

#include <vector>

#include "dist/ranges.h"
#include "io/io_test_util.h"

namespace llm {
namespace {

using test::expect_error;

Tensor f32(std::vector<float>& v, int64_t off, int64_t n) { return Tensor(v.data() + off, DType::F32, {n}); }

TEST(CollectiveChecks, AllGatherNeedsWorldTimesInAndAliasesOnlyItsOwnSlice) {
  std::vector<float> a(12, 1.5f), b(3, 2.5f);
  check_all_gather(f32(b, 0, 3), f32(a, 0, 9), 3, 1);  // separate buffers
  check_all_gather(f32(a, 3, 3), f32(a, 0, 9), 3, 1);  // in place: rank 1's slice
  expect_error([&] { check_all_gather(f32(b, 0, 3), f32(a, 0, 12), 3, 0); },
               {"all_gather: out [12] f32 is not 3 x in [3] f32"});
  expect_error([&] { check_all_gather(f32(a, 0, 3), f32(a, 0, 9), 3, 1); },
               {"all_gather: in overlaps out but is not rank 1's slice of it"});
  std::vector<uint16_t> h(9, 7);
  expect_error([&] { check_all_gather(f32(b, 0, 3), Tensor(h.data(), DType::BF16, {9}), 3, 0); },
               {"all_gather: in is f32, out is bf16"});
}

TEST(CollectiveChecks, ReduceScatterSumsF32AndAliasesOnlyItsOwnSlice) {
  std::vector<float> a(8, 0.25f), b(4, 0.75f);
  check_reduce_scatter(f32(a, 0, 8), f32(b, 0, 4), 2, 0);
  check_reduce_scatter(f32(a, 0, 8), f32(a, 4, 4), 2, 1);
  expect_error([&] { check_reduce_scatter(f32(a, 0, 8), f32(b, 0, 3), 2, 0); },
               {"reduce_scatter_sum: in [8] f32 is not 2 x out [3] f32"});
  expect_error([&] { check_reduce_scatter(f32(a, 0, 8), f32(a, 2, 4), 2, 0); },
               {"reduce_scatter_sum: out overlaps in but is not rank 0's slice of it"});
  std::vector<uint16_t> h(8, 3);
  expect_error([&] { check_reduce_scatter(Tensor(h.data(), DType::F16, {8}), f32(b, 0, 4), 2, 0); },
               {"reduce_scatter_sum: in [8] f16: the collective sums f32"});
}

TEST(CollectiveChecks, RangedReduceScatterChecksThePartitionAndThisRanksOut) {
  std::vector<float> a(10, 1.25f), b(10, -0.5f);
  const std::vector<int64_t> offsets = {0, 3, 10};
  check_reduce_scatter_ranges(f32(a, 0, 10), f32(b, 0, 7), offsets, 2, 1);
  expect_error([&] { check_reduce_scatter_ranges(f32(a, 0, 10), f32(b, 0, 3), offsets, 2, 1); },
               {"reduce_scatter_ranges_sum: out [3] f32 for rank 1's range of 7"});
  const std::vector<int64_t> short_offsets = {0, 3, 9};
  expect_error([&] { check_reduce_scatter_ranges(f32(a, 0, 10), f32(b, 0, 3), short_offsets, 2, 0); },
               {"reduce_scatter_ranges_sum: offsets span [0, 9), the buffer holds 10 elements"});
  std::vector<uint16_t> h(10, 3);
  expect_error([&] { check_reduce_scatter_ranges(Tensor(h.data(), DType::BF16, {10}), f32(b, 0, 3), offsets, 2, 0); },
               {"reduce_scatter_ranges_sum: in [10] bf16: the collective sums f32"});
}

TEST(CollectiveChecks, BroadcastRootMustExist) {
  std::vector<float> a(4, 3.0f);
  check_broadcast(f32(a, 0, 4), 2, 3);
  expect_error([&] { check_broadcast(f32(a, 0, 4), 3, 3); }, {"broadcast: root 3 does not exist in a world of 3"});
  expect_error([&] { check_broadcast(f32(a, 0, 4), -1, 3); }, {"broadcast: root -1 does not exist in a world of 3"});
}

}  // namespace
}  // namespace llm
