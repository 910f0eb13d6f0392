// Graceful stop: SIGTERM to mpirun (2 ranks) at a random step; every rank finishes that step,
// the checkpoint is written, the job exits with status 75, and --resume ends bitwise where an
// uninterrupted run ends. A second signal stops at once and leaves the previous checkpoint.
#include "reliability/reliability_fixture.h"

namespace llm::test {

namespace {
const std::vector<std::string> kSteps = {"train.steps=20", "train.eval_every=0"};
}

TEST_F(ReliabilityFixture, SigtermToMpirunStopsBothRanksWithACheckpointAndResumesBitwise) {
  ASSERT_EQ(llmtrain(2, "full", kSteps).status, 0) << read_bytes(dir / "full.out");

  std::mt19937 rng(std::random_device{}());
  const int64_t at = std::uniform_int_distribution<int64_t>(1, 5)(rng);
  // OpenMPI 4.1's mpirun, given SIGTERM, waits odls_base_sigkill_timeout seconds (default 1),
  // sends the ranks SIGTERM, and SIGKILLs them after as long again: the ranks have that long to
  // finish the step and checkpoint (docs/long-runs.md).
  ::setenv("OMPI_MCA_odls_base_sigkill_timeout", "2", 1);
  const pid_t pid = spawn(llmtrain_command(2, "stop", kSteps, {"LLM_TEST_STEP_DELAY_MS=300"}));
  ASSERT_TRUE(wait_until(pid, [&] { return steps_logged("stop") >= at; })) << read_bytes(dir / "stop.out");
  ::kill(pid, SIGTERM);
  const int status = wait_for(pid);

  const std::string out = read_bytes(dir / "stop.out");
  // The ranks exit with kExitStopped; mpirun, signalled itself, reports 1.
  EXPECT_NE(status, 0) << out;
  const auto ck = latest_checkpoint(dir / "stop");
  ASSERT_TRUE(ck) << out;
  const int64_t stopped_at = read_trainer_state(*ck)["step"].get<int64_t>();
  EXPECT_GE(stopped_at, at);
  EXPECT_LT(stopped_at, 20) << "the signal came too late to test anything";
  EXPECT_NE(out.find("stopped by signal 15 after step " + std::to_string(stopped_at)), std::string::npos) << out;
  // Both optimizer shards are in the checkpoint: both ranks took part.
  EXPECT_TRUE(std::filesystem::exists(*ck / "optimizer.rank00001.safetensors"));
  EXPECT_TRUE(verify_checksums(*ck));

  const auto resumed = llmtrain(2, "stop", kSteps, {}, "--resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  expect_same_checkpoint(dir / "stop/step_00000020", dir / "full/step_00000020");
  EXPECT_TRUE(stale_entries(dir / "stop").empty());
}

TEST_F(ReliabilityFixture, SecondSignalStopsAtOnceLeavingThePreviousCheckpoint) {
  const std::vector<std::string> sets = {"train.steps=40", "train.eval_every=0", "io.save_every=2"};
  // Checkpoints take 3 s to commit: the second signal lands inside the one the first asked for.
  const pid_t pid =
      spawn(llmtrain_command(0, "twice", sets, {"LLM_TEST_STEP_DELAY_MS=50", "LLM_TEST_CHECKPOINT_DELAY_MS=3000"}));
  ASSERT_TRUE(wait_until(
      pid, [&] { return std::filesystem::exists(dir / "twice/latest"); }, 120));
  ::kill(pid, SIGINT);
  std::filesystem::path pending;  // the checkpoint being written when the second signal comes
  ASSERT_TRUE(wait_until(pid, [&] {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir / "twice", ec)) {
      const std::string n = e.path().filename().string();
      if (n.starts_with(".step_") && n.ends_with(".tmp")) return pending = e.path(), true;
    }
    return false;
  }));
  ::kill(pid, SIGINT);
  EXPECT_EQ(wait_for(pid), -SIGINT) << read_bytes(dir / "twice.out");
  const auto after = latest_checkpoint(dir / "twice");
  ASSERT_TRUE(after);
  EXPECT_LT(after->filename().string(), pending.filename().string().substr(1)) << "the pending one was committed";
  EXPECT_TRUE(verify_checksums(*after));
  EXPECT_NE(read_bytes(dir / "twice.out").find("second signal"), std::string::npos);
}

}  // namespace llm::test

namespace llm::test {

TEST_F(ReliabilityFixture, SigtermToOneProcessExits75AfterACheckpointOfTheStepItWasIn) {
  const std::vector<std::string> sets = {"train.steps=30", "train.eval_every=0"};
  const pid_t pid = spawn(llmtrain_command(0, "one", sets, {"LLM_TEST_STEP_DELAY_MS=100"}));
  ASSERT_TRUE(wait_until(pid, [&] { return steps_logged("one") >= 2; }));
  ::kill(pid, SIGTERM);
  EXPECT_EQ(wait_for(pid), kExitStopped) << read_bytes(dir / "one.out");
  const auto ck = latest_checkpoint(dir / "one");
  ASSERT_TRUE(ck);
  const int64_t step = read_trainer_state(*ck)["step"].get<int64_t>();
  EXPECT_GE(step, 2);
  EXPECT_LE(step, steps_logged("one"));
  EXPECT_LT(step, 30);
}

TEST_F(ReliabilityFixture, SaveEveryMinutesWritesCheckpointsByTheClock) {
  // 0.002 minutes = 120 ms, steps of >= 100 ms: a checkpoint every step or two, save_every off.
  const auto r = llmtrain(0, "clock", {"train.steps=6", "train.eval_every=0", "io.keep_last=10"},
                          {"LLM_TEST_STEP_DELAY_MS=100"}, "--set io.save_every_minutes=0.002");
  ASSERT_EQ(r.status, 0) << r.output;
  int checkpoints = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir / "clock")) {
    checkpoints += e.path().filename().string().starts_with("step_");
  }
  EXPECT_GE(checkpoints, 3) << r.output;
  // Without it, only the final one.
  const auto plain =
      llmtrain(0, "plain", {"train.steps=6", "train.eval_every=0", "io.keep_last=10"}, {"LLM_TEST_STEP_DELAY_MS=100"});
  ASSERT_EQ(plain.status, 0) << plain.output;
  EXPECT_TRUE(std::filesystem::exists(dir / "plain/step_00000006"));
  EXPECT_FALSE(std::filesystem::exists(dir / "plain/step_00000003"));
}

}  // namespace llm::test
