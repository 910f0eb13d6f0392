// DataParallel: plain data parallelism and ZeRO stages 1 and 2 over a Communicator.
#include "dist/data_parallel.h"

#include <algorithm>

#include "llm/error.h"

namespace llm {

DataParallel::DataParallel(Qwen2Model& model, const OptimSection& optim, const DistSection& dist, Communicator& comm)
    : model_(model), comm_(comm), zero_(dist.zero), acc_arena_(model.backend(), "zero2 gradients") {
  LLM_CHECK(zero_ >= 0 && zero_ <= 2, "dist.zero: must be 0, 1 or 2, got ", zero_);
  bucket_elems_ = std::max<int64_t>(1, static_cast<int64_t>(dist.bucket_mb * 1024 * 1024 / 4));
  const int64_t P = model.trainable_size();  // LoRA: the adapters alone
  partition_ = zero_partition(P, comm.world());
  if (zero_ > 0) {
    begin_ = partition_[size_t(comm.rank())];
    count_ = partition_[size_t(comm.rank()) + 1] - begin_;
  } else {
    count_ = P;
  }
  adamw_ = std::make_unique<AdamW>(model, optim, begin_, count_);
  if (zero_ == 2) {
    LLM_CHECK(model.options().bucketed_grads || model.lora() != nullptr,
              "dist.zero 2: the model must be built with bucketed_grads");
    acc_ = acc_arena_.zeros(DType::F32, {count_});
    if (model.options().bucketed_grads) {
      model.set_grad_sink([this](int64_t begin, const Tensor& g) { reduce_bucket(begin, g); });
    }
  }
}

void DataParallel::reduce_bucket(int64_t begin, const Tensor& g) {
  // The partition clipped to the bucket [begin, begin + n): each owner receives the sum over ranks
  // of its part (in place in g) and adds it to its accumulator.
  const int64_t n = g.numel();
  std::vector<int64_t> offsets(partition_.size());
  for (size_t r = 0; r < partition_.size(); ++r) offsets[r] = std::clamp<int64_t>(partition_[r] - begin, 0, n);
  const int64_t lo = offsets[size_t(comm_.rank())], hi = offsets[size_t(comm_.rank()) + 1];
  const Tensor mine = g.range(lo, hi - lo);
  comm_.reduce_scatter_ranges_sum(g, mine, offsets);
  if (hi > lo) {
    const Tensor acc = acc_->range(begin + lo - begin_, hi - lo);
    model_.backend().add(acc, mine, acc);
  }
}

Tensor DataParallel::own_grads() const { return model_.trainable_grads().range(begin_, count_); }

void DataParallel::sync_weights() {
  if (zero_ > 0) comm_.all_gather_ranges(model_.trainable_weights(), partition_);
}

void DataParallel::begin_step() {
  model_.zero_grads();  // (ZeRO-2: the buckets, zero already after each backward)
  if (zero_ == 2) model_.backend().zero(acc_.t());
}

void DataParallel::after_backward() {
  // Bucketed ZeRO-2 reduced each bucket as the backward finished it (reduce_bucket); nothing is left.
  if (zero_ != 2 || model_.options().bucketed_grads) return;
  // ZeRO-2 on LoRA adapters (whole gradients): this micro-batch's, summed over ranks, into the
  // owned range, added to the accumulator; the buffer is cleared for the next micro-batch.
  comm_.reduce_scatter_ranges_sum(model_.trainable_grads(), own_grads(), partition_);
  model_.backend().add(acc_.t(), own_grads(), acc_.t());
  model_.zero_grads();
}

double DataParallel::reduce_gradients() {
  Backend& be = model_.backend();
  switch (zero_) {
    case 0: {
      const Tensor& g = model_.trainable_grads();
      for (int64_t off = 0; off < g.numel(); off += bucket_elems_) {
        comm_.all_reduce_sum(g.range(off, std::min(bucket_elems_, g.numel() - off)));
      }
      return be.sum_squares(g);  // the same on every rank
    }
    case 1:
      comm_.reduce_scatter_ranges_sum(model_.trainable_grads(), own_grads(), partition_);
      return comm_.all_reduce_sum(be.sum_squares(own_grads()));
    default: return comm_.all_reduce_sum(be.sum_squares(acc_.t()));
  }
}

void DataParallel::apply(float lr, int64_t step, float grad_scale) {
  if (zero_ == 2) {
    adamw_->step(lr, step, grad_scale, acc_.t());
  } else {
    adamw_->step(lr, step, grad_scale);
  }
  sync_weights();
}

}  // namespace llm
