// Tensor: a non-owning view of memory on one device: data pointer, dtype, up to 4 dims, strides
// in elements. Ops take views; ownership lives in arenas (arena.h).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "llm/dtype.h"
#include "llm/error.h"

namespace llm {

enum class DeviceKind : uint8_t { CPU, CUDA };

class Tensor {
 public:
  static constexpr int kMaxDims = 4;

  Tensor() = default;
  // A contiguous row-major view.
  Tensor(void* data, DType dtype, std::initializer_list<int64_t> shape, DeviceKind device = DeviceKind::CPU);
  Tensor(void* data, DType dtype, const int64_t* shape, int ndim, DeviceKind device = DeviceKind::CPU);

  void* data() const { return data_; }
  DType dtype() const { return dtype_; }
  DeviceKind device() const { return device_; }
  int ndim() const { return ndim_; }
  int64_t size(int d) const { return shape_[static_cast<size_t>(axis(d))]; }
  int64_t stride(int d) const { return stride_[static_cast<size_t>(axis(d))]; }
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool empty() const { return data_ == nullptr; }
  bool is_contiguous() const;
  // Contiguous except (possibly) the outermost dimension: rows of equal length that may sit
  // further apart, as a slice of a wider fused buffer does.
  bool rows_contiguous() const;
  std::string shape_str() const;  // "[2, 3, 4] bf16"

  template <class T>
  T* ptr() const {
    return static_cast<T*>(data_);
  }

  // A contiguous view with a new shape and the same number of elements.
  Tensor view(std::initializer_list<int64_t> shape) const;
  // Elements [begin, end) of dimension d, sharing memory.
  Tensor slice(int d, int64_t begin, int64_t end) const;
  // The index-th entry of dimension 0, one dimension fewer.
  Tensor select(int64_t index) const;
  // A flat range [begin, begin+count) of a contiguous tensor, as 1-D.
  Tensor range(int64_t begin, int64_t count) const;
  // Same memory, dims d0..d1 (inclusive) merged; they must be contiguous with each other.
  Tensor flatten(int d0, int d1) const;
  // Same memory, dimension d split into (outer, size(d)/outer).
  Tensor unflatten(int d, int64_t outer) const;

 private:
  int axis(int d) const;

  void* data_ = nullptr;
  DType dtype_ = DType::F32;
  DeviceKind device_ = DeviceKind::CPU;
  int ndim_ = 0;
  std::array<int64_t, kMaxDims> shape_{};
  std::array<int64_t, kMaxDims> stride_{};
};

// Throws "<op>: <what> is <shape>, expected <...>" unless t has exactly the given shape.
void check_shape(const Tensor& t, std::initializer_list<int64_t> shape, const char* op, const char* what);
void check_dtype(const Tensor& t, DType dtype, const char* op, const char* what);

}  // namespace llm
