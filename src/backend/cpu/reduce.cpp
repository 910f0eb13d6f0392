// sum / sum_squares on the CPU: fixed blocks summed in double, blocks added in order, so the
// result is the same for every thread count.
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace llm {

namespace {

constexpr int64_t kBlock = 4096;

LLM_CPU_CLONES double block_sum(const float* x, int64_t n, bool squares) {
  // Eight independent partial sums: vectorisable without reassociating a single chain.
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      const double v = x[i + j];
      acc[j] += squares ? v * v : v;
    }
  }
  for (; i < n; ++i) acc[0] += squares ? double(x[i]) * x[i] : double(x[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double reduce(const Tensor& x, bool squares) {
  const int64_t n = x.numel(), blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks));
  const size_t e = dtype_size(x.dtype());
#pragma omp parallel if (n > 65536)
  {
    std::vector<float> buf(kBlock);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t i0 = b * kBlock, len = std::min(kBlock, n - i0);
      const float* p = x.ptr<float>() + i0;
      if (x.dtype() != DType::F32) {
        cpu::to_f32(x.ptr<char>() + i0 * int64_t(e), x.dtype(), buf.data(), len);
        p = buf.data();
      }
      partial[static_cast<size_t>(b)] = block_sum(p, len, squares);
    }
  }
  double total = 0.0;
  for (double v : partial) total += v;
  return total;
}

}  // namespace

double CpuBackend::do_sum(const Tensor& x) { return reduce(x, false); }
double CpuBackend::do_sum_squares(const Tensor& x) { return reduce(x, true); }

}  // namespace llm
