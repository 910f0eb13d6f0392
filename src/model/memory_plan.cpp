// plan_training_memory: parameters, gradients, optimizer state, activations under the recompute
// policy, the logits chunk and op workspaces, for CPU and CUDA alike.
#include "llm/memory_plan.h"

#include <algorithm>
#include <optional>

#include "llm/lora.h"
#include "llm/optimizer.h"
#include "model/qwen2_internal.h"

namespace llm {

size_t MemoryPlan::total() const {
  size_t t = 0;
  for (const auto& l : lines) t += l.bytes;
  return t;
}

size_t ce_workspace_bytes(DeviceKind device, const ModelConfig& cfg, const ModelOptions& opts, int64_t chunk) {
  const auto V = static_cast<size_t>(cfg.vocab_size), C = static_cast<size_t>(cfg.hidden_size);
  const auto n = static_cast<size_t>(chunk);
  size_t bytes = n * V * 4;  // fp32 logits, turned into dlogits in place
  if (device == DeviceKind::CPU) {
    bytes += 2 * n * C * 4;                                    // the chunk's h and dh in fp32
    if (opts.compute_dtype != DType::F32) bytes += V * C * 4;  // the output layer converted for sgemm
  } else {
    bytes += n * V * dtype_size(opts.compute_dtype);  // dlogits in the compute dtype for the GEMMs
  }
  return bytes;
}

size_t op_workspace_bytes(DeviceKind device, const ModelConfig& cfg, const ModelOptions& opts) {
  const auto B = static_cast<size_t>(opts.max_batch), T = static_cast<size_t>(opts.max_seq);
  const auto Hq = static_cast<size_t>(cfg.num_attention_heads), D = static_cast<size_t>(cfg.head_dim());
  if (device == DeviceKind::CPU) {
    // attention backward: dK and dV of every query head in fp32 before the GQA group sum
    size_t bytes = opts.training ? 2 * B * Hq * T * D * 4 : 0;
    if (opts.compute_dtype != DType::F32) {
      // GEMM operands converted to fp32: the largest weight and activation pair
      const auto C = static_cast<size_t>(cfg.hidden_size), I = static_cast<size_t>(cfg.intermediate_size);
      bytes += (2 * I * C + B * T * (2 * I + C)) * 4;
    }
    return bytes;
  }
  // CUDA: one cuBLASLt workspace; attention keeps only per-row statistics (flash-style).
  return size_t(32) << 20;
}

MemoryPlan plan_training_memory(const ModelConfig& cfg, const ModelOptions& opts, const PlanOptions& plan) {
  const ParamTable table(cfg);
  // Under LoRA the optimizer trains the adapters alone: gradients and state are theirs.
  const std::optional<LoraTable> lora =
      opts.lora.enabled() ? std::optional<LoraTable>(std::in_place, cfg, opts.lora) : std::nullopt;
  const auto P = static_cast<size_t>(lora ? lora->flat_size() : table.flat_size());
  const bool sharded = plan.zero > 0 && plan.world > 1;
  // The largest range a rank owns (DataParallel's partition: even, 64-aligned).
  size_t shard = P;
  if (plan.zero > 0) {
    const std::vector<int64_t> parts = zero_partition(static_cast<int64_t>(P), plan.world);
    shard = 0;
    for (size_t r = 0; r + 1 < parts.size(); ++r) shard = std::max(shard, static_cast<size_t>(parts[r + 1] - parts[r]));
  }
  MemoryPlan m;
  if (lora) {
    m.lines.push_back(
        {"frozen base parameters", static_cast<size_t>(table.flat_size()) * dtype_size(opts.compute_dtype),
         cat(table.count(), " in ", dtype_name(opts.compute_dtype), ", no gradients or optimizer state")});
    m.lines.push_back({"LoRA adapters", P * dtype_size(opts.compute_dtype),
                       cat(lora->count(), " in ", dtype_name(opts.compute_dtype), ", r ", opts.lora.rank, ", ",
                           lora->adapters().size(), " adapters")});
  } else {
    m.lines.push_back(
        {"parameters", P * dtype_size(opts.compute_dtype), cat(table.count(), " in ", dtype_name(opts.compute_dtype))});
  }
  if (opts.training) {
    if (plan.zero == 2 && !lora) {
      // Bucketed (ModelOptions::bucketed_grads): one buffer for the largest bucket, reused.
      const GradBuckets b = grad_buckets(table, cfg.num_hidden_layers);
      m.lines.push_back({"gradients", static_cast<size_t>(b.buffer) * 4,
                         cat("fp32, ZeRO-2: the bucket in flight (a layer, or ", b.vocab_rows, " vocabulary rows)")});
    } else {
      m.lines.push_back({"gradients", P * 4, "fp32"});
    }
    if (opts.compute_dtype != DType::F32) {
      m.lines.push_back(
          {"optimizer master weights", shard * 4, plan.zero > 0 ? cat("fp32, 1/", plan.world, " (ZeRO)") : "fp32"});
    }
    m.lines.push_back({"optimizer moments m, v", 2 * shard * 4,
                       sharded ? cat("fp32, 1/", plan.world, " (ZeRO-", plan.zero, ")") : "fp32"});
    if (plan.zero == 2)
      m.lines.push_back({"ZeRO-2 gradient shard", shard * 4, "fp32, the step's sum of this rank's range"});
  }
  size_t act = 0, scratch = 0;
  ModelOptions built = opts;  // as TrainRun builds the model: ZeRO-2 buckets unless under LoRA
  built.bucketed_grads = opts.training && plan.zero == 2 && !lora;
  for (const BufSpec& s : buffer_plan(cfg, built)) {
    const size_t bytes = static_cast<size_t>(s.per_copy * s.copies) * dtype_size(s.dtype);
    (s.activation ? act : scratch) += bytes;
  }
  m.lines.push_back(
      {"activations", act,
       cat("recompute ", recompute_name(opts.recompute), ", ", opts.max_batch, " x ", opts.max_seq, " tokens")});
  m.lines.push_back({"backward and scratch buffers", scratch, ""});
  const int64_t chunk = default_ce_chunk_tokens(cfg.vocab_size, opts.max_batch * opts.max_seq, plan.ce_chunk_tokens);
  m.lines.push_back(
      {"logits chunk", ce_workspace_bytes(plan.device, cfg, opts, chunk), cat(chunk, " tokens x ", cfg.vocab_size)});
  m.lines.push_back({"op workspace", op_workspace_bytes(plan.device, cfg, opts),
                     plan.device == DeviceKind::CPU ? "attention, GEMM staging" : "cuBLASLt"});
  return m;
}

}  // namespace llm
