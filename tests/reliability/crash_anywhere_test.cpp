// Crash anywhere: llmtrain SIGKILLed again and again (during shard preparation, during steps,
// inside checkpoint writes), resumed each time; the run ends with the weights and optimizer state
// of an uninterrupted run, bitwise, and nothing stale in the run directory. With keep_last 1 a
// complete checkpoint exists after every kill once the first one was written.
#include "reliability/reliability_fixture.h"

namespace llm::test {

TEST_F(ReliabilityFixture, SigkillAtRandomMomentsThenResumeEndsBitwiseAsAnUninterruptedRun) {
  const std::vector<std::string> sets = {"train.steps=60", "train.eval_every=0", "io.save_every=2", "io.keep_last=1"};
  ASSERT_EQ(llmtrain(0, "full", sets).status, 0) << read_bytes(dir / "full.out");

  // The crashed run prepares its own shards (killed in the middle of that too).
  std::vector<std::string> crash_sets = sets;
  crash_sets.push_back("data.out_dir=" + (dir / "shards2").string());
  const std::vector<std::string> slow = {"LLM_TEST_STEP_DELAY_MS=40", "LLM_TEST_CHECKPOINT_DELAY_MS=60"};
  std::mt19937 rng(std::random_device{}());
  int kills = 0, in_prepare = 0, in_checkpoint = 0;
  bool had_checkpoint = false;
  for (int round = 0; kills < 12 && round < 40; ++round) {
    const pid_t pid = spawn(llmtrain_command(0, "crash", crash_sets, slow, "--resume"));
    // Rotate the moment: while shards are being prepared, while a checkpoint is under its
    // temporary name, or after a random delay.
    bool hit = false;
    const int mode = round % 3;
    if (mode == 0 && !std::filesystem::exists(dir / "shards2/manifest.json")) {
      hit = wait_until(
          pid, [&] { return has_entry(dir.path(), "shards2.tmp."); }, 30);
      in_prepare += hit;
    } else if (mode == 1) {
      hit = wait_until(
          pid,
          [&] {
            std::error_code ec;
            for (const auto& e : std::filesystem::directory_iterator(dir / "crash", ec)) {
              const std::string n = e.path().filename().string();
              if (n.starts_with(".step_") && n.ends_with(".tmp")) return true;
            }
            return false;
          },
          30);
      if (hit) std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<>(0, 60)(rng)));
      in_checkpoint += hit;
    } else {
      const int ms = std::uniform_int_distribution<>(50, 600)(rng);
      hit = !wait_until(
          pid, [] { return false; }, ms / 1000.0);  // false: it ended by itself first
    }
    if (!hit) {  // the run finished (or failed) before the moment came
      const int st = wait_for(pid);
      ASSERT_TRUE(st == 0 || st == -SIGKILL) << "round " << round << ": status " << st << "\n"
                                             << read_bytes(dir / "crash.out");
      if (latest_checkpoint(dir / "crash") && read_trainer_state(*latest_checkpoint(dir / "crash"))["step"] == 60)
        break;
      continue;
    }
    ::kill(pid, SIGKILL);
    EXPECT_EQ(wait_for(pid), -SIGKILL);
    ++kills;
    // After every kill: the newest checkpoint, if any, is whole; once there was one, there is one.
    const auto ck = latest_checkpoint(dir / "crash");
    if (had_checkpoint) {
      EXPECT_TRUE(ck) << "round " << round << ": keep_last removed the only good checkpoint";
    }
    if (ck) {
      had_checkpoint = true;
      EXPECT_NO_THROW(verify_checksums(*ck)) << *ck;
      if (read_trainer_state(*ck)["step"] == 60) break;
    }
  }
  std::cerr << "kills " << kills << " (in preparation " << in_prepare << ", in checkpoint writes " << in_checkpoint
            << ")\n";
  EXPECT_GE(kills, 10);
  EXPECT_GE(in_checkpoint, 1);
  // Leftovers no save of this run would overwrite (a kill in another run's save): the start cleans them.
  std::filesystem::create_directories(dir / "crash/.step_00000099.tmp");
  std::filesystem::create_directories(dir / "crash/.step_00000001.deleting");
  write_bytes(dir / "crash/loss.svg.tmp.12345", "x");
  // The last run goes to the end.
  const auto last = llmtrain(0, "crash", crash_sets, {}, "--resume");
  ASSERT_EQ(last.status, 0) << last.output;
  expect_same_checkpoint(dir / "crash/step_00000060", dir / "full/step_00000060");
  EXPECT_TRUE(stale_entries(dir / "crash").empty()) << ::testing::PrintToString(stale_entries(dir / "crash"));
  EXPECT_FALSE(has_entry(dir.path(), "shards2.tmp.")) << "a stale shard staging directory";
}

}  // namespace llm::test
