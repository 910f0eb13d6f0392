// embedding_forward / embedding_backward on the CPU.
#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_util.h"

namespace llm {

void CpuBackend::do_embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) {
  const int64_t N = ids.size(0), C = table.size(1);
  cpu::check_ids_in_vocab(ids, table.size(0), "embedding_forward");
  const int32_t* id = ids.ptr<int32_t>();
#pragma omp parallel if (N * C > cpu::kParallelMinWork)
  {
    std::vector<float> row(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      cpu::to_f32(cpu::at(table, id[n]), table.dtype(), row.data(), C);
      cpu::from_f32(row.data(), cpu::at(out, n), out.dtype(), C);
    }
  }
}

void CpuBackend::do_embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable, int64_t row0,
                                       int64_t vocab) {
  const int64_t N = ids.size(0), C = dtable.size(1), R = dtable.size(0);
  cpu::check_ids_in_vocab(ids, vocab, "embedding_backward");
  const int32_t* id = ids.ptr<int32_t>();
  float* dt = dtable.ptr<float>();
  // Threads own column blocks and walk all tokens in order: each row of dtable receives its
  // tokens' gradients in the same order whatever the thread count.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel if (N * C > cpu::kParallelMinWork)
  {
    std::vector<float> row(static_cast<size_t>(C));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * kBlock, c1 = std::min(C, c0 + kBlock);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t rel = int64_t(id[n]) - row0;
        if (rel < 0 || rel >= R) continue;  // a row of another bucket
        const char* src = cpu::at(dout, n) + c0 * int64_t(dtype_size(dout.dtype()));
        cpu::to_f32(src, dout.dtype(), row.data(), c1 - c0);
        float* dst = dt + rel * C + c0;
        for (int64_t c = 0; c < c1 - c0; ++c) dst[c] += row[static_cast<size_t>(c)];
      }
    }
  }
}

}  // namespace llm
