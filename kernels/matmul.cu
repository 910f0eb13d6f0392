// Launch configuration: matmul_scale_bias is a 256-thread grid-stride loop over the M x N elements
// (scalar: it only runs for K = 0 or as a fallback); bias_backward is dev::column_sum_accumulate
// (blocks of 32 columns x 8 row lanes over groups of 128 rows, then one thread per column).
#include "device_util.cuh"
#include "matmul.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads) scale_bias_kernel(void* c, DType ct, int64_t ldc, int64_t N, int64_t items,
                                                              float beta, const void* __restrict__ bias, DType bt) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < items; it += stride) {
    const int64_t m = it / N, n = it - m * N;
    float v = beta == 0.0f ? 0.0f : beta * dev::load(c, ct, m * ldc + n);
    if (bias != nullptr) v += dev::load(bias, bt, n);
    dev::store(c, ct, m * ldc + n, v);
  }
}

struct DyTerm {
  const void* dy;
  DType dt;
  int64_t ld;
  __device__ float operator()(int64_t n, int64_t c) const { return dev::load(dy, dt, n * ld + c); }
};

}  // namespace

void matmul_scale_bias(void* c, DType ct, int64_t ldc, int64_t M, int64_t N, float beta, const void* bias, DType bt,
                       cudaStream_t stream) {
  const int64_t items = M * N;
  if (items == 0) return;
  LLM_LAUNCH(scale_bias_kernel, dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream, c, ct, ldc, N, items,
             beta, bias, bt);
  LLM_CUDA_CHECK(cudaGetLastError());
}

int64_t bias_backward_scratch(int64_t N, int64_t C) { return dev::column_groups(N) * C; }

void bias_backward_rows(const void* dy, DType dt, int64_t ld, int64_t N, int64_t C, float* db, float* partial,
                        cudaStream_t stream) {
  dev::column_sum_accumulate(DyTerm{dy, dt, ld}, N, C, partial, db, stream);
}

}  // namespace llm::LLM_CUDA_NS
