// The planner (`llmtrain --dry-run --gpu`): its memory column against the arenas' high-water marks
// of real CPU training steps at a small shape, its roofline against bench/roofline.py, and its
// table for the 0.5B configs.
#include <fstream>
#include <regex>
#include <sstream>

#include "llm/memory_plan.h"
#include "llm/model.h"
#include "llm/planner.h"
#include "llm/trainer.h"
#include "train/train_fixture.h"

namespace llm::test {
namespace {

// The plan lines the arenas hold, by arena name (the logits chunk and op workspace are the
// backend's own scratch, outside the arenas).
std::map<std::string, size_t> planned_arenas(const MemoryPlan& plan) {
  std::map<std::string, size_t> out;
  for (const auto& l : plan.lines) {
    if (l.what == "parameters") out["weights"] += l.bytes;
    if (l.what == "gradients") out["grads"] += l.bytes;
    if (l.what.starts_with("optimizer")) out["optimizer"] += l.bytes;
    if (l.what == "activations") out["activations"] += l.bytes;
    if (l.what == "backward and scratch buffers") out["scratch"] += l.bytes;
    if (l.what == "ZeRO-2 gradient shard") out["zero2 gradients"] += l.bytes;
  }
  return out;
}

TEST_F(TrainFixture, PlannedMemoryIsTheArenasPeakInARealCpuStepWithin5Percent) {
  // A scaled-down shape (wider and longer than the fixture's so activations weigh), two steps of
  // two micro-batches, with evaluation: every arena reaches its peak.
  for (const char* prec : {"fp32", "bf16"}) {
    for (const char* rc : {"none", "selective", "full"}) {
      for (int zero : {0, 2}) {
        const std::string name = cat("plan_", prec, "_", rc, "_", zero);
        SCOPED_TRACE(name);
        const Config c = config(
            {cat("train.precision=", prec), cat("train.recompute=", rc), cat("dist.zero=", zero), "train.steps=2",
             "train.grad_accum=2", "train.micro_batch=3", "train.seq_len=48", "train.eval_every=2",
             "model.hidden_size=96", "model.intermediate_size=160", "model.num_hidden_layers=3"},
            name);
        std::ostringstream log;
        TrainOptions o;
        o.log = &log;
        const TrainResult r = train(c, o);
        ModelOptions mo;
        mo.compute_dtype = std::string(prec) == "fp32" ? DType::F32 : DType::BF16;
        mo.recompute = c.train.recompute;
        mo.max_batch = c.train.micro_batch;
        mo.max_seq = c.train.seq_len;
        PlanOptions po;
        po.zero = zero;
        const MemoryPlan plan = plan_training_memory(c.model.arch, mo, po);
        size_t planned = 0, measured = 0;
        for (const auto& [arena, bytes] : planned_arenas(plan)) {
          ASSERT_TRUE(r.arena_peak_bytes.count(arena)) << arena;
          const size_t peak = r.arena_peak_bytes.at(arena);
          EXPECT_NEAR(double(bytes), double(peak), 0.05 * double(peak)) << arena;
          planned += bytes;
          measured += peak;
        }
        size_t all_measured = 0;
        for (const auto& [arena, bytes] : r.arena_peak_bytes) all_measured += bytes;
        EXPECT_EQ(measured, all_measured) << "an arena the plan has no line for";
        EXPECT_NEAR(double(planned), double(measured), 0.05 * double(measured));
        std::printf("%s: planned %zu bytes in arenas, measured peak %zu (%+.2f%%)\n", name.c_str(), planned, measured,
                    100.0 * (double(planned) / double(measured) - 1));
        // The planner's CUDA column is the same plan with the CUDA workspaces.
        const Config cc = c;
        const MemoryPlan gpu = gpu_memory_plan(cc, mo.compute_dtype, mo.recompute, mo.max_batch, 1, zero);
        EXPECT_EQ(planned_arenas(gpu), planned_arenas(plan));
      }
    }
  }
}

Config qwen05b(const std::vector<std::string>& sets = {}) {
  return load_config(std::string(LLM_SOURCE_DIR) + "/configs/qwen05b.json", sets);
}

// ZeRO-2 at the half-billion shape: gradients per rank are the 1/W shard plus one bucket the size
// of the largest layer (the 136M-element embeddings go in row ranges, not as one bucket), so about
// 1/W of ZeRO-1's: 0.53 on 2 ranks, 0.36 on 3, 0.28 on 4. (tests/dist measures the arenas.)
TEST(Planner, ZeroTwoGradientsAreTheShardPlusOneLayer) {
  const Config cfg = qwen05b();
  const ModelConfig& arch = cfg.model.arch;
  const ParamTable table(arch);
  const GradBuckets b = grad_buckets(table, arch.num_hidden_layers);
  EXPECT_EQ(b.buffer, b.largest_layer);
  EXPECT_LT(b.vocab_rows, arch.vocab_size / 8);  // the embeddings in ten or so ranges
  ModelOptions mo;
  mo.training = true;
  mo.compute_dtype = DType::BF16;
  mo.max_batch = 1;
  mo.max_seq = 2048;
  auto grads = [&](int world, int zero) {
    size_t g = 0;
    for (const MemoryLine& l : plan_training_memory(arch, mo, PlanOptions{DeviceKind::CUDA, world, zero, 0}).lines) {
      if (l.what == "gradients" || l.what == "ZeRO-2 gradient shard") g += l.bytes;
    }
    return double(g);
  };
  for (int world : {2, 3, 4}) {
    const double ratio = grads(world, 2) / grads(world, 1);
    std::printf("ZeRO-2 gradients, %d ranks: %.3f of ZeRO-1's\n", world, ratio);
    EXPECT_LT(ratio, 1.0 / world + double(b.largest_layer) / double(table.flat_size()) + 1e-3) << world << " ranks";
  }
}

TEST(Roofline, AgreesWithBenchRooflinePy) {
  const Config cfg = qwen05b();
  for (const char* rc : {"none", "selective", "full"}) {
    for (int mb : {1, 3}) {
      const auto py =
          run_command(cat(LLM_PYTHON, " ", LLM_SOURCE_DIR, "/bench/roofline.py --json --config ", LLM_SOURCE_DIR,
                          "/configs/qwen05b.json --micro-batch ", mb, " --grad-accum 2 --recompute ", rc));
      ASSERT_EQ(py.status, 0) << py.output;
      const auto j = nlohmann::json::parse(py.output);
      for (const auto& [id, want] : j.items()) {
        StepShape s;
        s.micro_batch = mb;
        s.seq_len = cfg.train.seq_len;
        s.grad_accum = 2;
        s.dtype = id.starts_with("t4") || id.starts_with("v100") ? DType::F16 : DType::BF16;
        s.recompute = parse_recompute(rc, "test");
        const StepPrediction p = predict_step(cfg.model.arch, find_gpu(id, "test"), s);
        SCOPED_TRACE(cat(id, " recompute ", rc, " micro-batch ", mb));
        EXPECT_NEAR(p.seconds, want["step_s"].get<double>(), 1e-6 * p.seconds);
        EXPECT_NEAR(p.tokens_per_s, want["tokens_per_s"].get<double>(), 1e-6 * p.tokens_per_s);
        EXPECT_NEAR(p.mfu, want["mfu"].get<double>(), 1e-6);
      }
    }
  }
}

TEST(Roofline, V100RunsAttentionOnFp32AndT4IsPowerCapped) {
  const Config cfg = qwen05b();
  StepShape s;
  s.micro_batch = 2;
  s.seq_len = 2048;
  s.dtype = DType::F16;
  auto attention_s = [&](const char* gpu) {
    for (const auto& k : predict_step(cfg.model.arch, find_gpu(gpu, "test"), s).kernels) {
      if (k.name == "attention (fwd)") return k.seconds;
    }
    return 0.0;
  };
  // V100 has 2x T4's tensor peak but its attention runs on 15.7 TFLOP/s of FMA: slower than T4's.
  EXPECT_GT(attention_s("v100-16"), attention_s("t4"));
  EXPECT_FALSE(tensor_cores_for(find_gpu("v100-32", "test"), DType::BF16));
  EXPECT_TRUE(tensor_cores_for(find_gpu("A10", "test"), DType::BF16));
  expect_error([] { find_gpu("k80", "--gpu"); }, {"--gpu", "\"k80\"", "t4", "rtx4090"});
}

// The number of "recommended:" lines, and the T4's.
std::string plan_text(const Config& cfg, const std::string& gpu, int world) {
  std::ostringstream out;
  print_gpu_plans(cfg, gpu, world, out);
  return out.str();
}

TEST(Planner, TablesForTheHalfBillionConfigsOnEveryCard) {
  TempDir d;
  // configs/qwen05b-cpt.json continues from an HF directory: one with Qwen2.5-0.5B's config.json.
  nlohmann::json hf = nlohmann::json::parse(read_bytes(std::string(LLM_SOURCE_DIR) + "/configs/qwen05b.json"))["model"];
  std::filesystem::create_directories(d.path() / "hf");
  write_bytes(d.path() / "hf" / "config.json", hf.dump());
  const Config cpt = load_config(std::string(LLM_SOURCE_DIR) + "/configs/qwen05b-cpt.json",
                                 {"model.init_from=" + (d.path() / "hf").string()});
  for (const Config& cfg : {qwen05b(), cpt}) {
    const std::string text = plan_text(cfg, "all", 1);
    for (const GpuSpec& g : known_gpus()) EXPECT_NE(text.find("(--gpu " + g.id + ","), std::string::npos) << g.id;
    const std::regex rec(
        "recommended: (fp16|bf16), recompute (none|selective|full), micro_batch ([0-9]+), grad_accum ([0-9]+)");
    int n = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), rec); it != std::sregex_iterator(); ++it, ++n) {
      // micro_batch x grad_accum is the configured 4 x 8 sequences per step.
      EXPECT_EQ(std::stoi((*it)[3]) * std::stoi((*it)[4]), 32) << it->str();
    }
    EXPECT_EQ(n, int(known_gpus().size())) << text;
    // T4 and V100 plan fp16, the others bf16; every recommended setting fits its card.
    for (const GpuSpec& g : known_gpus()) {
      const GpuPlan p = plan_for_gpu(cfg, g, 1);
      ASSERT_TRUE(p.best) << g.id;
      EXPECT_EQ(p.best->dtype, g.sm >= 80 ? DType::BF16 : DType::F16) << g.id;
      EXPECT_LE(double(p.best->bytes), usable_gib(g) * 1024 * 1024 * 1024) << g.id;
      EXPECT_EQ(p.cells.size(), size_t(3 * kPlannerMaxMicroBatch));
      for (const PlanCell& c : p.cells) {
        EXPECT_EQ(c.bytes, gpu_memory_plan(cfg, c.dtype, c.recompute, c.micro_batch, 1, cfg.dist.zero).total());
      }
    }
  }
  // On a 16 GB card without recompute, micro-batch 4 does not fit (docs/cuda.md: 16.4 GiB).
  const GpuPlan t4 = plan_for_gpu(qwen05b(), find_gpu("t4", "test"), 1);
  for (const PlanCell& c : t4.cells) {
    if (c.recompute == Recompute::None && c.micro_batch == 4) {
      EXPECT_FALSE(c.fits);
    }
    if (c.recompute == Recompute::Full && c.micro_batch == 4) {
      EXPECT_TRUE(c.fits);
    }
  }
  // ZeRO over 2 ranks: less per rank than 1 rank; the table names each stage's figure.
  const std::string two = plan_text(qwen05b(), "t4", 2);
  EXPECT_NE(two.find("per rank at this setting by ZeRO stage: ZeRO-0"), std::string::npos) << two;
  const GpuPlan t4w2 = plan_for_gpu(qwen05b(), find_gpu("t4", "test"), 2);
  EXPECT_LT(t4w2.cells[0].bytes, t4.cells[0].bytes);
}

}  // namespace
}  // namespace llm::test
