// fp32 and bf16 GEMM speed at the models' linear-layer shapes, per kernel: OpenBLAS sgemm (whose
// kernels follow OPENBLAS_CORETYPE, so bench/gemm_choice.sh runs this under Haswell and
// SkylakeX), oneDNN's sgemm (chosen by CPUID), and the CPU backend's bf16 matmul through oneDNN
// and through its widening fallback. Prints GFLOP/s per T threads from the process's CPU time
// (flops / (cpu seconds / T)), the median of --reps calls after a warm-up: on a machine shared
// with other jobs, wall time measures the neighbours, CPU time mostly the kernel (run with
// OMP_WAIT_POLICY=PASSIVE so that waiting threads do not burn CPU time).
//   gemm_choice [--threads T] [--reps R] [--max-m M]
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/onednn_gemm.h"
#include "llm/dtype.h"
#include "llm/error.h"

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Median CPU seconds of one call of fn, divided by the thread count: wall seconds on idle cores.
double median_seconds(int reps, int threads, const std::function<void()>& fn) {
  fn();  // warm-up: primitive creation, packing buffers, page faults
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = cpu_seconds();
    fn();
    t.push_back((cpu_seconds() - t0) / threads);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Shape {
  const char* name;
  int64_t N, K;
};

}  // namespace

int main(int argc, char** argv) try {
  int threads = 2, reps = 5;
  int64_t max_m = 2048;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads") {
      threads = std::stoi(argv[i + 1]);
    } else if (flag == "--reps") {
      reps = std::stoi(argv[i + 1]);
    } else if (flag == "--max-m") {
      max_m = std::stoll(argv[i + 1]);
    } else {
      llm::fail("gemm_choice: unknown flag ", flag);
    }
  }
  llm::CpuBackend cpu(threads);
  std::printf("# OpenBLAS core %s (%s); %s; %d threads\n", openblas_get_corename(), openblas_get_config(),
              llm::cpu::onednn_description().c_str(), threads);
  std::printf("%-22s %5s %12s %12s %12s %12s\n", "shape (NxK)", "M", "f32 openblas", "f32 onednn", "bf16 onednn",
              "bf16 widen");
  const Shape shapes[] = {{"qwen05b gate_up", 2 * 4864, 896}, {"qwen05b down", 896, 4864},
                          {"qwen05b qkv", 1152, 896},         {"bench50m gate_up", 2 * 1408, 512},
                          {"bench50m down", 512, 1408},       {"tiny gate_up", 2 * 704, 256}};
  std::mt19937_64 g(42);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (const Shape& s : shapes) {
    for (const int64_t M : {int64_t{1}, int64_t{64}, int64_t{512}, int64_t{2048}}) {
      if (M > max_m) continue;
      std::vector<float> a(size_t(M * s.K)), w(size_t(s.N * s.K)), c(size_t(M * s.N));
      for (auto& x : a) x = d(g);
      for (auto& x : w) x = d(g);
      std::vector<uint16_t> ab(a.size()), wb(w.size());
      for (size_t i = 0; i < a.size(); ++i) ab[i] = llm::f32_to_bf16_bits(a[i]);
      for (size_t i = 0; i < w.size(); ++i) wb[i] = llm::f32_to_bf16_bits(w[i]);
      const llm::Tensor A(ab.data(), llm::DType::BF16, {M, s.K}), W(wb.data(), llm::DType::BF16, {s.N, s.K});
      const llm::Tensor C(c.data(), llm::DType::F32, {M, s.N});
      const double flop = 2.0 * double(M) * double(s.N) * double(s.K);
      const double t_blas = median_seconds(reps, threads, [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(s.N), int(s.K), 1.0f, a.data(), int(s.K),
                    w.data(), int(s.K), 0.0f, c.data(), int(s.N));
      });
      const double t_dnnl = median_seconds(reps, threads, [&] {
        llm::cpu::OnednnGemm::f32(false, true, M, s.N, s.K, 1.0f, a.data(), s.K, w.data(), s.K, 0.0f, c.data(), s.N);
      });
      cpu.set_onednn_bf16(true);
      const double t_bf = median_seconds(reps, threads, [&] { cpu.matmul(A, false, W, true, C, 1.0f, 0.0f, nullptr); });
      cpu.set_onednn_bf16(false);
      const double t_widen =
          median_seconds(reps, threads, [&] { cpu.matmul(A, false, W, true, C, 1.0f, 0.0f, nullptr); });
      std::printf("%-16s %5lldx%-5lld %5lld %12.1f %12.1f %12.1f %12.1f\n", s.name, static_cast<long long>(s.N),
                  static_cast<long long>(s.K), static_cast<long long>(M), flop / t_blas * 1e-9, flop / t_dnnl * 1e-9,
                  flop / t_bf * 1e-9, flop / t_widen * 1e-9);
      std::fflush(stdout);
    }
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "%s\n", e.what());
  return 1;
}
