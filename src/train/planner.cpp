// The per-GPU planner: memory plan x roofline over precisions, recompute policies and
// micro-batches, printed as one table per card with the recommended setting.
#include "llm/planner.h"

#include <cstdio>
#include <iomanip>
#include <sstream>

#include "llm/error.h"

namespace llm {

namespace {

constexpr Recompute kPolicies[] = {Recompute::None, Recompute::Selective, Recompute::Full};

double gib(size_t b) { return static_cast<double>(b) / (1024.0 * 1024.0 * 1024.0); }

// v with `digits` decimals.
std::string fixed(double v, int digits = 0) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(digits) << v;
  return s.str();
}

std::string tokens_text(double tps) { return tps >= 1e4 ? fixed(tps / 1e3, 1) + "k" : fixed(tps, 0); }

// As train.precision spells it.
std::string_view precision_text(DType d) { return d == DType::F16 ? "fp16" : d == DType::BF16 ? "bf16" : "fp32"; }

}  // namespace

MemoryPlan gpu_memory_plan(const Config& cfg, DType dtype, Recompute rc, int64_t micro_batch, int world, int zero) {
  ModelOptions mo;
  mo.compute_dtype = dtype;
  mo.recompute = rc;
  mo.max_batch = micro_batch;
  mo.max_seq = cfg.train.seq_len;
  PlanOptions po;
  po.device = DeviceKind::CUDA;
  po.world = world;
  po.zero = zero;
  po.ce_chunk_tokens = cfg.train.ce_chunk_tokens;
  return plan_training_memory(cfg.model.arch, mo, po);
}

std::vector<DType> planner_precisions(const Config& cfg, const GpuSpec& gpu, std::vector<std::string>& notes) {
  const DType native = gpu.bf16 ? DType::BF16 : DType::F16;
  switch (cfg.train.precision) {
    case Precision::FP16: return {DType::F16};
    case Precision::BF16:
      if (gpu.bf16) return {DType::BF16};
      notes.push_back(cat("train.precision bf16 has no tensor cores on ", gpu.id, " (sm_", gpu.sm,
                          "): planned as fp16 with loss scaling"));
      return {DType::F16};
    case Precision::FP32:
      notes.push_back(cat("train.precision fp32 runs without tensor cores (8-16x slower GEMMs): planned as ",
                          precision_text(native), ", what auto picks on this card"));
      return {native};
    case Precision::Auto: break;
  }
  if (gpu.bf16) notes.push_back("fp16 (with loss scaling) plans the same memory and speed as bf16 on this card");
  return {native};
}

GpuPlan plan_for_gpu(const Config& cfg, const GpuSpec& gpu, int world) {
  GpuPlan plan;
  plan.gpu = &gpu;
  if (!gpu.note.empty()) plan.notes.push_back(gpu.note);
  const int64_t per_rank = cfg.train.micro_batch * cfg.train.grad_accum;  // sequences per rank and step
  const double usable = usable_gib(gpu);
  for (DType dt : planner_precisions(cfg, gpu, plan.notes)) {
    for (Recompute rc : kPolicies) {
      for (int64_t mb = 1; mb <= kPlannerMaxMicroBatch; ++mb) {
        PlanCell c{dt, rc, mb};
        c.bytes = gpu_memory_plan(cfg, dt, rc, mb, world, cfg.dist.zero).total();
        c.fits = gib(c.bytes) <= usable;
        StepShape s;
        s.micro_batch = mb;
        s.seq_len = cfg.train.seq_len;
        s.grad_accum = std::max<int64_t>(1, per_rank / mb);
        s.dtype = dt;
        s.recompute = rc;
        s.world = world;
        s.zero = cfg.dist.zero;
        const StepPrediction p = predict_step(cfg.model.arch, gpu, s);
        c.tokens_per_s = p.tokens_per_s;
        c.mfu = p.mfu;
        plan.cells.push_back(c);
        const bool divides = per_rank % mb == 0;
        // The fastest that fits; among equals (within 0.5%) the larger micro-batch: fewer, larger
        // kernels, whose launch overheads and small-GEMM tails the roofline does not count.
        const bool better =
            !plan.best || c.tokens_per_s > plan.best->tokens_per_s * 1.005 ||
            (c.tokens_per_s >= plan.best->tokens_per_s * 0.995 && c.micro_batch > plan.best->micro_batch);
        if (c.fits && divides && better) {
          plan.best = c;
          plan.grad_accum = per_rank / mb;
        }
      }
    }
  }
  return plan;
}

namespace {

void print_one(const Config& cfg, const GpuPlan& plan, int world, std::ostream& out) {
  const GpuSpec& g = *plan.gpu;
  out << "== " << g.name << " (--gpu " << g.id << ", sm_" << g.sm << "): " << fixed(g.memory_gib, 1) << " GiB ("
      << fixed(usable_gib(g), 1) << " usable), tensor " << fixed(g.tensor_peak / 1e12) << " TFLOP/s";
  if (g.sustained < g.tensor_peak * 0.95) out << " (sustained ~" << fixed(g.sustained / 1e12) << ")";
  out << ", " << fixed(g.bandwidth / 1e9) << " GB/s\n";
  for (const auto& n : plan.notes) out << "   note: " << n << "\n";
  DType last = DType::F32;
  for (size_t i = 0; i < plan.cells.size(); ++i) {
    const PlanCell& c = plan.cells[i];
    if (c.recompute != Recompute::None) continue;
    if (c.micro_batch == 1 || c.dtype != last) {
      last = c.dtype;
      out << "   " << precision_text(c.dtype) << (c.dtype == DType::F16 ? " with loss scaling" : "") << ", seq "
          << cfg.train.seq_len << ", " << world << (world == 1 ? " rank" : " ranks") << ", ZeRO-" << cfg.dist.zero
          << "; per rank: peak GiB, tokens/s, MFU (x: does not fit)\n";
      out << "   micro |";
      for (Recompute rc : kPolicies)
        out << "      recompute " << std::left << std::setw(10) << recompute_name(rc) << std::right << "|";
      out << "\n";
    }
    char row[256];
    int n = std::snprintf(row, sizeof row, "   %5lld |", static_cast<long long>(c.micro_batch));
    for (size_t k = 0; k < 3; ++k) {
      const PlanCell& d = plan.cells[i + k * kPlannerMaxMicroBatch];
      n += std::snprintf(row + n, sizeof row - size_t(n), " %6.2f%s %7s %4.0f%% |", gib(d.bytes), d.fits ? " " : "x",
                         tokens_text(d.tokens_per_s).c_str(), 100 * d.mfu);
    }
    out << row << "\n";
  }
  const int64_t per_rank = cfg.train.micro_batch * cfg.train.grad_accum;
  if (!plan.best) {
    out << "   recommended: nothing fits " << fixed(usable_gib(g), 1)
        << " GiB with a micro-batch dividing the configured " << per_rank
        << " sequences per rank; try recompute full, a shorter train.seq_len, ZeRO (dist.zero) over more ranks, or a "
           "larger card\n\n";
    return;
  }
  const PlanCell& b = *plan.best;
  out << "   recommended: " << precision_text(b.dtype) << ", recompute " << recompute_name(b.recompute)
      << ", micro_batch " << b.micro_batch << ", grad_accum " << plan.grad_accum << " (" << per_rank * world
      << " sequences x " << cfg.train.seq_len << " tokens per step, as configured): " << fixed(gib(b.bytes), 2)
      << " GiB, " << tokens_text(b.tokens_per_s * world) << " tokens/s" << (world > 1 ? " (all ranks)" : "") << ", MFU "
      << fixed(100 * b.mfu) << "%\n";
  out << "     --set train.precision=" << precision_text(b.dtype)
      << " --set train.recompute=" << recompute_name(b.recompute) << " --set train.micro_batch=" << b.micro_batch
      << " --set train.grad_accum=" << plan.grad_accum << "\n";
  if (world > 1) {
    out << "   per rank at this setting by ZeRO stage:";
    for (int z = 0; z <= 2; ++z) {
      out << " ZeRO-" << z << " "
          << fixed(gib(gpu_memory_plan(cfg, b.dtype, b.recompute, b.micro_batch, world, z).total()), 2) << " GiB"
          << (z < 2 ? "," : "\n");
    }
  }
  out << "\n";
}

}  // namespace

void print_gpu_plans(const Config& cfg, const std::string& gpu, int world, std::ostream& out) {
  LLM_CHECK(world >= 1, "--world: ", world, " is not a positive number of ranks");
  std::vector<const GpuSpec*> cards;
  if (gpu == "all") {
    for (const GpuSpec& g : known_gpus()) cards.push_back(&g);
  } else {
    cards.push_back(&find_gpu(gpu, "--gpu"));
  }
  out << "planner: peak memory per rank from the arena plan training allocates from; tokens/s and MFU from the "
         "roofline model (docs/roofline.md: GEMMs at "
      << fixed(100 * kGemmEfficiency) << "% of peak, attention " << fixed(100 * kAttentionEfficiency) << "%, streaming "
      << fixed(100 * kBandwidthEfficiency)
      << "% of bandwidth; collectives not modelled), a prediction, not a measurement\n\n";
  for (const GpuSpec* g : cards) print_one(cfg, plan_for_gpu(cfg, *g, world), world, out);
}

}  // namespace llm
