// Many-token matmul on ggml Q8_0 / Q4_0 blocks: the int8 path (int8_dot_kernels.h, each kernel
// this CPU runs) against the fp32 path it replaced (a tile of 64 rows decoded to fp32, then
// OpenBLAS sgemm; decoded here by the io module's ggml_dequantize), at the Qwen2.5-0.5B MLP shapes, for several token
// counts: where the int8 path starts to pay (kInt8DotMinTokens) and how much it gains at prefill sizes;
// on AVX-512 also the fp32 kernel straight from the blocks that decode and batched decode take.
//   int8_dot [--threads T] [--tokens N,N,...]
// Times are the CPU time of the calling thread (one thread: the default), the fastest of 7 calls:
// on a shared machine this leaves out the time other jobs hold the core, which wall time would
// count (it still includes their cache and memory traffic). With T > 1 the times are wall times.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "backend/cpu/ggml_kernels.h"
#include "backend/cpu/int8_dot_kernels.h"
#include "llm/ggml_quant.h"

namespace {

using namespace llm;

double now(bool cpu_time) {
  if (!cpu_time) return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

double best_of(int reps, bool cpu_time, const std::function<void()>& fn) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = now(cpu_time);
    fn();
    best = std::min(best, now(cpu_time) - t0);
  }
  return best;
}

void run(GgmlType type, int64_t rows, int64_t cols, int64_t n, bool cpu_time) {
  std::mt19937 g(1);
  std::normal_distribution<float> nd;
  std::vector<float> w(static_cast<size_t>(rows * cols)), x(static_cast<size_t>(n * cols)), y(size_t(n * rows));
  for (float& v : w) v = nd(g) * 0.1f;
  for (float& v : x) v = nd(g);
  const size_t rb = ggml_row_bytes(type, cols);
  std::vector<uint8_t> blocks(rb * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) ggml_quantize(type, w.data() + r * cols, cols, blocks.data() + size_t(r) * rb);
  const QuantizedMatrix m{QuantKind::Ggml, rows, cols, 32, Tensor(blocks.data(), DType::U8, {rows, int64_t(rb)}),
                          Tensor(),        type};
  const double flop = 2.0 * double(rows * cols * n);
  std::vector<float> tile(static_cast<size_t>(64 * cols));
  const double t_sgemm = best_of(7, cpu_time, [&] {
    for (int64_t r0 = 0; r0 < rows; r0 += 64) {
      const int64_t nr = std::min<int64_t>(64, rows - r0);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < nr; ++r)
        ggml_dequantize(type, blocks.data() + size_t(r0 + r) * rb, cols, tile.data() + r * cols);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(n), blasint(nr), blasint(cols), 1.0f, x.data(),
                  blasint(cols), tile.data(), blasint(cols), 0.0f, y.data() + r0, blasint(rows));
    }
  });
  std::printf("%-5s %5lldx%-5lld N=%-4lld  decode+sgemm %6.1f GFLOP/s", std::string(ggml_type_name(type)).c_str(),
              (long long)rows, (long long)cols, (long long)n, flop / t_sgemm / 1e9);
  for (const auto isa : {cpu::Int8DotIsa::Portable, cpu::Int8DotIsa::Avx2, cpu::Int8DotIsa::Avx512Vnni}) {
    if (!cpu::int8_dot_isa_supported(isa) || (isa == cpu::Int8DotIsa::Portable && n > 16)) continue;
    const double t = best_of(7, cpu_time, [&] { cpu::int8_dot_matmul(x.data(), n, m, y.data(), rows, isa); });
    std::printf(" | %s %6.1f (%.2fx)", cpu::int8_dot_isa_name(isa), flop / t / 1e9, t_sgemm / t);
  }
  if (cpu::int8_dot_isa_supported(cpu::Int8DotIsa::Avx512Vnni) && cpu::ggml_gemv_avx512_supports(type) && n <= 64) {
    // The fp32 kernel straight from the blocks (ggml_gemv_avx512.cpp), which decode takes.
    const double t = best_of(7, cpu_time, [&] {
#pragma omp parallel for schedule(static)
      for (int64_t r0 = 0; r0 < rows; r0 += 16) {
        cpu::ggml_gemv_avx512(type, blocks.data(), int64_t(rb), r0, std::min(rows, r0 + 16), cols, x.data(), n,
                              y.data(), rows);
      }
    });
    std::printf(" | blocks fp32 %6.1f (%.2fx)", flop / t / 1e9, t_sgemm / t);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1;
  std::vector<int64_t> tokens = {1, 2, 3, 4, 8, 16, 64, 512};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") {
      threads = std::stoi(argv[i + 1]);
    } else if (a == "--tokens") {
      tokens.clear();
      std::stringstream ss(argv[i + 1]);
      for (std::string t; std::getline(ss, t, ',');) tokens.push_back(std::stoll(t));
    } else {
      std::fprintf(stderr, "int8_dot: unknown option %s (--threads T, --tokens N,N,...)\n", argv[i]);
      return 2;
    }
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
  std::printf("GFLOP/s (2 x rows x cols x N / time), %d thread(s), %s time, fastest of 7 calls\n", threads,
              threads == 1 ? "thread CPU" : "wall");
  for (const GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (const int64_t n : tokens) {
      run(type, 896, 4864, n, threads == 1);
      run(type, 4864, 896, n, threads == 1);
    }
  }
  return 0;
}
