// adamw on the CUDA backend (kernels/adamw.cu): the hyper-parameters are derived on the host exactly
// as src/backend/cpu/adamw.cpp derives them; the segment table travels to the device through the
// workspace (one small host-to-device copy per step) so that one launch covers every segment.
#include <cmath>
#include <vector>

#include "adamw.cuh"
#include "backend/cuda/cuda_backend.h"
#include "backend/op_checks.h"

namespace llm::LLM_CUDA_NS {

void CudaBackend::do_adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                           const Tensor& compute, std::span<const AdamWSegment> segments, const AdamWHyper& hp) {
  const char* op = "adamw";
  const bool write_compute = adamw_writes_compute(param, compute);
  const double bc1 = 1.0 - std::pow(double(hp.beta1), double(hp.step));
  const double bc2 = 1.0 - std::pow(double(hp.beta2), double(hp.step));
  AdamWArgs a;
  a.param = param.ptr<float>();
  a.grad = grad.ptr<const float>();
  a.m = m.ptr<float>();
  a.v = v.ptr<float>();
  a.compute = write_compute ? compute.data() : nullptr;
  a.compute_dtype = compute.dtype();
  a.grad_scale = hp.grad_scale;
  a.beta1 = hp.beta1;
  a.beta2 = hp.beta2;
  a.one_minus_beta1 = 1.0f - hp.beta1;
  a.one_minus_beta2 = 1.0f - hp.beta2;
  a.step_size = static_cast<float>(double(hp.lr) / bc1);
  a.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  a.eps = hp.eps;
  std::vector<AdamWSeg> table;
  int64_t chunks = 0;
  for (const AdamWSegment& s : segments) {
    if (s.count == 0) continue;
    table.push_back(AdamWSeg{s.offset, s.count, chunks, 1.0f - hp.lr * s.weight_decay});
    chunks += (s.count + kAdamWChunk - 1) / kAdamWChunk;
  }
  if (table.empty()) return;
  LLM_CHECK(table.size() < (size_t(1) << 30), op, ": ", table.size(), " segments");
  const size_t bytes = table.size() * sizeof(AdamWSeg);
  auto* segs = static_cast<AdamWSeg*>(workspace(bytes));
  // From pageable memory: staged by the runtime before the call returns, so `table` may go.
  LLM_CUDA_CHECK(cudaMemcpyAsync(segs, table.data(), bytes, cudaMemcpyHostToDevice, stream_));
  adamw_segments(a, segs, static_cast<int>(table.size()), chunks, stream_);
}

}  // namespace llm::LLM_CUDA_NS
