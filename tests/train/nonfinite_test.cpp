// llmtrain's diagnosis of a forward that is not finite: the first non-finite loss is followed by a
// re-run of that micro-batch's forward checking each tensor, and the warning and the error of a
// run stopped by too many skipped steps name the layer and tensor where it broke.
#include <sstream>

#include "llm/error.h"
#include "llm/hf_weights.h"
#include "llm/trainer.h"
#include "model/model_test_util.h"
#include "train/train_fixture.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

// The fixture's model with random weights, layer 1's gate and up projections scaled so that
// silu(gate) * up passes f16's 65504 (what stays in the compute dtype under fp16): finite in fp32,
// inf in f16 from layer 1's SwiGLU on.
TEST_F(TrainFixture, NamesTheLayerAndTensorOfAnFp16ForwardOverflow) {
  const ModelConfig cfg = config().model.arch;
  const ParamTable table(cfg);
  std::mt19937_64 g = rng();
  std::vector<float> w = random_weights(g, table);
  for (const char* name : {"model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight"}) {
    const ParamInfo& p = table.at(name);
    for (int64_t i = 0; i < p.numel; ++i) w[size_t(p.offset + i)] *= 3000.0f;
  }
  const fs::path hot = dir / "hot";
  fs::create_directories(hot);
  write_model_safetensors(hot / "model.safetensors", table, w, DType::F32);
  write_hf_config(hot / "config.json", cfg, DType::F32);

  std::ostringstream log;
  TrainOptions o;
  o.log = &log;
  const Config c = config({"model.init_from=" + hot.string(), "train.precision=fp16", "train.max_skipped_steps=2",
                           "train.steps=4", "train.eval_every=0"});
  try {
    train(c, o);
    FAIL() << "an fp16 forward that overflows must stop training";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("training stopped"), std::string::npos) << msg;
    EXPECT_NE(msg.find("At the first non-finite loss, the first non-finite forward value is at layer 1 "
                       "(model.layers.1) mlp silu(gate) * up"),
              std::string::npos)
        << msg;
  }
  const std::string said = log.str();
  EXPECT_NE(said.find("warning: step 1: the loss is not finite (rank 0, micro-batch 0): the first non-finite forward "
                      "value is at layer 1 (model.layers.1) mlp silu(gate) * up"),
            std::string::npos)
      << said;
  EXPECT_NE(said.find("f16 overflows beyond 65504"), std::string::npos) << said;

  // The same weights in fp32 train on: finite losses, no warning.
  std::ostringstream log32;
  o.log = &log32;
  const TrainResult r =
      train(config({"model.init_from=" + hot.string(), "train.precision=fp32", "train.steps=1", "train.eval_every=0"},
                   "run32"),
            o);
  EXPECT_TRUE(std::isfinite(r.last_loss));
  EXPECT_EQ(log32.str().find("not finite"), std::string::npos) << log32.str();
}

}  // namespace
}  // namespace llm::test
