// The MPI communicator's collectives, checked inside real MPI jobs: the MpiCollectives test
// runs this very binary under `mpirun -np 2` and `-np 3` with only the MpiInner tests selected
// (LLM_TEST_MPI_INNER=1); each rank computes what every collective must give from the rank
// formulas alone. Chunks are tiny (64 elements), so multi-chunk paths run on small buffers.
// Also: the factory picks the local communicator when no launcher started the process.
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstring>

#include "io/io_test_util.h"
#include "llm/comm.h"
#include "llm/dtype.h"
#include "llm/optimizer.h"

namespace llm::test {
namespace {

bool inner() { return std::getenv("LLM_TEST_MPI_INNER") != nullptr; }

// One MPI communicator for all inner tests of the process (MPI initialises once); finalised at exit.
Communicator& mpi() {
  static const std::unique_ptr<Communicator> comm = [] {
    CommOptions o;
    o.chunk_elems = 64;
    auto c = make_mpi_communicator(o);
    c->set_timeout(60);
    return c;
  }();
  return *comm;
}

#define SKIP_UNLESS_INNER() \
  if (!inner()) GTEST_SKIP() << "runs inside the MPI job that MpiCollectives starts"

Tensor f32(std::vector<float>& v) { return Tensor(v.data(), DType::F32, {int64_t(v.size())}); }

TEST(MpiInner, IdentityAndHost) {
  SKIP_UNLESS_INNER();
  Communicator& c = mpi();
  EXPECT_GE(c.world(), 2);
  EXPECT_EQ(c.local_rank(), c.rank());  // one host
  EXPECT_NE(c.name().find("mpi ("), std::string::npos) << c.name();
  EXPECT_NE(c.name().find("1 host"), std::string::npos) << c.name();
}

TEST(MpiInner, ScalarsAndHostVectors) {
  SKIP_UNLESS_INNER();
  Communicator& c = mpi();
  const int W = c.world(), r = c.rank();
  EXPECT_EQ(c.all_reduce_sum(double(r + 1)), W * (W + 1) / 2.0);
  EXPECT_EQ(c.all_reduce_max(double(r == 1 ? 7.5 : -r)), 7.5);
  std::vector<double> v(5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i) * (r + 1);
  c.all_reduce_sum(v);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], double(i) * W * (W + 1) / 2.0);
  c.barrier();
}

TEST(MpiInner, AllReduceSumOverManyChunks) {
  SKIP_UNLESS_INNER();
  Communicator& c = mpi();
  const int W = c.world(), r = c.rank();
  std::vector<float> v(1003);  // 15 full chunks and a partial one
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * float(r + 1) + 0.5f;
  c.all_reduce_sum(f32(v));
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], float(i) * float(W * (W + 1) / 2) + 0.5f * float(W)) << i;
}

// An uneven partition with an empty range (rank 1's) and one range longer than a chunk.
std::vector<int64_t> uneven(int W) {
  std::vector<int64_t> o = {0, 150, 150};
  for (int r = 2; r < W; ++r) o.push_back(o.back() + 37 * r);
  o.resize(size_t(W) + 1);
  return o;
}

TEST(MpiInner, ReduceScatterRangesInPlaceAndOutOfPlace) {
  SKIP_UNLESS_INNER();
  Communicator& c = mpi();
  const int W = c.world(), r = c.rank();
  for (const auto& offsets : {uneven(W), zero_partition(1000, W), zero_partition(70, W)}) {
    const int64_t n = offsets.back(), b = offsets[size_t(r)], cnt = offsets[size_t(r) + 1] - b;
    auto fill = [&] {
      std::vector<float> v(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) v[size_t(i)] = float(i % 101) * float(r + 1) - float(r);
      return v;
    };
    auto expect = [&](int64_t i) { return float(i % 101) * float(W * (W + 1) / 2) - float(W * (W - 1) / 2); };
    std::vector<float> in = fill();
    c.reduce_scatter_ranges_sum(f32(in), f32(in).range(b, cnt), offsets);  // in place
    for (int64_t i = 0; i < cnt; ++i) ASSERT_EQ(in[size_t(b + i)], expect(b + i)) << "in place, element " << b + i;
    std::vector<float> in2 = fill(), out(static_cast<size_t>(cnt) + 1);
    c.reduce_scatter_ranges_sum(f32(in2), Tensor(out.data(), DType::F32, {cnt}), offsets);
    for (int64_t i = 0; i < cnt; ++i) ASSERT_EQ(out[size_t(i)], expect(b + i)) << "out of place, element " << b + i;
    EXPECT_EQ(in2, fill()) << "out of place must leave in unchanged";
  }
}

TEST(MpiInner, AllGatherRangesOfTwoByteWeights) {
  SKIP_UNLESS_INNER();
  Communicator& c = mpi();
  const int W = c.world(), r = c.rank();
  for (const auto& offsets : {uneven(W), zero_partition(5000, W)}) {
    const int64_t n = offsets.back();
    std::vector<uint16_t> w(static_cast<size_t>(n), 0xdead);
    auto value = [](int64_t i) { return f32_to_bf16_bits(float(i) * 0.25f - 3.0f); };
    for (int64_t i = offsets[size_t(r)]; i < offsets[size_t(r) + 1]; ++i) w[size_t(i)] = value(i);
    c.all_gather_ranges(Tensor(w.data(), DType::BF16, {n}), offsets);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(w[size_t(i)], value(i)) << "element " << i;
  }
}

TEST(MpiInner, EvenAllGatherReduceScatterAndBroadcast) {
  SKIP_UNLESS_INNER();
  Communicator& c = mpi();
  const int W = c.world(), r = c.rank();
  const int64_t n = 100;
  std::vector<float> mine(n), all(static_cast<size_t>(n * W));
  for (int64_t i = 0; i < n; ++i) mine[size_t(i)] = float(r * 1000 + i);
  c.all_gather(f32(mine), f32(all));
  for (int q = 0; q < W; ++q) {
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(all[size_t(q * n + i)], float(q * 1000 + i));
  }
  std::vector<float> src(static_cast<size_t>(n * W), float(r + 1)), dst(n);
  c.reduce_scatter_sum(f32(src), f32(dst));
  for (float x : dst) ASSERT_EQ(x, float(W * (W + 1) / 2));
  std::vector<float> b(300, float(r));
  c.broadcast(f32(b), W - 1);
  for (float x : b) ASSERT_EQ(x, float(W - 1));
}

TEST(MpiCollectives, PassUnderMpirunWithTwoAndThreeRanks) {
#ifndef LLM_HAVE_MPI
  GTEST_SKIP() << "built without MPI";
#else
  if (inner()) GTEST_SKIP() << "already inside the MPI job";
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  ::setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  for (int np : {2, 3}) {
    const std::string cmd =
        cat(LLM_MPIEXEC, " --oversubscribe --bind-to none -np ", np, " -x LLM_TEST_MPI_INNER=1 /proc/", ::getpid(),
            "/exe --gtest_filter='MpiInner.*' --gtest_color=no 2>&1");
    const CommandResult r = run_command(cmd);
    EXPECT_EQ(r.status, 0) << r.output;
    // Every rank ran every inner test and none was skipped.
    size_t passed = 0;
    for (size_t at = r.output.find("[  PASSED  ] 6 tests"); at != std::string::npos;
         at = r.output.find("[  PASSED  ] 6 tests", at + 1)) {
      ++passed;
    }
    EXPECT_EQ(passed, size_t(np)) << r.output;
    EXPECT_EQ(r.output.find("SKIPPED"), std::string::npos) << r.output;
  }
#endif
}

TEST(MakeCommunicator, WithoutALauncherIsLocalAndNeedsNoMpi) {
  if (launched_by_mpi()) GTEST_SKIP() << "this process was started by an MPI launcher";
  const auto c = make_communicator();
  EXPECT_EQ(c->world(), 1);
  EXPECT_EQ(c->name(), "local (1 rank)");
  ::setenv("LLM_DIST", "bogus", 1);
  expect_error([] { make_communicator(); }, {"LLM_DIST: expected local, mpi or auto, got \"bogus\""});
  ::unsetenv("LLM_DIST");
}

}  // namespace
}  // namespace llm::test
