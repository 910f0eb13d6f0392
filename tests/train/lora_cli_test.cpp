// LoRA from the command line: --dry-run's plan on the 0.5B shape, a LoRA run on a base trained
// by llmtrain, merge-lora and export --lora, llmgen --lora, and their errors.
#include <sys/wait.h>

#include "backend/cpu/cpu_backend.h"
#include "llm/inference.h"
#include "llm/lora.h"
#include "train/train_fixture.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

struct Out {
  int status;
  std::string out, err;
};

Out tool(const std::string& name, const std::string& args, const fs::path& dir) {
  const std::string cmd =
      cat(LLM_TOOLS_DIR, "/", name, " ", args, " > ", (dir / "out.txt").string(), " 2> ", (dir / "err.txt").string());
  const int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_bytes(dir / "out.txt"), read_bytes(dir / "err.txt")};
}

const char* kAll =
    R"('train.lora={"rank": 16, "alpha": 32, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}')";

TEST_F(TrainFixture, DryRunShowsTheLoraPlanOnThe05bShapeForAT4) {
  const Out r = tool("llmtrain",
                     cat("--dry-run --config ", LLM_SOURCE_DIR, "/configs/qwen05b.json --set ", kAll,
                         " --set train.precision=fp16 --set train.seq_len=2048 --set dist.zero=0 --device cuda"),
                     dir.path());
  ASSERT_EQ(r.status, 0) << r.err;
  // PEFT reports 8,798,208 trainable parameters for Qwen2.5-0.5B with r 16 on all seven modules.
  EXPECT_NE(r.out.find("LoRA adapters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("8798208 in f16, r 16, 168 adapters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("frozen base parameters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fits a 16 GB card: yes"), std::string::npos) << r.out;
  // Gradients and moments are the adapters' alone: 8.8M x 4 bytes, not 494M.
  EXPECT_NE(r.out.find("gradients                          0.033 GiB"), std::string::npos) << r.out;
}

TEST_F(TrainFixture, LoraOnALlmtrainBaseThenMergeAndGenerate) {
  // A base trained by llmtrain, then LoRA on it (init_from the base run).
  const fs::path base = dir / "base", lora = dir / "lora_run";
  write_bytes(dir / "c.json", config_json());
  Out r =
      tool("llmtrain",
           cat("--config ", dir / "c.json", " --set train.steps=3 --set train.eval_every=0 --set io.run_dir=", base),
           dir.path());
  ASSERT_EQ(r.status, 0) << r.err;
  r = tool("llmtrain",
           cat("--config ", dir / "c.json", " --set train.steps=3 --set train.eval_every=0 --set io.run_dir=", lora,
               " --set model.init_from=", base, " --set optim.lr=0.05 --set ", kAll),
           dir.path());
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("lora: "), std::string::npos) << r.err;
  ASSERT_TRUE(fs::exists(lora / "latest" / "adapter_model.safetensors"));

  // merge-lora: an HF directory whose logits are base + adapter's (fp32, 1e-5).
  r = tool("llmtrain", cat("merge-lora --model ", base, " --lora ", lora, " --out ", dir / "merged"), dir.path());
  ASSERT_EQ(r.status, 0) << r.err;
  CpuBackend cpu(2);
  InferenceOptions io;
  io.context = 32;
  const auto merged = InferenceModel::load(dir / "merged", cpu, io);
  const auto plain = InferenceModel::load(base, cpu, io);
  io.lora = lora;
  const auto adapted = InferenceModel::load(base, cpu, io);
  const std::vector<int32_t> ids = {5, 17, 300, 42, 9, 11, 200, 3};
  const auto a = adapted->forward_all(ids), m = merged->forward_all(ids), p = plain->forward_all(ids);
  EXPECT_LE(max_rel_err(m, a, 1.0).err, 1e-5);
  EXPECT_GT(max_rel_err(p, a, 1.0).err, 1e-3);  // the adapter did something

  // llmgen --lora generates; export --lora needs --merge-lora and writes the merged GGUF.
  r = tool("llmgen", cat("--model ", base, " --lora ", lora, " --prompt hello --max-tokens 4 --temp 0"), dir.path());
  EXPECT_EQ(r.status, 0) << r.err;
  r = tool("llmgen", cat("--model ", base, " --lora ", dir / "nothing", " --prompt hello"), dir.path());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("no adapter_config.json"), std::string::npos) << r.err;
  r = tool("llmtrain", cat("export --model ", base, " --lora ", lora, " --out ", dir / "m.gguf"), dir.path());
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("--merge-lora"), std::string::npos) << r.err;
  r = tool("llmtrain",
           cat("export --model ", base, " --lora ", lora, " --merge-lora --type f32 --out ", dir / "m.gguf"),
           dir.path());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir / "m.gguf"));
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".merged."), std::string::npos) << "left over: " << e.path();
}

}  // namespace
}  // namespace llm::test
