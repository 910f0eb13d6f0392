// Finding where a forward first holds a value that is not finite (inf or NaN): the diagnosis
// llmtrain and llmgen give when a loss or a logit is not finite, naming the layer and tensor.
// Nothing here runs on the fast path: a caller re-runs the forward with a FiniteWatch's probes
// only after it has seen a non-finite result.
#pragma once

#include <string>

#include "llm/backend.h"
#include "llm/model.h"
#include "model/qwen2_block.h"

namespace llm {

// "" when every value of t (contiguous, on be's device) is finite (one Backend::sum); otherwise
// its shape and dtype, how many values are not finite, the first (row and column of a 2-D t), the
// largest finite |value| and, for f16, its limit (t is then downloaded).
std::string describe_nonfinite(Backend& be, const Tensor& t);

// Records the first tensor, in the order they are handed over, that holds a non-finite value.
class FiniteWatch {
 public:
  FiniteWatch(Backend& be, int64_t num_layers) : be_(&be), layers_(num_layers) {}
  // Tensor `tensor` of layer `layer` (a ForwardProbe's arguments: outside the layers, layer < 0
  // or >= L, only the tensor is named); checked until one is found.
  void check(int layer, const char* tensor, const Tensor& t);
  // The probe of layer l's block_forward.
  BlockProbe layer(int l);
  bool found() const { return !first_.empty(); }
  // "layer 3 (model.layers.3) mlp.down_proj out [7, 64] f16: ...", or "" when all was finite.
  const std::string& first() const { return first_; }

 private:
  Backend* be_;
  int64_t layers_;
  std::string first_;
};

// The sentence llmtrain and llmgen add to a non-finite loss or logit: the watch's finding and,
// for f16, what to do about it; or that every forward value was finite.
std::string nonfinite_advice(const FiniteWatch& watch, DType compute);

}  // namespace llm
