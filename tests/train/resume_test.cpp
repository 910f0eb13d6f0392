// Resuming and continuing: trainer_state.json in the format existing checkpoints have, a resume
// in another precision, model.init_from with a run directory.
#include <sstream>

#include "llm/checkpoint.h"
#include "llm/error.h"
#include "llm/trainer.h"
#include "train/train_fixture.h"
#include "train/trainer_state.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

TrainResult run(const Config& c, bool resume = false, int64_t stop_at = -1, std::ostringstream* log = nullptr) {
  std::ostringstream own;
  TrainOptions o;
  o.resume = resume;
  o.stop_at = stop_at;
  o.log = log ? log : &own;
  return train(c, o);
}

// trainer_state.json as checkpoints of format 1 hold it.
const char* kStateV1 = R"({
  "adam_steps": 3,
  "compute_dtype": "f16",
  "config": {"train": {"steps": 8}},
  "data_cursor": {"epoch": 0, "sample": 48, "samples_per_epoch": 1000, "seed": 1234, "seq_len": 32},
  "elapsed_s": 12.5,
  "first_val_loss": 6.25,
  "format": 1,
  "loss_scaler": {"clean_run": 1, "consecutive_skipped": 0, "dynamic": true, "scale": 32768.0, "skipped_total": 1},
  "rng": {"data_order_seed": 1234, "init_seed": 7},
  "seed": 7,
  "step": 4,
  "tokens_seen": 4096,
  "world_size": 2
})";

TEST(TrainerState, ReadsAndWritesTheCheckpointFormat) {
  const nlohmann::json file = nlohmann::json::parse(kStateV1);
  const TrainerState s = TrainerState::from_json(file, "trainer_state.json");
  EXPECT_EQ(s.step, 4);
  EXPECT_EQ(s.adam_steps, 3);
  EXPECT_EQ(s.tokens_seen, 4096u);
  EXPECT_EQ(s.elapsed_s, 12.5);
  ASSERT_TRUE(s.first_val_loss);
  EXPECT_EQ(*s.first_val_loss, 6.25);
  EXPECT_EQ(s.compute_dtype, "f16");
  EXPECT_EQ(s.data_cursor.sample, 48u);
  EXPECT_EQ(s.data_cursor.seed, 1234u);
  EXPECT_EQ(s.loss_scaler["scale"], 32768.0);
  EXPECT_EQ(s.seed, 7u);
  EXPECT_EQ(s.data_order_seed, 1234u);
  EXPECT_EQ(s.world_size, 2);
  nlohmann::json back = s.to_json();
  back["format"] = kCheckpointFormat;  // save_checkpoint adds it
  EXPECT_EQ(back, file) << back.dump(2);
  // Only what a resume needs is required; a missing key is named with the file.
  nlohmann::json lacking = file;
  lacking.erase("adam_steps");
  try {
    TrainerState::from_json(lacking, "x/trainer_state.json");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x/trainer_state.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("adam_steps"), std::string::npos) << e.what();
  }
}

TEST_F(TrainFixture, TrainerStateOfARunReadsBackAsItWasWritten) {
  const Config c = config({"train.steps=2", "train.eval_every=1"});
  run(c);
  const nlohmann::json file = read_trainer_state(c.io.run_dir / "step_00000002");
  nlohmann::json back = TrainerState::from_json(file, "trainer_state.json").to_json();
  back["format"] = kCheckpointFormat;
  EXPECT_EQ(back, file);
}

TEST_F(TrainFixture, ResumeInAnotherPrecisionSaysWhatToPass) {
  // A bf16 run resumed where precision auto picks another dtype (fp32 on the CPU, as bf16 on a
  // GPU would meet an fp16 checkpoint): the error names the setting that resumes it.
  const Config bf16 = config({"train.precision=bf16", "train.steps=4", "train.eval_every=0"});
  run(bf16, false, 2);
  const Config automatic = config({"train.precision=auto", "train.steps=4", "train.eval_every=0"});
  try {
    run(automatic, true);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("step_00000002/trainer_state.json: the checkpoint was trained in bf16, this run uses f32 "
                     "(train.precision auto on "),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("pass --set train.precision=bf16"), std::string::npos) << m;
  }
  // With that setting it resumes.
  std::ostringstream log;
  const TrainResult r = run(bf16, true, -1, &log);
  EXPECT_EQ(r.steps_done, 4);
  EXPECT_NE(log.str().find("resume: "), std::string::npos) << log.str();
}

TEST_F(TrainFixture, InitFromARunDirectoryTakesItsNewestCheckpoint) {
  const Config src = config({"train.steps=3", "train.eval_every=0", "io.save_every=1"}, "src");
  run(src);
  ASSERT_TRUE(fs::exists(src.io.run_dir / "step_00000002"));
  const fs::path newest = src.io.run_dir / "step_00000003";
  const Config from_run =
      config({"train.steps=1", "train.eval_every=0", "model.init_from=" + src.io.run_dir.string()}, "from_run");
  ASSERT_TRUE(from_run.model.init_from);
  EXPECT_EQ(*from_run.model.init_from, newest);
  const Config from_ckpt =
      config({"train.steps=1", "train.eval_every=0", "model.init_from=" + newest.string()}, "from_ckpt");
  std::ostringstream log;
  const TrainResult a = run(from_run, false, -1, &log);
  EXPECT_NE(log.str().find("init: weights from " + newest.string()), std::string::npos) << log.str();
  const TrainResult b = run(from_ckpt);
  EXPECT_EQ(a.last_loss, b.last_loss);
  // A directory with neither config.json nor a checkpoint is named.
  fs::create_directories(dir / "empty");
  try {
    config({"model.init_from=" + (dir / "empty").string()}, "x");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("model.init_from: " + (dir / "empty" / "config.json").string() + " does not exist"),
        std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace llm::test
