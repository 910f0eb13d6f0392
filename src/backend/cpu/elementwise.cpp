// add / scale / dropout on the CPU.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace llm {

namespace {
LLM_CPU_CLONES void add_row(const float* a, const float* b, float* o, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = a[i] + b[i];
}
LLM_CPU_CLONES void scale_row(float* x, float s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}
constexpr int64_t kChunk = 4096;
}  // namespace

void CpuBackend::do_add(const Tensor& a, const Tensor& b, const Tensor& out) {
  const int64_t n = a.numel(), chunks = (n + kChunk - 1) / kChunk;
  const size_t ea = dtype_size(a.dtype()), eb = dtype_size(b.dtype()), eo = dtype_size(out.dtype());
#pragma omp parallel if (n > 65536)
  {
    std::vector<float> x(kChunk), y(kChunk);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
      cpu::to_f32(a.ptr<char>() + i0 * int64_t(ea), a.dtype(), x.data(), len);
      cpu::to_f32(b.ptr<char>() + i0 * int64_t(eb), b.dtype(), y.data(), len);
      add_row(x.data(), y.data(), x.data(), len);
      cpu::from_f32(x.data(), out.ptr<char>() + i0 * int64_t(eo), out.dtype(), len);
    }
  }
}

void CpuBackend::do_scale(const Tensor& x, float s) {
  const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
  const size_t e = dtype_size(x.dtype());
#pragma omp parallel if (n > 65536)
  {
    std::vector<float> buf(kChunk);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
      char* p = x.ptr<char>() + i0 * int64_t(e);
      cpu::to_f32(p, x.dtype(), buf.data(), len);
      scale_row(buf.data(), s, len);
      cpu::from_f32(buf.data(), p, x.dtype(), len);
    }
  }
}

void CpuBackend::do_dropout(const Tensor& x, float p, uint64_t seed) {
  const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
  const size_t e = dtype_size(x.dtype());
  const auto threshold = static_cast<uint32_t>(static_cast<double>(p) * 16777216.0);
  const float inv_keep = 1.0f / (1.0f - p);
#pragma omp parallel if (n > 65536)
  {
    std::vector<float> buf(kChunk);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
      char* ptr = x.ptr<char>() + i0 * int64_t(e);
      cpu::to_f32(ptr, x.dtype(), buf.data(), len);
      for (int64_t k = 0; k < len; ++k) {
        uint64_t h = seed ^ (static_cast<uint64_t>(i0 + k) * 0x9e3779b97f4a7c15ull);  // splitmix64
        h += 0x9e3779b97f4a7c15ull;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
        h ^= h >> 31;
        buf[size_t(k)] = static_cast<uint32_t>(h >> 40) >= threshold ? buf[size_t(k)] * inv_keep : 0.0f;
      }
      cpu::from_f32(buf.data(), ptr, x.dtype(), len);
    }
  }
}

}  // namespace llm
