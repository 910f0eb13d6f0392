// A rank that dies or hangs must not leave the others blocked: the job ends within the
// configured timeout (plus start-up and a grace period) with a message naming the rank.
#include "dist/dist_fixture.h"

namespace llm::test {
namespace {

constexpr double kTimeout = 3;
// mpirun start-up, data preparation and two steps, the roll-call grace (at most timeout / 2,
// at least 2 s; twice that when rank 0 is the one missing), on a shared 2-core machine.
constexpr double kMargin = 25;

std::vector<std::string> sets() { return {cat("dist.timeout_s=", kTimeout), "train.eval_every=0", "train.steps=50"}; }

TEST_F(DistFixture, AKilledRankEndsTheJobNamingIt) {
  const auto r = llmtrain(3, "kill", sets(), {"LLM_TEST_DIST_FAULT=kill:1:2"});
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(r.seconds, kTimeout + kMargin) << r.output;
  // mpirun notices the death itself; if a collective noticed first, ours names the rank.
  EXPECT_TRUE(r.output.find("rank 1 ") != std::string::npos || r.output.find("rank(s) 1 ") != std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("step 50/50"), std::string::npos) << r.output;
}

TEST_F(DistFixture, AHungRankTimesOutNamingTheCollectiveAndTheRank) {
  const auto r = llmtrain(3, "hang", sets(), {"LLM_TEST_DIST_FAULT=hang:2:2"});
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(r.seconds, kTimeout + kMargin) << r.output;
  EXPECT_GT(r.seconds, kTimeout) << r.output;
  EXPECT_NE(r.output.find("timed out on rank 0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 2)"), std::string::npos) << r.output;  // where: the collective's phase
  EXPECT_NE(r.output.find("rank(s) 2 did not arrive"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("rank(s) 1"), std::string::npos) << r.output;
}

TEST_F(DistFixture, AHungRankZeroIsNamedByTheOthers) {
  const auto r = llmtrain(2, "hang0", sets(), {"LLM_TEST_DIST_FAULT=hang:0:3"});
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(r.seconds, kTimeout + kMargin) << r.output;
  EXPECT_NE(r.output.find("timed out on rank 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 0 did not arrive"), std::string::npos) << r.output;
}

TEST_F(DistFixture, AnErrorOnOneRankEndsTheJobAtOnce) {
  // Rank 1 alone fails; the others, already in their next collective, must not wait for the
  // (long) timeout.
  const auto r = llmtrain(2, "err", {"dist.timeout_s=600", "train.eval_every=0", "train.steps=50"},
                          {"LLM_TEST_DIST_FAULT=throw:1:2"});
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(r.seconds, kMargin) << r.output;
  EXPECT_NE(r.output.find("llmtrain: error (rank 1 of 2): LLM_TEST_DIST_FAULT: an error on rank 1 before step 2"),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace llm::test
