// describe_nonfinite and FiniteWatch: see finite_check.h.
#include "model/finite_check.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "llm/dtype.h"
#include "llm/error.h"

namespace llm {

namespace {
// The values of t on the host, in fp32 (f16 and bf16 widen exactly).
std::vector<float> download_f32(Backend& be, const Tensor& t) {
  const auto n = static_cast<size_t>(t.numel());
  std::vector<float> out(n);
  if (t.dtype() == DType::F32) {
    be.download(t, out.data());
    return out;
  }
  std::vector<uint16_t> bits(n);
  be.download(t, bits.data());
  for (size_t i = 0; i < n; ++i)
    out[i] = t.dtype() == DType::F16 ? f16_bits_to_f32(bits[i]) : bf16_bits_to_f32(bits[i]);
  return out;
}
}  // namespace

std::string describe_nonfinite(Backend& be, const Tensor& t) {
  if (t.numel() == 0 || std::isfinite(be.sum(t))) return "";
  const std::vector<float> v = download_f32(be, t);
  int64_t bad = 0, first = -1;
  float largest = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isfinite(v[i])) {
      largest = std::max(largest, std::abs(v[i]));
    } else if (bad++ == 0) {
      first = static_cast<int64_t>(i);
    }
  }
  if (bad == 0) return "";  // the sum overflowed a double: not a non-finite value
  const int64_t cols = t.ndim() == 2 ? t.size(1) : t.numel();
  std::string s =
      cat(t.shape_str(), ": ", bad, " of ", t.numel(), " values are not finite, the first at row ", first / cols,
          " column ", first % cols, " (", v[static_cast<size_t>(first)], "); the largest finite |value| is ", largest);
  if (t.dtype() == DType::F16) s += " (f16 holds |values| up to 65504)";
  return s;
}

void FiniteWatch::check(int layer, const char* tensor, const Tensor& t) {
  if (found()) return;
  const std::string d = describe_nonfinite(*be_, t);
  if (d.empty()) return;
  first_ = layer >= 0 && layer < layers_ ? cat("layer ", layer, " (model.layers.", layer, ") ", tensor, " ", d)
                                         : cat(tensor, " ", d);
}

BlockProbe FiniteWatch::layer(int l) {
  return [this, l](const char* tensor, const Tensor& t) { check(l, tensor, t); };
}

std::string nonfinite_advice(const FiniteWatch& watch, DType compute) {
  if (!watch.found()) return "every value of a re-run of the forward was finite";
  std::string s = cat("the first non-finite forward value is at ", watch.first());
  if (compute == DType::F16) s += ". f16 overflows beyond 65504: use bf16 (same range as fp32) or fp32";
  return s;
}

}  // namespace llm
