// Helpers for tests that run under the CUDA emulator and, unchanged, against a real GPU.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "cuda_compat.cuh"

namespace llm::test {

inline bool cuda_device_present() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) (void)cudaGetLastError();
  return e == cudaSuccess && count > 0;
}

// Skips the test with a message when no GPU is present (never under the emulator).
#define LLM_REQUIRE_CUDA_DEVICE()                                                              \
  do {                                                                                         \
    if (!::llm::test::cuda_device_present()) GTEST_SKIP() << "no CUDA device on this machine"; \
  } while (0)

// The device's compute capability as 10 * major + minor (0 when there is none): tests skip what
// the card cannot run, since an illegal instruction would poison the context for the rest of
// the binary.
inline int cuda_device_sm() {
  int device = 0, major = 0, minor = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return major * 10 + minor;
}

#if LLM_CUDA_EMULATED
// Emulator settings changed for one scope (a test), restored on exit however it ends.
class ScopedEmuSettings {
 public:
  template <class F>
  explicit ScopedEmuSettings(F&& change) : saved_(::llm::emu::emu_settings()) {
    ::llm::emu::EmuSettings s = saved_;
    change(s);
    ::llm::emu::set_emu_settings(s);
  }
  ~ScopedEmuSettings() { ::llm::emu::set_emu_settings(saved_); }
  ScopedEmuSettings(const ScopedEmuSettings&) = delete;
  ScopedEmuSettings& operator=(const ScopedEmuSettings&) = delete;

 private:
  ::llm::emu::EmuSettings saved_;
};
#endif

// A device buffer of n T's: cudaMalloc'd, freed on scope exit, filled and read through copies.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n) : n_(n) { LLM_CUDA_CHECK(cudaMalloc(&ptr_, n * sizeof(T))); }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { (void)cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    LLM_CUDA_CHECK(cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  void zero() { LLM_CUDA_CHECK(cudaMemset(ptr_, 0, n_ * sizeof(T))); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    LLM_CUDA_CHECK(cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* ptr_ = nullptr;
  size_t n_;
};

}  // namespace llm::test
