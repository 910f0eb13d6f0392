// predict_step: the kernels of one training step (the same list and byte counts as
// bench/roofline.py) timed against a card's peaks.
#include "llm/roofline.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "llm/error.h"
#include "llm/trainer.h"

namespace llm {

const std::vector<GpuSpec>& known_gpus() {
  // Dense tensor-core peaks with fp32 accumulation (GeForce cards run that at half their fp16-
  // accumulate rate), as in NVIDIA's spec sheets; memory as nvidia-smi reports it.
  static const std::vector<GpuSpec> gpus = {
      {"t4", "NVIDIA T4 16 GB", 75, 15.0, 65e12, 47e12, 8.1e12, 320e9, false,
       "70 W power cap: GEMMs sustain ~45-50 TFLOP/s, not the 65 of the spec"},
      {"v100-16", "NVIDIA V100 16 GB", 70, 15.8, 125e12, 125e12 * 0.9, 15.7e12, 900e9, false,
       "no bf16; attention runs the fp32 SIMT kernel (tensor-core attention needs sm_75); CUDA 12.x build"},
      {"v100-32", "NVIDIA V100 32 GB", 70, 31.7, 125e12, 125e12 * 0.9, 15.7e12, 900e9, false,
       "no bf16; attention runs the fp32 SIMT kernel (tensor-core attention needs sm_75); CUDA 12.x build"},
      {"a10", "NVIDIA A10 24 GB", 86, 22.5, 125e12, 125e12, 31.2e12, 600e9, true, ""},
      {"l4", "NVIDIA L4 24 GB", 89, 22.5, 121e12, 121e12, 30.3e12, 300e9, true, "72 W; low bandwidth"},
      {"a100-40", "NVIDIA A100 40 GB", 80, 39.4, 312e12, 312e12, 19.5e12, 1555e9, true, ""},
      {"a100-80", "NVIDIA A100 80 GB SXM", 80, 79.2, 312e12, 312e12, 19.5e12, 2039e9, true, ""},
      {"h100", "NVIDIA H100 80 GB SXM", 90, 79.2, 989e12, 989e12, 67e12, 3350e9, true, ""},
      {"rtx3090", "NVIDIA GeForce RTX 3090 24 GB", 86, 24.0, 71e12, 71e12, 35.6e12, 936e9, true,
       "GeForce: fp32-accumulate tensor rate is half the fp16 one"},
      {"rtx4090", "NVIDIA GeForce RTX 4090 24 GB", 89, 24.0, 165e12, 165e12, 82.6e12, 1008e9, true,
       "GeForce: fp32-accumulate tensor rate is half the fp16 one"},
  };
  return gpus;
}

const GpuSpec& find_gpu(std::string_view id, std::string_view where) {
  std::string lower(id);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string ids;
  for (const GpuSpec& g : known_gpus()) {
    if (g.id == lower) return g;
    ids += (ids.empty() ? "" : ", ") + g.id;
  }
  fail(where, ": \"", id, "\" is not a GPU the planner knows; one of: ", ids, ", all");
}

bool tensor_cores_for(const GpuSpec& g, DType dtype) {
  if (dtype == DType::F16) return g.sm >= 70;
  if (dtype == DType::BF16) return g.sm >= 80;
  return false;
}

namespace {

enum class Bound { Gemm, Attention, Memory };

struct Kernel {
  const char* name;
  double flops, bytes;
  Bound kind;
};

// The kernels of one micro-batch (all layers), as bench/roofline.py lists them.
std::vector<Kernel> step_kernels(const ModelConfig& cfg, int64_t B, int64_t T, Recompute rc) {
  const double C = double(cfg.hidden_size), I = double(cfg.intermediate_size), V = double(cfg.vocab_size);
  const double Hq = double(cfg.num_attention_heads), Hkv = double(cfg.num_key_value_heads);
  const double D = double(cfg.head_dim()), Q = (Hq + 2 * Hkv) * D, N = double(B) * double(T);
  const double w = 2;  // bytes per fp16/bf16 weight or activation element
  const int L = static_cast<int>(cfg.num_hidden_layers);
  std::vector<Kernel> ks;
  auto gemm = [&](const char* name, double M, double K, double Nn, int passes) {          // 1 fwd, 2 bwd (dX, dW)
    const double bytes = passes * (M * K + K * Nn) * w + M * Nn * (passes == 1 ? w : 4);  // dW accumulates in f32
    ks.push_back({name, 2 * M * K * Nn * passes, bytes, Bound::Gemm});
  };
  auto stream = [&](const char* name, double elems) { ks.push_back({name, 0, elems * w, Bound::Memory}); };
  const double attn_fwd_flops = 2 * 2 * double(B) * Hq * double(T) * double(T) * D / 2;  // causal: half the scores
  const double attn_bytes = (N * Q + N * Hq * D) * w;
  auto layer_forward = [&](bool gemms) {
    stream("rmsnorm x2 (fwd)", 2 * 2 * N * C);
    if (gemms) gemm("qkv projection (fwd)", N, C, Q, 1);
    stream("rope (fwd)", 2 * N * (Hq + Hkv) * D);
    ks.push_back({"attention (fwd)", attn_fwd_flops, attn_bytes, Bound::Attention});
    if (gemms) gemm("o projection (fwd)", N, Hq * D, C, 1);
    if (gemms) gemm("gate/up projection (fwd)", N, C, 2 * I, 1);
    stream("swiglu (fwd)", N * 3 * I);
    if (gemms) gemm("down projection (fwd)", N, I, C, 1);
    if (gemms) stream("residual adds", 3 * N * C);
  };
  for (int l = 0; l < L; ++l) layer_forward(true);
  // Backward replays: full recompute the whole layer forward, selective its non-matmul parts.
  if (rc != Recompute::None) {
    for (int l = 0; l < L; ++l) layer_forward(rc == Recompute::Full);
  }
  for (int l = 0; l < L; ++l) {
    gemm("qkv projection (bwd)", N, C, Q, 2);
    ks.push_back({"attention (bwd)", 2.5 * attn_fwd_flops, 2 * attn_bytes, Bound::Attention});
    gemm("o projection (bwd)", N, Hq * D, C, 2);
    gemm("gate/up projection (bwd)", N, C, 2 * I, 2);
    stream("swiglu (bwd)", N * 5 * I);
    gemm("down projection (bwd)", N, I, C, 2);
    stream("rmsnorm x2 (bwd)", 2 * 4 * N * C);
  }
  // Fused output layer + loss: logits, dh, dE (3 GEMMs over the vocabulary); the logits chunk is
  // written in fp32, read by the softmax, written back as dlogits in the compute dtype.
  const double out_bytes = 3 * ((N * C + C * V) * w + N * V * w) + N * V * (4 + 4 + w);
  ks.push_back({"output layer + loss (3 GEMMs)", 3 * 2 * N * C * V, out_bytes, Bound::Gemm});
  ks.push_back({"embedding fwd/bwd", 0, 2 * N * C * w + 2 * N * C * 4, Bound::Memory});
  return ks;
}

}  // namespace

StepPrediction predict_step(const ModelConfig& cfg, const GpuSpec& gpu, const StepShape& s) {
  LLM_CHECK(tensor_cores_for(gpu, s.dtype), gpu.id, ": no tensor cores for ", dtype_name(s.dtype));
  // sm_70 has fp16 tensor cores but the tensor-core attention kernel needs sm_75: the fp32 FMA tiles run.
  const double attn_peak = gpu.sm >= 75 ? gpu.sustained : gpu.fp32_peak;
  std::map<std::string, KernelTime> rows;
  std::vector<std::string> order;
  const double accum = double(s.grad_accum);
  for (const Kernel& k : step_kernels(cfg, s.micro_batch, s.seq_len, s.recompute)) {
    const double peak = k.kind == Bound::Attention ? attn_peak * kAttentionEfficiency
                        : k.kind == Bound::Gemm    ? gpu.sustained * kGemmEfficiency
                                                   : 0;
    const double t_compute = k.flops > 0 ? k.flops / peak : 0,
                 t_memory = k.bytes / (gpu.bandwidth * kBandwidthEfficiency);
    auto [it, fresh] = rows.try_emplace(k.name, KernelTime{k.name});
    if (fresh) order.push_back(k.name);
    it->second.flops += k.flops * accum;
    it->second.bytes += k.bytes * accum;
    it->second.seconds += std::max(t_compute, t_memory) * accum;
    it->second.compute_bound = t_compute > t_memory;
  }
  StepPrediction p;
  for (const auto& n : order) p.kernels.push_back(rows[n]);
  // AdamW, once per step over this rank's parameters: reads master, grad, m, v (f32) and writes
  // master, m, v (f32) and the compute copy.
  const ParamTable table(cfg);
  const double P = double(table.count()) / (s.zero > 0 ? s.world : 1);
  const double adam_bytes = P * (4 * 4 + 3 * 4 + 2);
  p.kernels.push_back(
      {"AdamW (once per step)", 0, adam_bytes, adam_bytes / (gpu.bandwidth * kBandwidthEfficiency), false});
  for (const KernelTime& k : p.kernels) p.seconds += k.seconds;
  const double tokens = double(s.micro_batch) * double(s.seq_len) * accum;
  p.tokens_per_s = tokens / p.seconds;
  p.mfu = train_flops_per_token(cfg, s.seq_len) * p.tokens_per_s / gpu.tensor_peak;
  return p;
}

}  // namespace llm
