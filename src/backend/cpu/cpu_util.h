// Helpers shared by the CPU ops: bulk dtype conversion, fp32 views of any float tensor, a
// vectorisable exp, and the clone attribute that compiles hot loops for AVX2 and AVX-512 with a
// portable default, chosen at load time.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

#include "llm/tensor.h"

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define LLM_CPU_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define LLM_CPU_CLONES
#endif

namespace llm::cpu {

// Below this many elements of work an op runs on the calling thread: waking the OpenMP team costs
// more than it saves (decode steps are made of such ops).
constexpr int64_t kParallelMinWork = int64_t(1) << 15;

// dst[i] = float(src[i]) for a buffer of dtype t (f32, f16 or bf16).
void to_f32(const void* src, DType t, float* dst, int64_t n);

// acc[i] += x[i] for i < n, x of dtype t (f32, f16 or bf16) widened to fp32.
void add_widened(const void* x, DType t, float* acc, int64_t n);
// acc[i] += a[i] * b[i] * s for i < n, a and b of dtype ta and tb widened to fp32.
void add_widened_product(const void* a, DType ta, const void* b, DType tb, float s, float* acc, int64_t n);

// Every id of ids [N] i32 (read on the host, before anything is written) indexes a row of a
// table of `vocab` rows; else op's error names the id and its position.
void check_ids_in_vocab(const Tensor& ids, int64_t vocab, const char* op);
// dst[i] = round_to_t(src[i]).
void from_f32(const float* src, void* dst, DType t, int64_t n);

// A read-only fp32 matrix view of a 2-D tensor with dense rows: the tensor's own memory when it
// is f32, else a converted contiguous copy.
struct F32Matrix {
  const float* data = nullptr;
  int64_t rows = 0, cols = 0, ld = 0;
  std::vector<float> storage;
};
F32Matrix f32_matrix(const Tensor& t, const char* op, const char* what);

// Address of element (i0, i1, ...) of t in bytes.
inline char* at(const Tensor& t, int64_t i0) {
  return t.ptr<char>() + i0 * t.stride(0) * int64_t(dtype_size(t.dtype()));
}
inline char* at(const Tensor& t, int64_t i0, int64_t i1) {
  return t.ptr<char>() + (i0 * t.stride(0) + i1 * t.stride(1)) * int64_t(dtype_size(t.dtype()));
}
inline char* at(const Tensor& t, int64_t i0, int64_t i1, int64_t i2) {
  return t.ptr<char>() + (i0 * t.stride(0) + i1 * t.stride(1) + i2 * t.stride(2)) * int64_t(dtype_size(t.dtype()));
}

// exp(x) to about 2 ulp for x in [-87, 88], 0 below, written so loops over it vectorise
// (std::exp calls do not). Cephes' polynomial after reduction by ln 2.
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float t = x * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: rounds to an integer
  const float n = t - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = std::bit_cast<int32_t>(t) - 0x4B400000;  // the integer n
  return p * std::bit_cast<float>((e + 127) << 23);
}

}  // namespace llm::cpu
