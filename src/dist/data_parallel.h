// DataParallel: how the training loop's gradients meet across ranks and which rank updates which
// parameters (docs/multi-node.md, "ZeRO").
//
//   zero 0  every rank holds all optimizer state and updates all parameters; gradients are
//           all-reduced in buckets of dist.bucket_mb after the step's last backward. (On the CPU
//           the all-reduce follows the backward; overlapping it with the backward, bucket by
//           bucket as layers finish, is for the CUDA/NCCL path.)
//   zero 1  rank r owns range r of zero_partition(P, world): the gradients are reduce-scattered
//           to their owners, AdamW keeps master/m/v of the owned range only (1/world of the
//           state) and updates it, and the updated compute weights are all-gathered.
//   zero 2  as 1, and the gradients exist only for the owned range plus the bucket in flight:
//           the model is built with bucketed_grads (one buffer the size of the largest layer,
//           reused by every bucket: GradBuckets), and as the backward finishes each bucket (the
//           final norm first, layer l as soon as its backward is done, then the embeddings' and
//           output layer's gradients in row ranges, from the softmax statistics the forward kept)
//           it is reduce-scattered to the owners, who add their part to a range-sized fp32
//           accumulator. No full [P] gradient buffer exists.
// The gradient norm for clipping is global in every stage (sums of squares of the ranges,
// all-reduced), so all ranks clip and skip steps alike.
#pragma once

#include <memory>
#include <vector>

#include "llm/arena.h"
#include "llm/comm.h"
#include "llm/config.h"
#include "llm/model.h"
#include "llm/optimizer.h"

namespace llm {

class DataParallel {
 public:
  DataParallel(Qwen2Model& model, const OptimSection& optim, const DistSection& dist, Communicator& comm);

  AdamW& optimizer() { return *adamw_; }
  int zero() const { return zero_; }
  // zero_partition(P, world): the ranges the ranks own (zero 1 and 2) and write to checkpoints.
  const std::vector<int64_t>& partition() const { return partition_; }

  // Makes every rank's compute weights whole after AdamW::init or a checkpoint load (with ZeRO
  // each rank set only its own range).
  void sync_weights();
  // Before the step's first micro-batch.
  void begin_step();
  // After each micro-batch's backward.
  void after_backward();
  // After the step's last backward: completes the gradient exchange and returns the global sum
  // of squares of the step's gradients (as accumulated: loss-scaled).
  double reduce_gradients();
  // AdamW on this rank's range (g = grad * grad_scale), then the weights made whole again.
  void apply(float lr, int64_t step, float grad_scale);

  // Peak bytes of this rank's optimizer state (AdamW's arena) and of the ZeRO-2 accumulator.
  size_t optimizer_bytes() const { return adamw_->arena().peak_bytes(); }
  size_t gradient_shard_bytes() const { return acc_arena_.peak_bytes(); }

 private:
  Tensor own_grads() const;                            // this rank's range of the model's gradients
  void reduce_bucket(int64_t begin, const Tensor& g);  // ZeRO-2: the sink of the model's buckets

  Qwen2Model& model_;
  Communicator& comm_;
  int zero_;
  int64_t bucket_elems_;
  std::vector<int64_t> partition_;
  int64_t begin_ = 0, count_ = 0;
  std::unique_ptr<AdamW> adamw_;
  Arena acc_arena_;
  OwnedTensor acc_;  // zero 2: [count_] f32, the step's gradients of the owned range
};

}  // namespace llm
