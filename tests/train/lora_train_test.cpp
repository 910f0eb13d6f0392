// LoRA runs of the trainer: the frozen base stays bitwise, an interrupted run resumes bitwise
// (adapters, moments, loader cursor), checkpoints are PEFT adapter directories, bad settings.
#include <cstring>
#include <fstream>
#include <sstream>

#include "backend/cpu/cpu_backend.h"
#include "llm/checkpoint.h"
#include "llm/error.h"
#include "llm/lora.h"
#include "llm/trainer.h"
#include "train/train_fixture.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

const char* kLora =
    R"(train.lora={"rank": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]})";

TrainResult run(const Config& c, bool resume = false, int64_t stop_at = -1, TrainHooks hooks = {}) {
  std::ostringstream log;
  TrainOptions o;
  o.resume = resume;
  o.stop_at = stop_at;
  o.log = &log;
  o.hooks = std::move(hooks);
  return train(c, o);
}

// A CPU tensor's values as fp32.
std::vector<float> host(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::F32) {
    std::memcpy(out.data(), t.data(), out.size() * 4);
    return out;
  }
  std::vector<uint16_t> half(out.size());
  std::memcpy(half.data(), t.data(), half.size() * 2);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = t.dtype() == DType::BF16 ? bf16_bits_to_f32(half[i]) : f16_bits_to_f32(half[i]);
  return out;
}

class LoraResume : public TrainFixture, public ::testing::WithParamInterface<const char*> {};

TEST_P(LoraResume, StopAndResumeIsBitwiseIdenticalToOneRun) {
  const std::string prec = std::string("train.precision=") + GetParam();
  const Config once = config({prec, kLora}, "once");
  const Config split = config({prec, kLora}, "split");
  // The base never changes: every step's weights equal the first step's, bitwise.
  std::vector<float> base0;
  int64_t checked = 0;
  TrainHooks h;
  h.after_step = [&](int64_t, const Qwen2Model& m, Communicator&) {
    const auto w = host(m.weights());
    if (base0.empty()) base0 = w;
    EXPECT_TRUE(w == base0);
    ++checked;
    return nlohmann::json();
  };
  run(once, false, -1, h);
  EXPECT_EQ(checked, 8);
  run(split, false, 4);
  ASSERT_TRUE(fs::exists(split.io.run_dir / "step_00000004" / "adapter_config.json"));
  run(split, true);

  const auto a = losses(once.io.run_dir), b = losses(split.io.run_dir);
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "loss of step " << i + 1;
  EXPECT_LT(a.back(), a.front());  // the adapters learn
  const fs::path fa = once.io.run_dir / "step_00000008", fb = split.io.run_dir / "step_00000008";
  for (const char* t : {"master", "m", "v"}) {
    EXPECT_TRUE(tensor_bytes(fa / "optimizer.rank00000.safetensors", t) ==
                tensor_bytes(fb / "optimizer.rank00000.safetensors", t))
        << t << " differs";
  }
  const std::string name = "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight";
  EXPECT_TRUE(tensor_bytes(fa / "adapter_model.safetensors", name) ==
              tensor_bytes(fb / "adapter_model.safetensors", name));
  EXPECT_EQ(read_trainer_state(fa)["data_cursor"], read_trainer_state(fb)["data_cursor"]);
  // Only the adapter is saved: no copy of the frozen base.
  EXPECT_FALSE(fs::exists(fa / "model.safetensors"));
  // The optimizer state covers the adapters alone.
  const LoraTable lt(once.model.arch, once.train.lora);
  const SafetensorsReader opt(fa / "optimizer.rank00000.safetensors");
  EXPECT_EQ(opt.at("m").shape, (std::vector<int64_t>{lt.flat_size()}));
  // The saved adapter is the trained one: B moved away from its zero start.
  const PeftAdapter ad = read_peft_adapter(fa, once.model.arch);
  double bsum = 0;
  for (const auto& x : lt.adapters())
    for (int64_t i = 0; i < x.out * 4; ++i) bsum += std::abs(ad.flat[size_t(x.b_offset + i)]);
  EXPECT_GT(bsum, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Precisions, LoraResume, ::testing::Values("fp32", "bf16"));

TEST_F(TrainFixture, LoraUnknownTargetNamesTheKeyAndTheChoices) {
  try {
    config({R"(train.lora={"rank": 4, "target_modules": ["q_proj", "c_attn"]})"});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("train.lora.target_modules[1]: \"c_attn\""), std::string::npos) << m;
    EXPECT_NE(m.find("gate_proj"), std::string::npos) << m;
  }
  try {
    config({R"(train.lora={"rank": 4, "targets": ["q_proj"]})"});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.lora.targets"), std::string::npos) << e.what();
  }
}

TEST_F(TrainFixture, LoraCheckpointResumedWithoutLoraSaysSo) {
  const Config lora = config({kLora, "train.steps=2", "train.eval_every=0"}, "mixed");
  run(lora);
  try {
    run(config({"train.steps=4", "train.eval_every=0"}, "mixed"), true);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LoRA run's, this run has no train.lora"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llm::test
