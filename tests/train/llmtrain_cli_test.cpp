// llmtrain as a user runs it: bad configs give one clear error and a non-zero exit; a kill -9
// during a checkpoint write leaves the previous checkpoint intact and --resume continues.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "llm/checkpoint.h"
#include "llm/hf_weights.h"
#include "train/train_fixture.h"
#if defined(LLM_HAVE_CUDA)
#include "backend/cuda/cuda_factory.h"
#endif

namespace llm::test {
namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string err;
};

Result llmtrain(const std::string& args, const fs::path& err_file) {
  const std::string cmd = cat(LLM_TOOLS_DIR, "/llmtrain ", args, " > /dev/null 2> ", err_file.string());
  const int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_bytes(err_file)};
}

class LlmtrainCli : public TrainFixture {
 protected:
  // Writes the fixture config with `edit` applied to its JSON and runs llmtrain on it.
  Result run_with(const std::function<void(nlohmann::json&)>& edit, const std::string& extra = "") {
    auto j = nlohmann::json::parse(config_json());
    edit(j);
    write_bytes(dir / "c.json", j.dump());
    return llmtrain(cat("--config ", (dir / "c.json").string(), " ", extra), dir / "err.txt");
  }
  void expect_error(const Result& r, const std::string& text) {
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
    // One error line (progress lines of a preparation may come before it).
    size_t errors = 0;
    for (size_t at = r.err.find("error"); at != std::string::npos; at = r.err.find("error", at + 1)) ++errors;
    EXPECT_EQ(errors, 1u) << r.err;
    EXPECT_NE(r.err.find("llmtrain: error: "), std::string::npos) << r.err;
  }
};

TEST_F(LlmtrainCli, UnknownKeyIsNamedWithTheValidOnes) {
  const Result r = run_with([](auto& j) { j["train"]["stepz"] = 3; });
  expect_error(r, "train.stepz: unknown key; valid keys in train:");
  EXPECT_NE(r.err.find("steps"), std::string::npos);
}

TEST_F(LlmtrainCli, WrongTypeIsNamed) {
  expect_error(run_with([](auto& j) { j["optim"]["lr"] = "fast"; }), "optim.lr: expected a number, got \"fast\"");
}

TEST_F(LlmtrainCli, MissingDataIsNamed) {
  expect_error(run_with([&](auto& j) { j["data"]["inputs"][0]["path"] = (dir / "nowhere.txt").string(); }),
               "nowhere.txt");
}

TEST_F(LlmtrainCli, SeqLenBeyondPositionsIsRefused) {
  expect_error(run_with([](auto& j) { j["train"]["seq_len"] = 256; }),
               "train.seq_len: 256 exceeds model.max_position_embeddings (128)");
}

TEST_F(LlmtrainCli, OverrideOfAnUnknownSectionIsNamed) {
  expect_error(run_with([](auto&) {}, "--set trian.steps=3"), "trian: unknown key");
}

TEST_F(LlmtrainCli, HfDirectoryWithMissingOrMisshapenTensor) {
  // A checkpoint, then two broken copies of it as init_from.
  ASSERT_EQ(run_with([](auto& j) {
              j["train"]["steps"] = 1;
              j["train"]["eval_every"] = 0;
            }).status,
            0);
  const fs::path ck = dir / "run" / "step_00000001";
  const ModelConfig cfg = read_hf_config(ck / "config.json");
  const ParamTable table(cfg);
  const auto w = read_model_weights(ck, table, cfg);
  fs::create_directories(dir / "hf_missing");
  fs::copy(ck / "config.json", dir / "hf_missing" / "config.json");
  {
    SafetensorsWriter sw;  // every tensor but one
    for (const auto& p : table.params()) {
      if (p.name != "model.layers.1.mlp.up_proj.weight") sw.add(p.name, DType::F32, p.shape, w.data() + p.offset);
    }
    sw.write(dir / "hf_missing" / "model.safetensors");
  }
  expect_error(run_with([&](auto& j) {
                 j["model"] = {{"init_from", (dir / "hf_missing").string()}};
               }),
               "tensor model.layers.1.mlp.up_proj.weight is missing");
  fs::create_directories(dir / "hf_shape");
  fs::copy(ck / "config.json", dir / "hf_shape" / "config.json");
  {
    SafetensorsWriter sw;
    for (const auto& p : table.params()) {
      auto shape = p.shape;
      if (p.name == "model.norm.weight") shape = {shape[0] / 2, 2};
      sw.add(p.name, DType::F32, shape, w.data() + p.offset);
    }
    sw.write(dir / "hf_shape" / "model.safetensors");
  }
  expect_error(run_with([&](auto& j) {
                 j["model"] = {{"init_from", (dir / "hf_shape").string()}};
               }),
               "model.norm.weight");
}

TEST_F(LlmtrainCli, KillDuringCheckpointWriteKeepsThePreviousOneAndResumes) {
  auto j = nlohmann::json::parse(config_json());
  j["train"]["steps"] = 4;
  j["train"]["eval_every"] = 0;
  j["io"]["save_every"] = 1;
  write_bytes(dir / "c.json", j.dump());
  const fs::path run_dir = dir / "run";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::setenv("LLM_TEST_CHECKPOINT_DELAY_MS", "1500", 1);
    // llmtrain with the tests' hooks (tests/tools/llmtrain_hooked.cpp): the delay before the rename.
    const std::string exe = cat(LLM_TEST_TOOLS_DIR, "/llmtrain_hooked");
    const std::string cfg = (dir / "c.json").string();
    ::freopen("/dev/null", "w", stderr);
    ::execl(exe.c_str(), exe.c_str(), "--config", cfg.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  // Wait until step 1 is committed and step 2 is being written, then kill -9.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool killed = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(run_dir / "step_00000001") && fs::exists(run_dir / ".step_00000002.tmp")) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ASSERT_TRUE(killed) << "never saw the second checkpoint being written";
  ASSERT_TRUE(WIFSIGNALED(st));
  EXPECT_FALSE(fs::exists(run_dir / "step_00000002"));
  const auto latest = latest_checkpoint(run_dir);
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->filename(), "step_00000001");
  EXPECT_EQ(read_trainer_state(*latest)["step"], 1);
  // --resume picks it up and finishes.
  const Result r = llmtrain(cat("--config ", (dir / "c.json").string(), " --resume"), dir / "err.txt");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("resume: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("step_00000001 (step 1)"), std::string::npos) << r.err;
  EXPECT_EQ(latest_checkpoint(run_dir)->filename(), "step_00000004");
}

}  // namespace
}  // namespace llm::test

namespace llm::test {
namespace {

TEST_F(LlmtrainCli, CudaBuildStartsWithoutADriverAndSaysItUsesTheCpu) {
#if !defined(LLM_HAVE_CUDA)
  GTEST_SKIP() << "this build has no CUDA backend (LLM_CUDA=OFF or no nvcc)";
#else
  if (std::string why; cuda::cuda_device_count(&why) > 0) GTEST_SKIP() << "a CUDA device is present";
  // This machine has no GPU and no driver: the binary must start (no libcuda dependency), say in
  // one line that it uses the CPU, and train; llmgen likewise generates from the result.
  const Result r = run_with([](auto& j) {
    j["train"]["device"] = "auto";
    j["train"]["steps"] = 2;
    j["train"]["eval_every"] = 0;
  });
  ASSERT_EQ(r.status, 0) << r.err;
  size_t lines = 0;
  for (size_t at = r.err.find("device: auto: no CUDA device"); at != std::string::npos;
       at = r.err.find("device: auto: no CUDA device", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << r.err;
  EXPECT_NE(r.err.find("using the CPU"), std::string::npos) << r.err;
  const std::string cmd = cat(LLM_TOOLS_DIR, "/llmgen --model ", (dir / "run").string(),
                              " --device auto --prompt hello --max-tokens 4 --temp 0 > ", (dir / "gen.txt").string(),
                              " 2> ", (dir / "gen_err.txt").string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_bytes(dir / "gen_err.txt");
  EXPECT_NE(read_bytes(dir / "gen_err.txt").find("using the CPU"), std::string::npos);
  EXPECT_FALSE(read_bytes(dir / "gen.txt").empty());
#endif
}

}  // namespace
}  // namespace llm::test
