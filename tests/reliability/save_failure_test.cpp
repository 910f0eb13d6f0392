// A disk that fills up under a running job: from step 5 no file may grow beyond 200 kB (the
// hooked llmtrain's RLIMIT_FSIZE, so write(2) itself fails, EFBIG where a full disk gives ENOSPC).
// The step-6 checkpoint fails: with io.on_save_error "stop" the run exits 74 naming the file, the
// step-4 checkpoint intact and nothing half-written left; with "retry" it trains on and the
// step-8 checkpoint (the limit lifted at step 7) is written. Either way the run ends bitwise
// where an uninterrupted one does. Preparing shards on a full disk fails as cleanly.
#include "reliability/reliability_fixture.h"

namespace llm::test {

namespace {
const std::vector<std::string> kSets = {"train.steps=8", "train.eval_every=0", "io.save_every=2"};
}

TEST_F(ReliabilityFixture, CheckpointWriteFailureStopsWithStatus74AndThePreviousCheckpointIntact) {
  ASSERT_EQ(llmtrain(0, "full", kSets).status, 0) << read_bytes(dir / "full.out");
  const auto r = llmtrain(0, "full_disk", kSets, {"LLM_TEST_FILE_LIMIT=5:200000:0"});
  EXPECT_EQ(r.status, kExitSaveFailed) << r.output;
  EXPECT_NE(r.output.find("checkpoint of step 6: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("optimizer.rank00000.safetensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("File too large"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("the last good checkpoint is " + (dir / "full_disk/step_00000004").string()),
            std::string::npos)
      << r.output;
  const auto ck = latest_checkpoint(dir / "full_disk");
  ASSERT_TRUE(ck);
  EXPECT_EQ(ck->filename(), "step_00000004");
  EXPECT_TRUE(verify_checksums(*ck));
  EXPECT_TRUE(stale_entries(dir / "full_disk").empty()) << ::testing::PrintToString(stale_entries(dir / "full_disk"));
  // Space freed: resuming finishes the run as if nothing happened.
  const auto resumed = llmtrain(0, "full_disk", kSets, {}, "--resume");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  expect_same_checkpoint(dir / "full_disk/step_00000008", dir / "full/step_00000008");
}

TEST_F(ReliabilityFixture, CheckpointWriteFailureWithRetryTrainsOnAndSavesWhenTheDiskHasRoom) {
  ASSERT_EQ(llmtrain(0, "full", kSets).status, 0) << read_bytes(dir / "full.out");
  std::vector<std::string> sets = kSets;
  sets.push_back("io.on_save_error=retry");
  const auto r = llmtrain(0, "retry", sets, {"LLM_TEST_FILE_LIMIT=5:200000:7"});
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("warning: checkpoint of step 6: "), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "retry/step_00000006"));
  expect_same_checkpoint(dir / "retry/step_00000008", dir / "full/step_00000008");
  EXPECT_TRUE(stale_entries(dir / "retry").empty());
}

TEST_F(ReliabilityFixture, PreparingShardsOnAFullDiskFailsNamingTheFileAndLeavesNothing) {
  // The tokenizer first (it is small), then shards on a "disk" that holds 16 kB per file.
  ASSERT_EQ(llmtrain(0, "full", {"train.steps=1"}).status, 0) << read_bytes(dir / "full.out");
  const std::string cmd =
      cat("ulimit -f 32; trap '' XFSZ; ", LLM_TOOLS_DIR, "/llmtrain prepare --config ",
          shell_quote((dir / "c.json").string()), " --set data.out_dir=", shell_quote((dir / "small").string()), " > ",
          shell_quote((dir / "p.out").string()), " 2>&1");
  const int st = std::system(("sh -c " + shell_quote(cmd)).c_str());
  const std::string out = read_bytes(dir / "p.out");
  EXPECT_EQ(WEXITSTATUS(st), 1) << out;
  EXPECT_NE(out.find(".tok"), std::string::npos) << out;
  EXPECT_NE(out.find("write failed"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir / "small"));
  EXPECT_FALSE(has_entry(dir.path(), "small.tmp.")) << "a stale staging directory";
}

}  // namespace llm::test
