// GEMV (decode) and small-GEMM (prefill) speed of the CPU backend's quant_matmul against fp32
// OpenBLAS, at the Qwen2.5-0.5B shapes, set beside the machine's read bandwidth measured in the
// same run.
//   quant_gemv [--threads T] [--set-bytes MiB] [--rounds R] [--prefill N] [--shape NAME]
// (--shape: only the shapes whose name contains NAME: down, gate, lm_head.)
// Cold: each shape is cycled through copies totalling --set-bytes (default 256 MiB, 8x this
// machine's L3) so every call reads its weights from DRAM, as a model's layers do in decode.
// Hot: one copy called repeatedly (in cache when it fits): the kernel's compute ceiling.
// Every time is the fastest of many single calls (this machine is shared: the least disturbed
// call is the measurement), the bandwidth the fastest of --rounds passes.
// Read bandwidth: a streaming sum with the same threads (stream_read_gbs). Buffers come from
// the backend's allocator (2 MiB aligned, MADV_HUGEPAGE), like the model's weights.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/quant_kernels.h"
#include "llm/arena.h"
#include "llm/error.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best of `reps` timings of fn() (seconds per call of fn).
double best_of(int reps, const std::function<void()>& fn) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    fn();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

// A streaming sum over a 1 GiB buffer, timed per 128 MiB slice (the size of a big weight
// matrix), fastest slice of `reps` passes.
double stream_read_gbs(llm::Arena& arena, int reps) {
  const size_t bytes = size_t{1} << 30, slice = size_t{128} << 20;
  llm::Buffer buf = arena.alloc(bytes);
  auto* p = static_cast<uint64_t*>(buf.data());
  const int64_t n = int64_t(bytes / 8), per = int64_t(slice / 8);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = uint64_t(i);
  uint64_t sink = 0;
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    for (int64_t s0 = 0; s0 < n; s0 += per) {
      best = std::min(best, best_of(1, [&] {
                        uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
                        for (int64_t i = s0; i < s0 + per; i += 8) {
                          total +=
                              (p[i] + p[i + 1]) + (p[i + 2] + p[i + 3]) + (p[i + 4] + p[i + 5]) + (p[i + 6] + p[i + 7]);
                        }
                        sink += total;
                      }));
    }
  }
  if (sink == 42) std::printf(" ");
  return double(slice) / best / 1e9;
}

struct Shape {
  const char* name;
  int64_t rows, cols;
};

struct Variant {
  const char* name;
  bool fp32;
  llm::QuantKind kind;
  int64_t group;  // 0: one scale per row
};

// A set of copies of one matrix: fp32 rows for sgemv, or a QuantizedMatrix per copy.
struct Copies {
  std::vector<llm::OwnedTensor> dense, data, scales;
  std::vector<llm::QuantizedMatrix> q;
  size_t bytes_each = 0;
};

Copies make_copies(llm::CpuBackend& cpu, llm::Arena& arena, const Shape& s, const Variant& v, size_t set_bytes) {
  std::mt19937_64 g(1);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(s.rows * s.cols));
  for (auto& x : w) x = nd(g);
  Copies c;
  const int64_t group = v.group > 0 ? v.group : s.cols;
  c.bytes_each = v.fp32 ? w.size() * 4
                        : size_t(s.rows) * size_t(v.kind == llm::QuantKind::Int4 ? s.cols / 2 : s.cols) +
                              size_t(s.rows * (s.cols / group)) * 4;
  const size_t n = std::max<size_t>(1, (set_bytes + c.bytes_each - 1) / c.bytes_each);
  for (size_t i = 0; i < n; ++i) {
    if (v.fp32) {
      c.dense.push_back(arena.tensor(llm::DType::F32, {s.rows, s.cols}));
      cpu.upload(c.dense.back(), w.data());
      continue;
    }
    const bool int4 = v.kind == llm::QuantKind::Int4;
    c.data.push_back(arena.tensor(int4 ? llm::DType::U8 : llm::DType::I8, {s.rows, int4 ? s.cols / 2 : s.cols}));
    c.scales.push_back(arena.tensor(llm::DType::F32, {s.rows, s.cols / group}));
    llm::QuantizedMatrix m;
    m.kind = v.kind;
    m.rows = s.rows;
    m.cols = s.cols;
    m.group = group;
    m.data = c.data.back();
    m.scales = c.scales.back();
    if (i == 0) {
      llm::Tensor wt(w.data(), llm::DType::F32, {s.rows, s.cols});
      cpu.quantize(wt, m);
    } else {
      std::memcpy(m.data.data(), c.q[0].data.data(), m.data.nbytes());
      std::memcpy(m.scales.data(), c.q[0].scales.data(), m.scales.nbytes());
    }
    c.q.push_back(m);
  }
  return c;
}

// Seconds per product y [N, rows] = x [N, cols] @ copy^T, cycling through the copies.
double time_product(llm::CpuBackend& cpu, const Copies& c, const Shape& s, int64_t N, int rounds, bool cold) {
  std::vector<float> x(static_cast<size_t>(N * s.cols), 0.01f), y(static_cast<size_t>(N * s.rows));
  llm::Tensor X(x.data(), llm::DType::F32, {N, s.cols}), Y(y.data(), llm::DType::F32, {N, s.rows});
  const size_t copies = cold ? std::max(c.dense.size(), c.q.size()) : 1;
  auto call = [&](size_t i) {
    if (!c.dense.empty()) {
      const float* a = c.dense[i]->ptr<float>();
      if (N == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, blasint(s.rows), blasint(s.cols), 1.0f, a, blasint(s.cols), x.data(),
                    1, 0.0f, y.data(), 1);
      } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(N), blasint(s.rows), blasint(s.cols), 1.0f,
                    x.data(), blasint(s.cols), a, blasint(s.cols), 0.0f, y.data(), blasint(s.rows));
      }
    } else {
      cpu.quant_matmul(X, c.q[i], Y, nullptr);
    }
  };
  for (size_t i = 0; i < copies; ++i) call(i);  // warm up: page faults, thread pool
  // The fastest single call: on a shared machine the least disturbed one is the measurement.
  double best = 1e30;
  const size_t calls = std::max<size_t>(copies * size_t(rounds), 16);
  for (size_t k = 0; k < calls; ++k) best = std::min(best, best_of(1, [&] { call(k % copies); }));
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    int threads = 0, rounds = 5;
    int64_t prefill = 128;
    size_t set_mib = 256;
    std::string only;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string a = argv[i];
      if (a == "--threads") {
        threads = std::stoi(argv[i + 1]);
      } else if (a == "--set-bytes") {
        set_mib = std::stoul(argv[i + 1]);
      } else if (a == "--rounds") {
        rounds = std::stoi(argv[i + 1]);
      } else if (a == "--shape") {
        only = argv[i + 1];
      } else if (a == "--prefill") {
        prefill = std::stoll(argv[i + 1]);
      } else {
        llm::fail("quant_gemv: unknown option ", a,
                  " (--threads, --set-bytes MiB, --rounds, --prefill N, --shape NAME)");
      }
    }
    llm::CpuBackend cpu(threads);
    llm::Arena arena(cpu, "bench");
    const llm::cpu::QuantIsa isa = llm::cpu::quant_isa_from_env("quant_gemv");
    const double bw = stream_read_gbs(arena, rounds);
    std::printf("%s, quant kernels: %s; read bandwidth (streaming sum, 128 MiB slices): %.1f GB/s\n",
                cpu.name().c_str(), llm::cpu::quant_isa_name(isa), bw);
    std::printf("GEMV (N = 1), cold: weights cycled through %zu MiB of copies; hot: one copy\n", set_mib);
    std::printf("%-20s %-10s %9s %9s %9s %7s %9s\n", "shape [out, in]", "weights", "MB", "us/call", "GB/s", "x read",
                "hot GB/s");
    const Shape shapes[] = {
        {"down 896x4864", 896, 4864}, {"gate/up 4864x896", 4864, 896}, {"lm_head 151936x896", 151936, 896}};
    const Variant variants[] = {{"fp32", true, llm::QuantKind::Int8, 0},
                                {"int8", false, llm::QuantKind::Int8, 0},
                                {"int4 g64", false, llm::QuantKind::Int4, 64},
                                {"int4 g32", false, llm::QuantKind::Int4, 32}};
    for (const Shape& s : shapes) {
      if (std::string(s.name).find(only) == std::string::npos) continue;
      for (const Variant& v : variants) {
        const Copies c = make_copies(cpu, arena, s, v, set_mib << 20);
        const double cold = time_product(cpu, c, s, 1, rounds, true);
        const double hot = time_product(cpu, c, s, 1, rounds, false);
        const double gbs = double(c.bytes_each) / cold / 1e9;
        std::printf("%-20s %-10s %9.2f %9.1f %9.1f %7.2f %9.1f\n", s.name, v.name, double(c.bytes_each) / 1e6,
                    cold * 1e6, gbs, gbs / bw, double(c.bytes_each) / hot / 1e9);
      }
    }
    if (prefill > 1) {
      std::printf("\nprefill (N = %lld tokens), hot: GFLOP/s\n", static_cast<long long>(prefill));
      std::printf("%-20s %-10s %9s %9s %7s\n", "shape [out, in]", "weights", "ms/call", "GFLOP/s", "x fp32");
      for (const Shape& s : {shapes[0], shapes[1]}) {
        if (std::string(s.name).find(only) == std::string::npos) continue;
        double fp32 = 0;
        for (const Variant& v : variants) {
          const Copies c = make_copies(cpu, arena, s, v, 0);
          const double t = time_product(cpu, c, s, prefill, rounds, false);
          const double gf = 2.0 * double(prefill) * double(s.rows) * double(s.cols) / t / 1e9;
          if (v.fp32) fp32 = gf;
          std::printf("%-20s %-10s %9.2f %9.1f %7.2f\n", s.name, v.name, t * 1e3, gf, gf / fp32);
        }
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
