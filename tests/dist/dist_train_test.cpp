// Data-parallel training under mpirun against single-rank runs of the same samples: plain data
// parallelism, ZeRO-1 and ZeRO-2, and resuming at another world size.
#include <set>
#include <sstream>

#include "dist/dist_fixture.h"
#include "llm/checkpoint.h"
#include "llm/optimizer.h"
#include "llm/trainer.h"

namespace llm::test {
namespace {

namespace fs = std::filesystem;

constexpr double kTol = 1e-6;  // fp32: only the order of the sums differs

// Per-step losses within kTol relative, and every rank held the same weights after every step.
void expect_same_steps(const std::vector<nlohmann::json>& a, const std::vector<nlohmann::json>& b, size_t steps,
                       const std::string& what) {
  ASSERT_EQ(a.size(), steps) << what;
  ASSERT_EQ(b.size(), steps) << what;
  for (size_t i = 0; i < steps; ++i) {
    const double la = a[i]["loss"].get<double>(), lb = b[i]["loss"].get<double>();
    EXPECT_NEAR(la, lb, kTol * std::abs(lb)) << what << ": loss of step " << i + 1;
  }
}

void expect_ranks_agree(const std::vector<nlohmann::json>& steps, int world, const std::string& what) {
  for (const auto& s : steps) {
    ASSERT_TRUE(s.contains("param_hash")) << what << ": no param_hash in " << s.dump();
    const auto h = s["param_hash"].get<std::vector<std::string>>();
    ASSERT_EQ(h.size(), size_t(world)) << what;
    for (int r = 1; r < world; ++r) {
      EXPECT_EQ(h[size_t(r)], h[0]) << what << ": rank " << r << "'s weights differ from rank 0's after step "
                                    << s["step"];
    }
  }
}

class DataParallelEqualsAccumulation : public DistFixture, public ::testing::WithParamInterface<int> {};

TEST_P(DataParallelEqualsAccumulation, RanksWithMicroBatchBEqualOneRankAccumulatingWorldMicroBatches) {
  const int W = GetParam();
  const std::string acc = cat("train.grad_accum=", W);
  const auto one = llmtrain(0, "one", {acc});
  ASSERT_EQ(one.status, 0) << one.output;
  const auto dp = llmtrain(W, "dp", {}, {"LLM_TEST_PARAM_HASH=1"});
  ASSERT_EQ(dp.status, 0) << dp.output;
  EXPECT_NE(dp.output.find(cat(W, " ranks")), std::string::npos) << dp.output;

  const auto a = records("one", "loss"), b = records("dp", "loss");
  expect_same_steps(a, b, 8, cat(W, " ranks vs accumulation"));
  expect_ranks_agree(b, W, cat(W, " ranks"));
  const auto pa = optimizer_flat(dir / "one" / "step_00000008", "master");
  const auto pb = optimizer_flat(dir / "dp" / "step_00000008", "master");
  ASSERT_EQ(pa.size(), pb.size());
  EXPECT_LE(norm_rel_err(pb, pa), kTol);
  // Training happened: the moments are not the zeros they start from.
  double m2 = 0;
  for (float x : optimizer_flat(dir / "one" / "step_00000008", "m")) m2 += double(x) * x;
  EXPECT_GT(m2, 0.0);
  // Without ZeRO every rank writes its part of the partition, so the shards never overlap.
  for (int r = 0; r < W; ++r) {
    EXPECT_TRUE(fs::exists(dir / "dp" / "step_00000008" / cat("optimizer.rank0000", r, ".safetensors")));
  }
}

INSTANTIATE_TEST_SUITE_P(World, DataParallelEqualsAccumulation, ::testing::Values(2, 3));

// ZeRO-2 sums each micro-batch over ranks before summing the micro-batches, plain data
// parallelism the other way round, and 3 ranks' sums associate differently in an all-reduce and
// in reduces to each owner. In fp32 that stays within 1e-6; in bf16 a difference of 1e-9 can
// flip the rounding of a weight by one ulp (Adam scales tiny gradients up), which later steps
// carry on. So bf16 runs the case where the sums agree bitwise: 2 ranks, one micro-batch per step.
struct ZeroCase {
  int world;
  const char* precision;
  int grad_accum;
};

class ZeroEqualsDataParallel : public DistFixture, public ::testing::WithParamInterface<ZeroCase> {};

TEST_P(ZeroEqualsDataParallel, SameLossesAndParametersWithOneWorldthOfTheOptimizerState) {
  const auto [W, prec, accum] = GetParam();
  // With two micro-batches per step ZeRO-2 reduce-scatters twice into its accumulator.
  const std::vector<std::string> common = {cat("train.precision=", prec), cat("train.grad_accum=", accum),
                                           cat("train.micro_batch=", 4 / accum), "train.eval_every=0"};
  const std::vector<std::string> hash = {"LLM_TEST_PARAM_HASH=1"};
  auto with = [&](const std::string& s) {
    auto v = common;
    v.push_back(s);
    return v;
  };
  const auto plain = llmtrain(W, "z0", with("dist.zero=0"), hash);
  ASSERT_EQ(plain.status, 0) << plain.output;
  const auto p0 = optimizer_flat(dir / "z0" / "step_00000008", "master");
  const auto start0 = records("z0", "event")[0]["dist"];
  const auto plain_bytes = start0["optimizer_bytes"].get<std::vector<int64_t>>();
  ASSERT_EQ(plain_bytes.size(), size_t(W));
  for (int64_t b : plain_bytes) EXPECT_EQ(b, plain_bytes[0]);
  // Per element: m and v (f32), and the master too unless it is the fp32 weights themselves.
  const int64_t per_elem = std::string(prec) == "fp32" ? 8 : 12;
  ASSERT_EQ(plain_bytes[0] % per_elem, 0);
  const int64_t P = plain_bytes[0] / per_elem;
  ASSERT_EQ(int64_t(p0.size()), P);

  for (int zero : {1, 2}) {
    const std::string name = cat("z", zero);
    const auto z = llmtrain(W, name, with(cat("dist.zero=", zero)), hash);
    ASSERT_EQ(z.status, 0) << z.output;
    const auto a = records("z0", "loss"), b = records(name, "loss");
    expect_same_steps(a, b, 8, cat("ZeRO-", zero, " vs plain, ", W, " ranks, ", prec));
    expect_ranks_agree(b, W, cat("ZeRO-", zero));
    const auto pz = optimizer_flat(dir / name / "step_00000008", "master");
    ASSERT_EQ(pz.size(), p0.size());
    EXPECT_LE(norm_rel_err(pz, p0), kTol) << "ZeRO-" << zero;

    // Each rank's optimizer arena holds its 1/W share: together exactly the plain state, each
    // at most a 64-aligned W-th.
    const auto dist = records(name, "event")[0]["dist"];
    const auto bytes = dist["optimizer_bytes"].get<std::vector<int64_t>>();
    ASSERT_EQ(bytes.size(), size_t(W));
    int64_t total = 0;
    const int64_t share = ((P + W - 1) / W + 63) / 64 * 64;
    for (int r = 0; r < W; ++r) {
      total += bytes[size_t(r)];
      EXPECT_LE(bytes[size_t(r)], share * per_elem) << "rank " << r;
      EXPECT_LE(bytes[size_t(r)] * W, plain_bytes[0] + W * 64 * per_elem) << "rank " << r;
    }
    EXPECT_EQ(total, plain_bytes[0]);
    const auto shard_bytes = dist["grad_shard_bytes"].get<std::vector<int64_t>>();
    const auto model_grad_bytes = dist["grad_bytes"].get<std::vector<int64_t>>();
    // Gradient memory per rank: ZeRO-1 keeps the whole [P] fp32 buffer; ZeRO-2 only its 1/W shard
    // plus the bucket in flight (one buffer the size of the largest layer: GradBuckets).
    const GradBuckets gb = grad_buckets(ParamTable(config().model.arch), config().model.arch.num_hidden_layers);
    EXPECT_EQ(gb.buffer, gb.largest_layer) << "the embeddings go in row ranges no larger than a layer";
    for (int r = 0; r < W; ++r) {
      const int64_t shard = bytes[size_t(r)] / per_elem * 4;
      EXPECT_EQ(shard_bytes[size_t(r)], zero == 2 ? shard : 0) << "rank " << r;
      const int64_t grads = shard_bytes[size_t(r)] + model_grad_bytes[size_t(r)];
      if (zero == 1) {
        EXPECT_EQ(grads, P * 4) << "rank " << r;  // P: the padded flat size, as the optimizer holds it
      } else {
        const int64_t bucket = gb.buffer * 4;
        EXPECT_EQ(model_grad_bytes[size_t(r)], bucket) << "rank " << r;
        EXPECT_LE(grads, P * 4 / W + bucket + 64 * 4) << "rank " << r;
        EXPECT_LT(grads, P * 4) << "rank " << r;
        std::printf("ZeRO-2, %d ranks: rank %d gradient memory %lld bytes = %.3f of ZeRO-1's (1/W = %.3f)\n", W, r,
                    static_cast<long long>(grads), double(grads) / double(P * 4), 1.0 / W);
      }
    }
    // The arenas' high-water marks over the run (rank 0): the gradient memory never grew past the start.
    const auto end = records(name, "event").back();
    ASSERT_EQ(end["event"], "end");
    EXPECT_EQ(end["arena_peak_bytes"]["grads"].get<int64_t>(), model_grad_bytes[0]);
    EXPECT_EQ(end["arena_peak_bytes"]["zero2 gradients"].get<int64_t>(), shard_bytes[0]);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, ZeroEqualsDataParallel,
                         ::testing::Values(ZeroCase{2, "fp32", 2}, ZeroCase{3, "fp32", 2}, ZeroCase{2, "bf16", 1}),
                         [](const auto& p) { return cat("W", p.param.world, "_", p.param.precision); });

// ZeRO-2's measured gradient memory per rank at a depth like Qwen2.5-0.5B's (24 layers, each a
// small part of the model): the 1/W shard plus one layer-sized bucket, about 1/W of ZeRO-1's
// whole buffer (0.54 on 2 ranks, 0.37 on 3; the 0.5B plan: 0.53, 0.36).
TEST_F(DistFixture, ZeroTwoGradientMemoryIsAboutOneWorldthAtDepth) {
  const std::vector<std::string> deep = {"model.num_hidden_layers=24"};
  const ModelConfig arch = config(deep).model.arch;
  const ParamTable table(arch);
  const GradBuckets gb = grad_buckets(table, arch.num_hidden_layers);
  const double whole = double(table.flat_size()) * 4;  // ZeRO-1's fp32 gradient buffer
  for (int W : {2, 3}) {
    const std::string name = cat("deep_w", W);
    const auto r =
        llmtrain(W, name, {"model.num_hidden_layers=24", "dist.zero=2", "train.steps=2", "train.eval_every=0"});
    ASSERT_EQ(r.status, 0) << r.output;
    const auto dist = records(name, "event")[0]["dist"];
    const auto shard = dist["grad_shard_bytes"].get<std::vector<int64_t>>();
    const auto bucket = dist["grad_bytes"].get<std::vector<int64_t>>();
    ASSERT_EQ(shard.size(), size_t(W));
    for (int rank = 0; rank < W; ++rank) {
      EXPECT_EQ(bucket[size_t(rank)], gb.largest_layer * 4) << "rank " << rank;
      const double ratio = double(shard[size_t(rank)] + bucket[size_t(rank)]) / whole;
      std::printf("ZeRO-2, 24 layers, %d ranks: rank %d gradient memory %.3f of ZeRO-1's (1/W = %.3f)\n", W, rank,
                  ratio, 1.0 / W);
      EXPECT_LT(ratio, 1.0 / W + double(gb.largest_layer) / double(table.flat_size()) + 1e-3) << "rank " << rank;
    }
    const auto end = records(name, "event").back();
    ASSERT_EQ(end["event"], "end");
    EXPECT_EQ(end["arena_peak_bytes"]["grads"].get<int64_t>(), bucket[0]) << "the bucket never grew";
  }
}

// Every sample a run trained on, as "step hash" lines of the per-rank logs.
std::multiset<std::string> samples(const fs::path& log_dir, int64_t first_step, int64_t last_step) {
  std::multiset<std::string> out;
  for (const auto& e : fs::directory_iterator(log_dir)) {
    std::ifstream in(e.path());
    int64_t step = 0;
    std::string hash;
    while (in >> step >> hash) {
      if (step >= first_step && step <= last_step) out.insert(hash);
    }
  }
  return out;
}

TEST_F(DistFixture, ResumeAtAnotherWorldSizeContinuesTheSameRun) {
  // 6 samples per step in every run: 2 ranks x 3, 3 ranks x 2, 1 rank x 3 x 2 micro-batches.
  const std::vector<std::string> two = {"train.micro_batch=3", "dist.zero=1", "train.eval_every=0"};
  for (const char* d : {"log_ref", "log_base", "log_w3", "log_w1"}) fs::create_directories(dir / d);
  auto log = [&](const char* d) { return std::vector<std::string>{"LLM_TEST_SAMPLE_LOG=" + (dir / d).string()}; };

  const auto ref = llmtrain(2, "ref", two, log("log_ref"));  // 8 steps at 2 ranks
  ASSERT_EQ(ref.status, 0) << ref.output;
  const auto base = llmtrain(2, "base", two, log("log_base"), "--stop-at 4");
  ASSERT_EQ(base.status, 0) << base.output;
  ASSERT_TRUE(fs::exists(dir / "base" / "step_00000004"));
  fs::copy(dir / "base", dir / "w3", fs::copy_options::recursive | fs::copy_options::copy_symlinks);
  fs::copy(dir / "base", dir / "w1", fs::copy_options::recursive | fs::copy_options::copy_symlinks);

  const auto w3 =
      llmtrain(3, "w3", {"train.micro_batch=2", "dist.zero=2", "train.eval_every=0"}, log("log_w3"), "--resume");
  ASSERT_EQ(w3.status, 0) << w3.output;
  EXPECT_NE(w3.output.find("written by 2 ranks, continuing with 3"), std::string::npos) << w3.output;
  const auto w1 =
      llmtrain(0, "w1", {"train.micro_batch=3", "train.grad_accum=2", "train.eval_every=0"}, log("log_w1"), "--resume");
  ASSERT_EQ(w1.status, 0) << w1.output;

  const auto r = records("ref", "loss");
  const auto pr = optimizer_flat(dir / "ref" / "step_00000008", "master");
  const auto mr = optimizer_flat(dir / "ref" / "step_00000008", "v");
  const auto cursor = read_trainer_state(dir / "ref" / "step_00000008")["data_cursor"];
  const auto ref_samples = samples(dir / "log_ref", 1, 8);
  ASSERT_EQ(ref_samples.size(), 48u);
  // Within the epoch no sample comes twice (the corpus has no repeated 33-token window).
  EXPECT_EQ(std::set<std::string>(ref_samples.begin(), ref_samples.end()).size(), 48u);
  const auto first_half = samples(dir / "log_base", 1, 4);
  EXPECT_EQ(first_half, samples(dir / "log_ref", 1, 4));

  for (const char* name : {"w3", "w1"}) {
    const auto c = records(name, "loss");
    expect_same_steps(r, c, 8, cat("resumed as ", name));
    const auto pc = optimizer_flat(dir / name / "step_00000008", "master");
    ASSERT_EQ(pc.size(), pr.size());
    EXPECT_LE(norm_rel_err(pc, pr), kTol) << name;
    EXPECT_LE(norm_rel_err(optimizer_flat(dir / name / "step_00000008", "v"), mr), 1e-5) << name;
    // The same global data position, and exactly the reference's samples: none skipped or
    // repeated across the change of world size.
    EXPECT_EQ(read_trainer_state(dir / name / "step_00000008")["data_cursor"], cursor) << name;
    auto all = first_half;
    const auto second = samples(dir / cat("log_", name), 5, 8);
    EXPECT_EQ(second.size(), 24u) << name;
    all.insert(second.begin(), second.end());
    EXPECT_EQ(all, ref_samples) << name;
  }
}

TEST_F(TrainFixture, ZeroStagesOnOneLocalRankEqualPlainTraining) {
  // In process, no MPI: the ZeRO code paths over the local communicator (ranges = everything).
  std::vector<std::vector<double>> loss;
  std::vector<std::vector<float>> master;
  for (int zero : {0, 1, 2}) {
    const std::string name = cat("local_z", zero);
    const Config c = config(
        {cat("dist.zero=", zero), "train.grad_accum=2", "train.micro_batch=2", "train.steps=4", "train.eval_every=0"},
        name);
    std::ostringstream log;
    TrainOptions o;
    o.log = &log;
    train(c, o);
    loss.push_back(losses(c.io.run_dir));
    master.push_back(
        SafetensorsReader(c.io.run_dir / "step_00000004" / "optimizer.rank00000.safetensors").read_f32("master"));
  }
  for (size_t z = 1; z < 3; ++z) {
    ASSERT_EQ(loss[z].size(), 4u);
    for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(loss[z][i], loss[0][i], kTol * loss[0][i]) << "ZeRO-" << z;
    EXPECT_LE(norm_rel_err(master[z], master[0]), kTol) << "ZeRO-" << z;
  }
}

TEST(ZeroPartition, EvenAlignedRangesCoverEverythingOnce) {
  for (int64_t n : {0, 1, 63, 64, 65, 1000, 94848, 1 << 20}) {
    for (int w : {1, 2, 3, 7, 8}) {
      const auto o = zero_partition(n, w);
      ASSERT_EQ(o.size(), size_t(w) + 1);
      EXPECT_EQ(o.front(), 0);
      EXPECT_EQ(o.back(), n);
      const int64_t len = o[1] - o[0];
      for (int r = 0; r < w; ++r) {
        EXPECT_LE(o[size_t(r)], o[size_t(r) + 1]);
        if (o[size_t(r) + 1] < n) {
          EXPECT_EQ(o[size_t(r) + 1] % 64, 0) << n << " / " << w;
          EXPECT_EQ(o[size_t(r) + 1] - o[size_t(r)], len) << n << " / " << w;
        }
        EXPECT_LE(o[size_t(r) + 1] - o[size_t(r)], (n + w - 1) / w + 63);
      }
    }
  }
}

}  // namespace
}  // namespace llm::test
