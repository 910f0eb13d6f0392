// DeepSpeed fields pasted into a config: each becomes the key docs/from-deepspeed.md names, or is
// ignored with a note, or is refused with an error naming it. Values are drawn fresh each run so a
// translation that fell back to a default could not pass.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "llm/config.h"
#include "llm/deepspeed_config.h"
#include "llm/error.h"
#include "test_util.h"

namespace llm::test {
namespace {

using nlohmann::json;

// The tiny config with DeepSpeed fields added at the top level, less the keys of ours that they
// set (a DeepSpeed field that disagrees with one of our keys in the same file is an error).
json tiny_with(const json& ds) {
  json root = json::parse(embedded_tiny_config());
  root.erase("optim");
  for (const char* k : {"precision", "grad_accum", "micro_batch", "steps", "log_every"}) root["train"].erase(k);
  for (const auto& [k, v] : ds.items()) root[k] = v;
  return root;
}

Config parse(const json& root, const std::vector<std::string>& sets = {}) {
  return parse_config(root.dump(), "ds.json", std::filesystem::current_path(), sets);
}

std::string error_of(const json& root) {
  try {
    parse(root);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(DeepSpeedConfig, FieldsBecomeOurKeysWithANoteEach) {
  auto g = rng();
  std::uniform_int_distribution<int> small(2, 9), power(8, 20), steps(500, 5000);
  std::uniform_real_distribution<double> unit(0.01, 0.99);
  const int accum = small(g), micro = small(g), warmup = small(g) * 10, total = steps(g), pw = power(g);
  const int window = small(g) * 100;
  const double lr = unit(g) * 1e-3, b1 = unit(g), b2 = unit(g), eps = unit(g) * 1e-6, wd = unit(g), clip = unit(g) * 3,
               min_ratio = unit(g) * 0.5;
  // The shape of HF Trainer's ZeRO-2 example (docs/from-deepspeed.md), with "auto" where it has one.
  const json ds = {
      {"fp16",
       {{"enabled", true},
        {"loss_scale", 0},
        {"loss_scale_window", window},
        {"initial_scale_power", pw},
        {"hysteresis", 2},
        {"min_loss_scale", 1}}},
      {"bf16", {{"enabled", false}}},
      {"zero_optimization",
       {{"stage", 2},
        {"overlap_comm", true},
        {"contiguous_gradients", true},
        {"reduce_bucket_size", 5e8},
        {"offload_optimizer", {{"device", "none"}}}}},
      {"optimizer",
       {{"type", "AdamW"}, {"params", {{"lr", lr}, {"betas", {b1, b2}}, {"eps", eps}, {"weight_decay", wd}}}}},
      {"scheduler",
       {{"type", "WarmupCosineLR"},
        {"params", {{"warmup_num_steps", warmup}, {"total_num_steps", total}, {"cos_min_ratio", min_ratio}}}}},
      {"gradient_accumulation_steps", accum},
      {"train_micro_batch_size_per_gpu", micro},
      {"gradient_clipping", clip},
      {"train_batch_size", "auto"},
      {"steps_per_print", 7},
      {"wall_clock_breakdown", false}};
  const Config c = parse(tiny_with(ds));
  EXPECT_EQ(c.train.precision, Precision::FP16);
  EXPECT_EQ(c.train.loss_scale_init, double(1 << pw));
  EXPECT_EQ(c.train.loss_scale_growth_interval, window);
  EXPECT_EQ(c.dist.zero, 2);
  EXPECT_DOUBLE_EQ(c.dist.bucket_mb, 5e8 * 4 / (1024.0 * 1024.0));
  EXPECT_EQ(c.train.grad_accum, accum);
  EXPECT_EQ(c.train.micro_batch, micro);
  EXPECT_EQ(c.train.steps, total);
  EXPECT_EQ(c.train.log_every, 7);
  EXPECT_DOUBLE_EQ(c.optim.lr, lr);
  EXPECT_DOUBLE_EQ(c.optim.beta1, b1);
  EXPECT_DOUBLE_EQ(c.optim.beta2, b2);
  EXPECT_DOUBLE_EQ(c.optim.eps, eps);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, wd);
  EXPECT_DOUBLE_EQ(c.optim.grad_clip, clip);
  EXPECT_DOUBLE_EQ(c.optim.min_lr_ratio, min_ratio);
  EXPECT_EQ(c.optim.warmup_steps, warmup);
  EXPECT_EQ(c.optim.schedule, LrSchedule::Cosine);
  // One note per leaf field, each naming it; the effective config holds our keys only.
  for (const char* field :
       {"fp16.enabled", "fp16.loss_scale", "fp16.hysteresis", "fp16.min_loss_scale", "bf16.enabled",
        "zero_optimization.stage", "zero_optimization.overlap_comm", "zero_optimization.offload_optimizer",
        "optimizer.type", "optimizer.params.betas[1]", "scheduler.params.cos_min_ratio", "train_batch_size",
        "wall_clock_breakdown", "gradient_clipping"}) {
    EXPECT_EQ(std::count_if(c.notes.begin(), c.notes.end(),
                            [&](const std::string& n) {
                              return n.rfind(std::string(field) + " ", 0) == 0 ||
                                     n.rfind(std::string(field) + ":", 0) == 0;
                            }),
              1)
        << field;
  }
  EXPECT_FALSE(c.effective.contains("fp16"));
  EXPECT_EQ(c.effective["train"]["grad_accum"], accum);
}

TEST(DeepSpeedConfig, SetOverridesATranslatedField) {
  const Config c = parse(tiny_with({{"gradient_accumulation_steps", 8}}), {"train.grad_accum=3"});
  EXPECT_EQ(c.train.grad_accum, 3);
}

TEST(DeepSpeedConfig, FieldsWithoutAnEquivalentAreErrorsNamingThem) {
  const std::vector<std::pair<json, std::string>> cases = {
      {{{"zero_optimization", {{"stage", 3}}}}, "ds.json: zero_optimization.stage = 3: ZeRO-3"},
      {{{"optimizer", {{"type", "Lamb"}, {"params", {{"lr", 1e-3}}}}}}, "ds.json: optimizer.type = \"Lamb\""},
      {{{"optimizer", {{"type", "Adam"}, {"params", {{"adam_w_mode", false}}}}}}, "optimizer.params.adam_w_mode"},
      {{{"scheduler", {{"type", "WarmupDecayLR"}, {"params", {{"warmup_num_steps", 10}}}}}},
       "scheduler.type = \"WarmupDecayLR\""},
      {{{"scheduler", {{"type", "WarmupLR"}, {"params", {{"warmup_min_lr", 1e-5}}}}}},
       "scheduler.params.warmup_min_lr"},
      {{{"fp16", {{"enabled", true}}}, {"bf16", {{"enabled", true}}}}, "disagrees with bf16.enabled"},
      {{{"fp16", {{"enabled", true}, {"made_up", 1}}}}, "fp16.made_up: not a DeepSpeed fp16 field"},
      {{{"gradient_accumulation_steps", "eight"}}, "gradient_accumulation_steps: expected a number"},
  };
  for (const auto& [ds, want] : cases) {
    const std::string err = error_of(tiny_with(ds));
    EXPECT_NE(err.find(want), std::string::npos) << ds.dump() << "\n  error: " << err;
  }
  // Against a key of ours in the same file.
  json root = tiny_with({{"train_micro_batch_size_per_gpu", 5}});
  root["train"]["micro_batch"] = 6;
  EXPECT_NE(error_of(root).find("train_micro_batch_size_per_gpu = 5 disagrees with train.micro_batch = 6"),
            std::string::npos)
      << error_of(root);
  // A field neither ours nor DeepSpeed's is still an unknown key.
  EXPECT_NE(error_of(tiny_with({{"made_up_field", 1}})).find("made_up_field: unknown key"), std::string::npos);
}

TEST(DeepSpeedConfig, LlmtrainPrintsTheNotes) {
  const auto dir = std::filesystem::temp_directory_path() / ("ds_config_test." + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "ds.json") << tiny_with({{"gradient_accumulation_steps", 4}, {"tensorboard", {}}}).dump(); }
  const std::string cmd = std::string(LLM_TOOLS_DIR) + "/llmtrain --config " + (dir / "ds.json").string() +
                          " --dry-run > /dev/null 2> " + (dir / "err.txt").string();
  const int st = std::system(cmd.c_str());
  std::ifstream in(dir / "err.txt");
  const std::string err((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << err;
  EXPECT_NE(err.find("config: deepspeed gradient_accumulation_steps = 4 -> train.grad_accum"), std::string::npos)
      << err;
  EXPECT_NE(err.find("config: deepspeed tensorboard: ignored"), std::string::npos) << err;
}

}  // namespace
}  // namespace llm::test
