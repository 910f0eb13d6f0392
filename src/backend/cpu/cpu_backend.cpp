// CpuBackend: construction, memory and copies. Each op family has its own file (rmsnorm.cpp, ...).
#include "backend/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "backend/cpu/attention_rows.h"
#include "backend/cpu/cpu_util.h"
#include "backend/cpu/onednn_gemm.h"

namespace llm {

namespace {
constexpr size_t kAlign = 64;
constexpr size_t kHugePage = size_t{2} << 20;
}  // namespace

CpuBackend::CpuBackend(int threads)
    : threads_(threads > 0 ? threads : omp_get_num_procs()), attention_bf16_(cpu::attention_bf16_supported()) {
  // OpenMP and OpenBLAS (its OpenMP build) share this count: our loops and sgemm never run at once,
  // so one pool of `threads` workers serves both.
  omp_set_num_threads(threads_);
  openblas_set_num_threads(threads_);
  onednn_ = std::make_unique<cpu::OnednnGemm>();
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::name() const { return cat("cpu (", threads_, threads_ == 1 ? " thread)" : " threads)"); }

void* CpuBackend::raw_alloc(size_t bytes) {
  // Large buffers (weights above all) start on a 2 MiB boundary and ask for transparent huge
  // pages: fewer TLB misses measured up to 1.7x the read bandwidth of a weight stream. madvise
  // is a hint; where it fails the buffer simply keeps small pages.
  if (bytes >= kHugePage) {
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p != nullptr) madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
  }
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  return std::aligned_alloc(kAlign, rounded);
}

float* CpuBackend::workspace(size_t floats) {
  if (floats > workspace_floats_) {
    workspace_.reset();  // release before allocating the larger one
    workspace_.reset(new float[floats]);
    workspace_floats_ = floats;
  }
  return workspace_.get();
}

void CpuBackend::raw_free(void* ptr, size_t /*bytes*/) noexcept { std::free(ptr); }

void CpuBackend::do_upload(const Tensor& dst, const void* host_src) { std::memcpy(dst.data(), host_src, dst.nbytes()); }

void CpuBackend::do_download(const Tensor& src, void* host_dst) { std::memcpy(host_dst, src.data(), src.nbytes()); }

void CpuBackend::do_copy(const Tensor& src, const Tensor& dst) {
  // Walk up to 3 outer dims; the innermost row is converted in one call.
  const Tensor s4 = src.ndim() == 1 ? src.view({1, 1, 1, src.size(0)}) : src;
  const Tensor d4 = dst.ndim() == 1 ? dst.view({1, 1, 1, dst.size(0)}) : dst;
  const int nd = s4.ndim();
  int64_t outer[3] = {1, 1, 1}, ss[3] = {0, 0, 0}, ds[3] = {0, 0, 0};
  for (int d = 0; d < nd - 1; ++d) {
    outer[3 - (nd - 1) + d] = s4.size(d);
    ss[3 - (nd - 1) + d] = s4.stride(d);
    ds[3 - (nd - 1) + d] = d4.stride(d);
  }
  const int64_t cols = s4.size(-1);
  const size_t ses = dtype_size(src.dtype()), des = dtype_size(dst.dtype());
  const bool same = src.dtype() == dst.dtype();
  const int64_t rows = outer[0] * outer[1] * outer[2];
#pragma omp parallel if (rows * cols > 65536)
  {
    std::vector<float> tmp(same ? 0 : static_cast<size_t>(cols));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i0 = r / (outer[1] * outer[2]), i1 = (r / outer[2]) % outer[1], i2 = r % outer[2];
      const char* sp = s4.ptr<char>() + (i0 * ss[0] + i1 * ss[1] + i2 * ss[2]) * int64_t(ses);
      char* dp = d4.ptr<char>() + (i0 * ds[0] + i1 * ds[1] + i2 * ds[2]) * int64_t(des);
      if (same) {
        std::memmove(dp, sp, static_cast<size_t>(cols) * ses);
      } else {
        cpu::to_f32(sp, src.dtype(), tmp.data(), cols);
        cpu::from_f32(tmp.data(), dp, dst.dtype(), cols);
      }
    }
  }
}

void CpuBackend::do_zero(const Tensor& t) { std::memset(t.data(), 0, t.nbytes()); }

void CpuBackend::do_fill(const Tensor& t, float value) {
  const int64_t n = t.numel();
  if (t.dtype() == DType::I32) {
    auto* p = t.ptr<int32_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<int32_t>(value);
    return;
  }
  dispatch_float(t.dtype(), "fill", [&]<class T>() {
    const T v = from_f32<T>(value);
    T* p = t.ptr<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  });
}

}  // namespace llm
