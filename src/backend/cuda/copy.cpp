// copy / zero / fill on the CUDA backend (kernels/copy.cu).
#include "copy.cuh"
#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

void CudaBackend::do_copy(const Tensor& src, const Tensor& dst) {
  // The outer dims (up to 3) right-aligned into CopyShape; size-1 dims get stride 0 so that
  // their (meaningless) stride does not spoil the alignment test.
  CopyShape s;
  const int nd = src.ndim();
  for (int d = 0; d < nd - 1; ++d) {
    const int k = 3 - (nd - 1) + d;
    s.size[k] = src.size(d);
    s.src_stride[k] = src.size(d) == 1 ? 0 : src.stride(d);
    s.dst_stride[k] = src.size(d) == 1 ? 0 : dst.stride(d);
  }
  s.cols = src.size(-1);
  copy_strided(src.data(), src.dtype(), dst.data(), dst.dtype(), s, stream_);
}

void CudaBackend::do_zero(const Tensor& t) { LLM_CUDA_CHECK(cudaMemsetAsync(t.data(), 0, t.nbytes(), stream_)); }

void CudaBackend::do_fill(const Tensor& t, float value) {
  const int64_t n = t.numel();
  // The element's bits, rounded on the host exactly as the CPU op rounds.
  uint32_t bits = 0;
  switch (t.dtype()) {
    case DType::I32: bits = static_cast<uint32_t>(static_cast<int32_t>(value)); break;
    case DType::F32: bits = std::bit_cast<uint32_t>(value); break;
    case DType::F16: bits = f32_to_f16_bits(value); break;
    case DType::BF16: bits = f32_to_bf16_bits(value); break;
    default: fail("fill: internal: ", dtype_name(t.dtype()), " passed the checks");
  }
  fill_pattern(t.data(), n, static_cast<int>(dtype_size(t.dtype())), bits, stream_);
}

}  // namespace llm::LLM_CUDA_NS
