#include "llm/tensor.h"

#include <sstream>

namespace llm {

namespace {
void fill_contiguous_strides(std::array<int64_t, Tensor::kMaxDims>& stride,
                             const std::array<int64_t, Tensor::kMaxDims>& shape, int ndim) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    stride[static_cast<size_t>(d)] = s;
    s *= shape[static_cast<size_t>(d)];
  }
}
}  // namespace

Tensor::Tensor(void* data, DType dtype, std::initializer_list<int64_t> shape, DeviceKind device)
    : Tensor(data, dtype, shape.begin(), static_cast<int>(shape.size()), device) {}

Tensor::Tensor(void* data, DType dtype, const int64_t* shape, int ndim, DeviceKind device)
    : data_(data), dtype_(dtype), device_(device), ndim_(ndim) {
  LLM_CHECK(ndim >= 0 && ndim <= kMaxDims, "tensor: ", ndim, " dims, at most ", kMaxDims, " supported");
  for (int d = 0; d < ndim; ++d) {
    LLM_CHECK(shape[d] >= 0, "tensor: negative size ", shape[d], " in dim ", d);
    shape_[static_cast<size_t>(d)] = shape[d];
  }
  fill_contiguous_strides(stride_, shape_, ndim_);
}

int Tensor::axis(int d) const {
  const int a = d < 0 ? d + ndim_ : d;
  LLM_CHECK(a >= 0 && a < ndim_, "tensor: dim ", d, " out of range for ", shape_str());
  return a;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int d = 0; d < ndim_; ++d) n *= shape_[static_cast<size_t>(d)];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t s = 1;
  for (int d = ndim_ - 1; d >= 0; --d) {
    const auto u = static_cast<size_t>(d);
    if (shape_[u] != 1 && stride_[u] != s) return false;
    s *= shape_[u];
  }
  return true;
}

bool Tensor::rows_contiguous() const {
  int64_t s = 1;
  for (int d = ndim_ - 1; d >= 1; --d) {
    const auto u = static_cast<size_t>(d);
    if (shape_[u] != 1 && stride_[u] != s) return false;
    s *= shape_[u];
  }
  return ndim_ == 0 || shape_[0] <= 1 || stride_[0] >= s;
}

std::string Tensor::shape_str() const {
  std::ostringstream o;
  o << '[';
  for (int d = 0; d < ndim_; ++d) o << (d ? ", " : "") << shape_[static_cast<size_t>(d)];
  o << "] " << dtype_name(dtype_);
  return o.str();
}

Tensor Tensor::view(std::initializer_list<int64_t> shape) const {
  LLM_CHECK(is_contiguous(), "tensor.view: ", shape_str(), " is not contiguous");
  Tensor t(data_, dtype_, shape, device_);
  LLM_CHECK(t.numel() == numel(), "tensor.view: cannot view ", shape_str(), " as ", t.shape_str());
  return t;
}

Tensor Tensor::slice(int d, int64_t begin, int64_t end) const {
  const auto a = static_cast<size_t>(axis(d));
  LLM_CHECK(0 <= begin && begin <= end && end <= shape_[a], "tensor.slice: [", begin, ", ", end,
            ") out of range for dim ", d, " of ", shape_str());
  Tensor t = *this;
  if (data_ != nullptr) {
    t.data_ = static_cast<char*>(data_) + begin * stride_[a] * static_cast<int64_t>(dtype_size(dtype_));
  }
  t.shape_[a] = end - begin;
  return t;
}

Tensor Tensor::select(int64_t index) const {
  Tensor s = slice(0, index, index + 1);
  Tensor t = s;
  t.ndim_ = ndim_ - 1;
  for (int d = 0; d < t.ndim_; ++d) {
    t.shape_[static_cast<size_t>(d)] = s.shape_[static_cast<size_t>(d + 1)];
    t.stride_[static_cast<size_t>(d)] = s.stride_[static_cast<size_t>(d + 1)];
  }
  return t;
}

Tensor Tensor::range(int64_t begin, int64_t count) const {
  LLM_CHECK(is_contiguous(), "tensor.range: ", shape_str(), " is not contiguous");
  LLM_CHECK(begin >= 0 && count >= 0 && begin + count <= numel(), "tensor.range: [", begin, ", ", begin + count,
            ") out of range for ", shape_str());
  void* p = data_ ? static_cast<char*>(data_) + begin * static_cast<int64_t>(dtype_size(dtype_)) : nullptr;
  return Tensor(p, dtype_, {count}, device_);
}

Tensor Tensor::flatten(int d0, int d1) const {
  const int a0 = axis(d0), a1 = axis(d1);
  LLM_CHECK(a0 <= a1, "tensor.flatten: dims ", d0, "..", d1, " are not in order");
  Tensor t = *this;
  int64_t merged = 1;
  for (int d = a0; d <= a1; ++d) {
    const auto u = static_cast<size_t>(d);
    if (d < a1) {
      LLM_CHECK(stride_[u] == stride_[u + 1] * shape_[u + 1], "tensor.flatten: dims ", d0, "..", d1, " of ",
                shape_str(), " are not contiguous with each other");
    }
    merged *= shape_[u];
  }
  t.ndim_ = ndim_ - (a1 - a0);
  t.shape_[static_cast<size_t>(a0)] = merged;
  t.stride_[static_cast<size_t>(a0)] = stride_[static_cast<size_t>(a1)];
  for (int d = a0 + 1; d < t.ndim_; ++d) {
    t.shape_[static_cast<size_t>(d)] = shape_[static_cast<size_t>(d + a1 - a0)];
    t.stride_[static_cast<size_t>(d)] = stride_[static_cast<size_t>(d + a1 - a0)];
  }
  return t;
}

Tensor Tensor::unflatten(int d, int64_t outer) const {
  const int a = axis(d);
  LLM_CHECK(ndim_ < kMaxDims, "tensor.unflatten: ", shape_str(), " already has ", kMaxDims, " dims");
  const auto u = static_cast<size_t>(a);
  LLM_CHECK(outer > 0 && shape_[u] % outer == 0, "tensor.unflatten: dim ", d, " of ", shape_str(),
            " is not divisible by ", outer);
  Tensor t = *this;
  t.ndim_ = ndim_ + 1;
  for (int k = ndim_ - 1; k > a; --k) {
    t.shape_[static_cast<size_t>(k + 1)] = shape_[static_cast<size_t>(k)];
    t.stride_[static_cast<size_t>(k + 1)] = stride_[static_cast<size_t>(k)];
  }
  const int64_t inner = shape_[u] / outer;
  t.shape_[u] = outer;
  t.stride_[u] = stride_[u] * inner;
  t.shape_[u + 1] = inner;
  t.stride_[u + 1] = stride_[u];
  return t;
}

void check_shape(const Tensor& t, std::initializer_list<int64_t> shape, const char* op, const char* what) {
  bool ok = t.ndim() == static_cast<int>(shape.size());
  int d = 0;
  for (int64_t s : shape) {
    if (!ok) break;
    ok = t.size(d++) == s;
  }
  if (!ok) {
    std::ostringstream want;
    want << '[';
    d = 0;
    for (int64_t s : shape) want << (d++ ? ", " : "") << s;
    want << ']';
    fail(op, ": ", what, " is ", t.shape_str(), ", expected ", want.str());
  }
}

void check_dtype(const Tensor& t, DType dtype, const char* op, const char* what) {
  LLM_CHECK(t.dtype() == dtype, op, ": ", what, " is ", dtype_name(t.dtype()), ", expected ", dtype_name(dtype));
}

}  // namespace llm
