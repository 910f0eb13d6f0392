// AdamW: master weights, moments, weight-decay segments.
#include <algorithm>
#include <vector>

#include "llm/error.h"
#include "llm/lora.h"
#include "llm/optimizer.h"

namespace llm {

std::vector<AdamWSegment> adamw_segments(const ParamTable& table, const OptimSection& o, int64_t begin, int64_t count) {
  std::vector<AdamWSegment> out;
  const int64_t end = begin + count;
  for (const ParamInfo& p : table.params()) {
    const bool no_decay = (p.kind == ParamKind::Norm || p.kind == ParamKind::Bias) && !o.decay_norms_and_biases;
    const auto wd = static_cast<float>(no_decay ? 0.0 : o.weight_decay);
    const int64_t lo = std::max(begin, p.offset), hi = std::min(end, p.offset + p.numel);
    if (lo >= hi) continue;
    if (!out.empty() && out.back().weight_decay == wd && out.back().offset + out.back().count == lo - begin) {
      out.back().count += hi - lo;  // adjacent, same decay: one run
    } else {
      out.push_back({lo - begin, hi - lo, wd});
    }
  }
  return out;
}

std::vector<int64_t> zero_partition(int64_t n, int world, int64_t align) {
  LLM_CHECK(n >= 0 && world >= 1 && align >= 1, "zero_partition: n ", n, ", world ", world, ", align ", align);
  const int64_t per = (n + world - 1) / world;
  const int64_t len = (per + align - 1) / align * align;
  std::vector<int64_t> o(static_cast<size_t>(world) + 1);
  for (int r = 0; r <= world; ++r) o[static_cast<size_t>(r)] = std::min(int64_t(r) * len, n);
  return o;
}

AdamW::AdamW(Qwen2Model& model, const OptimSection& opt, int64_t begin, int64_t count)
    : model_(model),
      opt_(opt),
      begin_(begin),
      count_(count < 0 ? model.trainable_size() - begin : count),
      arena_(model.backend(), "optimizer") {
  // The trainable parameters: all weights, or the LoRA adapters alone (the base frozen).
  const int64_t P = model.trainable_size();
  LLM_CHECK(begin_ >= 0 && count_ >= 0 && begin_ + count_ <= P, "optimizer: range [", begin_, ", ", begin_ + count_,
            ") is outside the ", P, " flat parameters");
  if (model.trainable_weights().dtype() == DType::F32) {
    master_ = model.trainable_weights().range(begin_, count_);  // fp32 compute: the weights are the master
  } else {
    master_own_ = arena_.zeros(DType::F32, {count_});
    master_ = master_own_.t();
  }
  m_ = arena_.zeros(DType::F32, {count_});
  v_ = arena_.zeros(DType::F32, {count_});
  if (model.lora()) {
    segments_ = {{0, count_, static_cast<float>(opt.weight_decay)}};  // adapters: one run (padding is zero, stays zero)
  } else {
    segments_ = adamw_segments(model.params(), opt, begin_, count_);
  }
}

void AdamW::init(std::span<const float> flat) {
  LLM_CHECK(static_cast<int64_t>(flat.size()) == model_.trainable_size(), "optimizer: init got ", flat.size(),
            " values, expected ", model_.trainable_size());
  Backend& be = model_.backend();
  be.upload(master_, flat.data() + begin_);
  be.zero(m_.t());
  be.zero(v_.t());
  sync_compute();
}

void AdamW::load_state(std::span<const float> master, std::span<const float> m, std::span<const float> v) {
  for (auto sz : {master.size(), m.size(), v.size()}) {
    LLM_CHECK(static_cast<int64_t>(sz) == count_, "optimizer: state of ", sz, " values for a range of ", count_);
  }
  Backend& be = model_.backend();
  be.upload(master_, master.data());
  be.upload(m_.t(), m.data());
  be.upload(v_.t(), v.data());
  sync_compute();
}

void AdamW::sync_compute() {
  // With fp32 compute the master is the weights themselves: nothing to round.
  const Tensor& w = model_.trainable_weights();
  if (w.dtype() != DType::F32) model_.backend().copy(master_, w.range(begin_, count_));
}

void AdamW::step(float lr, int64_t step, float grad_scale) {
  this->step(lr, step, grad_scale, model_.trainable_grads().range(begin_, count_));
}

void AdamW::step(float lr, int64_t step, float grad_scale, const Tensor& grad) {
  LLM_CHECK(grad.dtype() == DType::F32 && grad.numel() == count_, "optimizer: gradients ", grad.shape_str(),
            " for a range of ", count_, " f32");
  AdamWHyper h;
  h.lr = lr;
  h.beta1 = static_cast<float>(opt_.beta1);
  h.beta2 = static_cast<float>(opt_.beta2);
  h.eps = static_cast<float>(opt_.eps);
  h.step = step;
  h.grad_scale = grad_scale;
  const Tensor& w = model_.trainable_weights();
  const Tensor compute = w.dtype() == DType::F32 ? Tensor() : w.range(begin_, count_);
  model_.backend().adamw(master_, grad, m_.t(), v_.t(), compute, segments_, h);
}

}  // namespace llm
