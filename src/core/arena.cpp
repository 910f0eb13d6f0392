#include "llm/arena.h"

#include <algorithm>

#include "llm/backend.h"

namespace llm {

Buffer::~Buffer() { reset(); }

void Buffer::reset() {
  if (arena_ != nullptr && ptr_ != nullptr) arena_->release(ptr_, bytes_);
  arena_ = nullptr;
  ptr_ = nullptr;
  bytes_ = 0;
}

Buffer Arena::alloc(size_t bytes) {
  if (bytes == 0) return Buffer();
  void* p = backend_->raw_alloc(bytes);
  LLM_CHECK(p != nullptr, "arena ", name_, ": out of memory allocating ", bytes, " bytes on ", backend_->name(), " (",
            live_, " bytes live in this arena)");
  live_ += bytes;
  peak_ = std::max(peak_, live_);
  return Buffer(this, p, bytes);
}

void Arena::release(void* ptr, size_t bytes) noexcept {
  backend_->raw_free(ptr, bytes);
  live_ -= bytes;
}

OwnedTensor Arena::tensor(DType dtype, std::initializer_list<int64_t> shape) {
  Tensor probe(nullptr, dtype, shape, backend_->device());
  Buffer buf = alloc(probe.nbytes());
  Tensor view(buf.data(), dtype, shape, backend_->device());
  return OwnedTensor(std::move(buf), view);
}

OwnedTensor Arena::zeros(DType dtype, std::initializer_list<int64_t> shape) {
  OwnedTensor t = tensor(dtype, shape);
  if (!t.empty()) backend_->zero(t.t());
  return t;
}

}  // namespace llm
