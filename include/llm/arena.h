// Arenas: every buffer the engine allocates on a device comes from a named arena (params, grads,
// optimizer, activations, workspace, kv-cache) that counts live bytes and records the peak, so
// memory use is measurable on the CPU backend exactly as it will be on a GPU.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <utility>

#include "llm/tensor.h"

namespace llm {

class Backend;
class Arena;

// Owns one allocation; returns it to its arena when destroyed. Move-only.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Arena* arena, void* ptr, size_t bytes) : arena_(arena), ptr_(ptr), bytes_(bytes) {}
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void reset();

 private:
  void swap(Buffer& o) noexcept {
    std::swap(arena_, o.arena_);
    std::swap(ptr_, o.ptr_);
    std::swap(bytes_, o.bytes_);
  }
  Arena* arena_ = nullptr;
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A buffer together with the tensor view over all of it.
class OwnedTensor {
 public:
  OwnedTensor() = default;
  OwnedTensor(Buffer buf, Tensor view) : buf_(std::move(buf)), view_(view) {}
  const Tensor& t() const { return view_; }
  const Tensor* operator->() const { return &view_; }
  operator const Tensor&() const { return view_; }  // NOLINT: a view is what ops take
  bool empty() const { return view_.empty(); }
  void reset() {
    buf_.reset();
    view_ = Tensor();
  }

 private:
  Buffer buf_;
  Tensor view_;
};

class Arena {
 public:
  Arena(Backend& backend, std::string name) : backend_(&backend), name_(std::move(name)) {}
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  Buffer alloc(size_t bytes);
  // A contiguous tensor; its contents are unspecified.
  OwnedTensor tensor(DType dtype, std::initializer_list<int64_t> shape);
  OwnedTensor zeros(DType dtype, std::initializer_list<int64_t> shape);

  const std::string& name() const { return name_; }
  size_t live_bytes() const { return live_; }
  size_t peak_bytes() const { return peak_; }
  void reset_peak() { peak_ = live_; }
  Backend& backend() const { return *backend_; }

 private:
  friend class Buffer;
  void release(void* ptr, size_t bytes) noexcept;

  Backend* backend_;
  std::string name_;
  size_t live_ = 0;
  size_t peak_ = 0;
};

}  // namespace llm
