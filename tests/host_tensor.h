// HostTensor: a tensor in host memory holding given values in any storage dtype, for feeding
// CPU ops (and, through upload/download, device ops) in tests.
#pragma once

#include <cstring>
#include <initializer_list>
#include <vector>

#include "llm/dtype.h"
#include "llm/tensor.h"

namespace llm::test {

class HostTensor {
 public:
  HostTensor(DType dt, std::initializer_list<int64_t> shape, const std::vector<float>& values = {})
      : t_(nullptr, dt, shape) {
    bytes_.resize(t_.nbytes() + 64);
    t_ = Tensor(bytes_.data(), dt, shape);
    if (!values.empty()) set(values);
  }
  HostTensor(DType dt, std::initializer_list<int64_t> shape, const std::vector<int32_t>& ids) : t_(nullptr, dt, shape) {
    bytes_.resize(t_.nbytes() + 64);
    t_ = Tensor(bytes_.data(), dt, shape);
    std::memcpy(bytes_.data(), ids.data(), ids.size() * 4);
  }
  void set(const std::vector<float>& v) {
    for (size_t i = 0; i < v.size(); ++i) {
      switch (t_.dtype()) {
        case DType::F32: t_.ptr<float>()[i] = v[i]; break;
        case DType::F16: t_.ptr<uint16_t>()[i] = f32_to_f16_bits(v[i]); break;
        case DType::BF16: t_.ptr<uint16_t>()[i] = f32_to_bf16_bits(v[i]); break;
        default: break;
      }
    }
  }
  std::vector<float> values() const {
    std::vector<float> v(static_cast<size_t>(t_.numel()));
    for (size_t i = 0; i < v.size(); ++i) {
      switch (t_.dtype()) {
        case DType::F32: v[i] = t_.ptr<float>()[i]; break;
        case DType::F16: v[i] = f16_bits_to_f32(t_.ptr<uint16_t>()[i]); break;
        case DType::BF16: v[i] = bf16_bits_to_f32(t_.ptr<uint16_t>()[i]); break;
        default: break;
      }
    }
    return v;
  }
  const Tensor& t() const { return t_; }
  operator const Tensor&() const { return t_; }  // NOLINT

 private:
  std::vector<unsigned char> bytes_;
  Tensor t_;
};

// v rounded through dtype dt, as the op will see it.
inline std::vector<float> rounded(const std::vector<float>& v, DType dt) {
  std::vector<float> r(v);
  for (auto& x : r) {
    if (dt == DType::F16) x = f16_bits_to_f32(f32_to_f16_bits(x));
    if (dt == DType::BF16) x = bf16_bits_to_f32(f32_to_bf16_bits(x));
  }
  return r;
}

// Relative tolerance of one rounding into dt (half an ulp), with headroom for fp32 math.
inline double storage_tol(DType dt) {
  switch (dt) {
    case DType::F16: return 2e-3;
    case DType::BF16: return 1.6e-2;
    default: return 2e-5;
  }
}

}  // namespace llm::test
