// Launch configuration: one block per row (grid N), blockDim = the row's chunks of dev::kVec = 8
// elements rounded up to whole warps, between 32 and 256 threads (C = 896: 128 threads, one
// chunk each). Two passes over the row: sum of squares (fp32 per thread, a fixed-order block sum),
// then the normalised output; the second pass re-reads what the same thread read (L1/L2 hits).
// The backward's dw is a deterministic two-pass column sum (dev::column_sum_accumulate).
// Arithmetic as in src/backend/cpu/rmsnorm.cpp.
#include "device_util.cuh"
#include "rmsnorm.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

__global__ void __launch_bounds__(256)
    rmsnorm_forward_kernel(NormMat a, NormMat b, NormMat s, bool add, const void* __restrict__ w, DType wt, float eps,
                           NormMat y, float* __restrict__ rstd, int64_t C, bool vec) {
  __shared__ float scratch[33];
  const int64_t n = blockIdx.x;
  const int64_t chunks = (C + dev::kVec - 1) / dev::kVec;
  float ss = 0.0f;
  // The input of the norm: a, or the sum a + b stored into s and read as stored.
  const NormMat x = add ? s : a;
  for (int64_t k = threadIdx.x; k < chunks; k += blockDim.x) {
    const int64_t c0 = k * dev::kVec;
    const int cnt = static_cast<int>(C - c0 < dev::kVec ? C - c0 : dev::kVec);
    float v[dev::kVec];
    dev::load_chunk(a.p, a.dt, n * a.ld + c0, cnt, vec, v);
    if (add) {
      float u[dev::kVec];
      dev::load_chunk(b.p, b.dt, n * b.ld + c0, cnt, vec, u);
      LLM_UNROLL_8
      for (int j = 0; j < dev::kVec; ++j) v[j] += u[j];
      dev::store_chunk(s.p, s.dt, n * s.ld + c0, cnt, vec, v);
      LLM_UNROLL_8
      for (int j = 0; j < dev::kVec; ++j) v[j] = dev::round_to(v[j], s.dt);
    }
    LLM_UNROLL_8
    for (int j = 0; j < dev::kVec; ++j) ss += v[j] * v[j];  // zeros past cnt add nothing
  }
  ss = dev::block_sum(ss, scratch);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(C) + eps);
  if (threadIdx.x == 0) rstd[n] = r;
  for (int64_t k = threadIdx.x; k < chunks; k += blockDim.x) {
    const int64_t c0 = k * dev::kVec;
    const int cnt = static_cast<int>(C - c0 < dev::kVec ? C - c0 : dev::kVec);
    float v[dev::kVec], wv[dev::kVec];
    dev::load_chunk(x.p, x.dt, n * x.ld + c0, cnt, vec, v);  // s: this thread's own stores above
    dev::load_chunk(w, wt, c0, cnt, vec, wv);
    LLM_UNROLL_8
    for (int j = 0; j < dev::kVec; ++j) v[j] = wv[j] * (v[j] * r);
    dev::store_chunk(y.p, y.dt, n * y.ld + c0, cnt, vec, v);
  }
}

// dx_c = rstd * w_c * dy_c - rstd^3 / C * x_c * sum_j (w_j dy_j x_j)
__global__ void __launch_bounds__(256)
    rmsnorm_backward_kernel(NormMat dy, NormMat x, const void* __restrict__ w, DType wt, const float* __restrict__ rstd,
                            NormMat dx, bool accumulate, int64_t C, bool vec) {
  __shared__ float scratch[33];
  const int64_t n = blockIdx.x;
  const int64_t chunks = (C + dev::kVec - 1) / dev::kVec;
  float dot = 0.0f;
  for (int64_t k = threadIdx.x; k < chunks; k += blockDim.x) {
    const int64_t c0 = k * dev::kVec;
    const int cnt = static_cast<int>(C - c0 < dev::kVec ? C - c0 : dev::kVec);
    float g[dev::kVec], xv[dev::kVec], wv[dev::kVec];
    dev::load_chunk(dy.p, dy.dt, n * dy.ld + c0, cnt, vec, g);
    dev::load_chunk(x.p, x.dt, n * x.ld + c0, cnt, vec, xv);
    dev::load_chunk(w, wt, c0, cnt, vec, wv);
    LLM_UNROLL_8
    for (int j = 0; j < dev::kVec; ++j) dot += wv[j] * g[j] * xv[j];
  }
  dot = dev::block_sum(dot, scratch);
  const float r = rstd[n];
  const float kx = dot * r * r * r / static_cast<float>(C);
  for (int64_t k = threadIdx.x; k < chunks; k += blockDim.x) {
    const int64_t c0 = k * dev::kVec;
    const int cnt = static_cast<int>(C - c0 < dev::kVec ? C - c0 : dev::kVec);
    float g[dev::kVec], xv[dev::kVec], wv[dev::kVec], out[dev::kVec];
    dev::load_chunk(dy.p, dy.dt, n * dy.ld + c0, cnt, vec, g);
    dev::load_chunk(x.p, x.dt, n * x.ld + c0, cnt, vec, xv);
    dev::load_chunk(w, wt, c0, cnt, vec, wv);
    if (accumulate) {
      dev::load_chunk(dx.p, dx.dt, n * dx.ld + c0, cnt, vec, out);
    } else {
      LLM_UNROLL_8
      for (int j = 0; j < dev::kVec; ++j) out[j] = 0.0f;
    }
    LLM_UNROLL_8
    for (int j = 0; j < dev::kVec; ++j) {
      const float d = r * wv[j] * g[j] - kx * xv[j];
      out[j] = accumulate ? out[j] + d : d;
    }
    dev::store_chunk(dx.p, dx.dt, n * dx.ld + c0, cnt, vec, out);
  }
}

// term(n, c) = dy[n, c] * x[n, c] * rstd[n], the CPU's product order.
struct DwTerm {
  NormMat dy, x;
  const float* rstd;
  __device__ float operator()(int64_t n, int64_t c) const {
    return dev::load(dy.p, dy.dt, n * dy.ld + c) * dev::load(x.p, x.dt, n * x.ld + c) * rstd[n];
  }
};

unsigned row_threads(int64_t C) {
  const int64_t chunks = (C + dev::kVec - 1) / dev::kVec;
  int64_t t = (chunks + 31) / 32 * 32;
  t = t < 32 ? 32 : (t > 256 ? 256 : t);
  return static_cast<unsigned>(t);
}

bool aligned(const NormMat& m) { return dev::rows_aligned16(m.p, m.ld, dtype_size(m.dt)); }

}  // namespace

void rmsnorm_forward_rows(NormMat a, const NormMat* b, const NormMat* s, const void* w, DType wt, float eps, NormMat y,
                          float* rstd, int64_t N, int64_t C, cudaStream_t stream) {
  if (N == 0) return;
  const bool add = b != nullptr;
  const NormMat bb = add ? *b : a, sm = add ? *s : a;
  const bool vec = aligned(a) && aligned(bb) && aligned(sm) && aligned(y) && dev::aligned16(w);
  LLM_LAUNCH(rmsnorm_forward_kernel, dim3(static_cast<unsigned>(N)), dim3(row_threads(C)), 0, stream, a, bb, sm, add, w,
             wt, eps, y, rstd, C, vec);
  LLM_CUDA_CHECK(cudaGetLastError());
}

int64_t rmsnorm_backward_scratch(int64_t N, int64_t C) { return dev::column_groups(N) * C; }

void rmsnorm_backward_rows(NormMat dy, NormMat x, const void* w, DType wt, const float* rstd, NormMat dx, float* dw,
                           bool accumulate, int64_t N, int64_t C, float* partial, cudaStream_t stream) {
  if (N == 0) return;
  const bool vec = aligned(dy) && aligned(x) && aligned(dx) && dev::aligned16(w);
  LLM_LAUNCH(rmsnorm_backward_kernel, dim3(static_cast<unsigned>(N)), dim3(row_threads(C)), 0, stream, dy, x, w, wt,
             rstd, dx, accumulate, C, vec);
  LLM_CUDA_CHECK(cudaGetLastError());
  dev::column_sum_accumulate(DwTerm{dy, x, rstd}, N, C, partial, dw, stream);
}

}  // namespace llm::LLM_CUDA_NS
