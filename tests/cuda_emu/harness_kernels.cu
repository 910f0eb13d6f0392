#include "harness_kernels.cuh"

namespace llm::LLM_CUDA_NS::harness {
namespace {

constexpr unsigned kFull = 0xffffffffu;

__global__ void shuffle_kernel(const int* in, int* out, int mode, int param, int width) {
  const int lane = static_cast<int>(threadIdx.x);
  const int v = in[lane];
  int r = 0;
  switch (mode) {
    case 0: r = __shfl_sync(kFull, v, param, width); break;
    case 1: r = __shfl_up_sync(kFull, v, static_cast<unsigned>(param), width); break;
    case 2: r = __shfl_down_sync(kFull, v, static_cast<unsigned>(param), width); break;
    default: r = __shfl_xor_sync(kFull, v, param, width); break;
  }
  out[lane] = r;
}

__global__ void divergent_votes_kernel(const int* pred, unsigned* out) {
  const int lane = static_cast<int>(threadIdx.x);
  const int p = pred[lane];
  unsigned ballot = 0, any = 0, all = 0;
  if (lane % 2 == 0) {
    ballot = __ballot_sync(0x55555555u, p);
    any = static_cast<unsigned>(__any_sync(0x55555555u, p));
    all = static_cast<unsigned>(__all_sync(0x55555555u, p));
  } else {
    ballot = __ballot_sync(0xaaaaaaaau, p);
    any = static_cast<unsigned>(__any_sync(0xaaaaaaaau, p));
    all = static_cast<unsigned>(__all_sync(0xaaaaaaaau, p));
  }
  out[3 * lane] = ballot;
  out[3 * lane + 1] = any;
  out[3 * lane + 2] = all;
}

__global__ void divergent_shuffles_kernel(const float* in, float* out) {
  const int lane = static_cast<int>(threadIdx.x);
  float v = in[lane];
  if (lane < 16) {
    for (int offset = 8; offset > 0; offset /= 2) v += __shfl_xor_sync(0x0000ffffu, v, offset);
  } else {
    // Segments of 16 lanes: lane 16 starts its own, so nothing reads outside the mask.
    for (int d = 1; d < 16; d *= 2) {
      const float u = __shfl_up_sync(0xffff0000u, v, static_cast<unsigned>(d), 16);
      if (lane - 16 >= d) v += u;
    }
  }
  out[lane] = v;
}

__global__ void block_reduce_warp0_kernel(const float* in, float* out) {
  __shared__ float warp_sums[32];
  const int t = static_cast<int>(threadIdx.x);
  const int lane = t & 31, warp = t >> 5, warps = static_cast<int>(blockDim.x) >> 5;
  float v = in[t];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(kFull, v, offset);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp != 0) return;  // only warp 0 runs the second stage
  const unsigned active = __ballot_sync(kFull, lane < warps);
  if (lane < warps) {
    v = warp_sums[lane];
    for (int offset = warps / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(active, v, offset);
    if (lane == 0) out[0] = v;
  }
}

__global__ void syncthreads_votes_kernel(const int* in, int* out) {
  const int p = in[threadIdx.x] != 0;
  const int count = __syncthreads_count(p);
  const int all = __syncthreads_and(p);
  const int any = __syncthreads_or(p);
  if (threadIdx.x == 0) {
    out[0] = count;
    out[1] = all;
    out[2] = any;
  }
}

__global__ void atomics_kernel(const int* v, int* counters, float* fsum, double* dsum) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  const int x = v[i];
  atomicAdd(&counters[0], 1);
  atomicMax(&counters[1], x);
  int old = 0, assumed = 0;
  do {
    assumed = old;
    old = atomicCAS(&counters[2], assumed, assumed + 1);
  } while (old != assumed);
  atomicAdd(fsum, static_cast<float>(x));
  atomicAdd(dsum, static_cast<double>(x));
}

__global__ void match_any_kernel(const int* key, unsigned* out) {
  out[threadIdx.x] = __match_any_sync(kFull, key[threadIdx.x]);
}

__device__ __forceinline__ unsigned pack2(bool bf16, float lo, float hi) {
  return bf16 ? pack2_bf16(lo, hi) : pack2_f16(lo, hi);
}

__global__ void mma_kernel(const float* a, const float* b, const float* c, float* d, int bf16) {
  const int lane = static_cast<int>(threadIdx.x), g = lane >> 2, t2 = (lane & 3) * 2;
  const bool h = bf16 != 0;
  const unsigned fa[4] = {
      pack2(h, a[g * 16 + t2], a[g * 16 + t2 + 1]), pack2(h, a[(g + 8) * 16 + t2], a[(g + 8) * 16 + t2 + 1]),
      pack2(h, a[g * 16 + t2 + 8], a[g * 16 + t2 + 9]), pack2(h, a[(g + 8) * 16 + t2 + 8], a[(g + 8) * 16 + t2 + 9])};
  const unsigned fb[2] = {pack2(h, b[t2 * 8 + g], b[(t2 + 1) * 8 + g]),
                          pack2(h, b[(t2 + 8) * 8 + g], b[(t2 + 9) * 8 + g])};
  const float fc[4] = {c[g * 8 + t2], c[g * 8 + t2 + 1], c[(g + 8) * 8 + t2], c[(g + 8) * 8 + t2 + 1]};
  float fd[4];
  if (h) {
    mma_m16n8k16_bf16(fd, fa, fb, fc);
  } else {
    mma_m16n8k16_f16(fd, fa, fb, fc);
  }
  d[g * 8 + t2] = fd[0];
  d[g * 8 + t2 + 1] = fd[1];
  d[(g + 8) * 8 + t2] = fd[2];
  d[(g + 8) * 8 + t2 + 1] = fd[3];
}

// Registers in, registers out: the fragment layout is entirely the caller's (mma_layout_test.cpp).
__global__ void mma_fragments_kernel(const unsigned* a, const unsigned* b, const float* c, float* d, int shape) {
  const int lane = static_cast<int>(threadIdx.x);
  const unsigned fa[4] = {a[lane * 4], a[lane * 4 + 1], a[lane * 4 + 2], a[lane * 4 + 3]};
  const unsigned fb[2] = {b[lane * 2], b[lane * 2 + 1]};
  const float fc[4] = {c[lane * 4], c[lane * 4 + 1], c[lane * 4 + 2], c[lane * 4 + 3]};
  float fd[4] = {};
  switch (static_cast<MmaShape>(shape)) {
    case MmaShape::M16N8K8F16: mma_m16n8k8_f16(fd, fa, fb[0], fc); break;
    case MmaShape::M16N8K16F16: mma_m16n8k16_f16(fd, fa, fb, fc); break;
    case MmaShape::M16N8K16BF16: mma_m16n8k16_bf16(fd, fa, fb, fc); break;
  }
  for (int i = 0; i < 4; ++i) d[lane * 4 + i] = fd[i];
}

// out[t] = in[t - 1] passed through shared memory (out[0] = in[0]); with_barrier = 0 leaves out
// the __syncthreads between the writes and the reads.
__global__ void neighbour_kernel(const float* in, float* out, int with_barrier) {
  LLM_DYNAMIC_SHARED(float, tile);
  const unsigned t = threadIdx.x;
  tile[t] = in[t];
  if (with_barrier) __syncthreads();
  out[t] = tile[t == 0 ? 0 : t - 1];
}

// out[0] = the sum of buf[0, n).
__global__ void sum_kernel(const float* buf, int n, float* out) {
  float s = 0;
  for (int i = 0; i < n; ++i) s += buf[i];
  out[0] = s;
}

__global__ void barrier_divergence_kernel(int* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
    out[threadIdx.x] = 1;
  } else {
    __syncthreads();
    out[threadIdx.x] = 2;
  }
}

__global__ void exit_before_barrier_kernel(int* out) {
  if (threadIdx.x >= 32) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void barrier_shuffle_deadlock_kernel(int* out) {
  int v = static_cast<int>(threadIdx.x);
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    v = __shfl_sync(kFull, v, 0);
  }
  out[threadIdx.x] = v;
}

__global__ void shuffle_reads_exited_kernel(int* out) {
  if (threadIdx.x >= 16) return;
  int v = static_cast<int>(threadIdx.x);
  v += __shfl_xor_sync(kFull, v, 16);
  out[threadIdx.x] = v;
}

__global__ void mask_mismatch_kernel(int* out) {
  const unsigned mask = threadIdx.x == 5 ? 0x0000ffffu : kFull;
  out[threadIdx.x] = __shfl_sync(mask, static_cast<int>(threadIdx.x), 0);
}

__global__ void out_of_bounds_kernel(float* buf, int n) {
  if (threadIdx.x == 0) buf[n] = 1.0f;
}

__global__ void shared_out_of_bounds_kernel(int* out) {
  LLM_DYNAMIC_SHARED(int, s);  // 16 ints, 32 threads write
  s[threadIdx.x] = 1;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x % 16];
}

__global__ void misaligned_atomic_kernel(int* buf) {
  atomicAdd(reinterpret_cast<int*>(reinterpret_cast<char*>(buf) + 2), 1);
}

__global__ void spin_kernel(const volatile int* flag) {
  while (*flag == 0) {
  }
}

__global__ void activemask_kernel(unsigned* out) {
  const int lane = static_cast<int>(threadIdx.x);
  unsigned m = 0;
  if (lane % 3 == 0) {
    m = __activemask();
  } else if (lane % 3 == 1) {
    m = __activemask();
  } else {
    m = __activemask();
  }
  out[lane] = m;
}

__global__ void empty_kernel_k() {}

__global__ void sync_kernel_k(int syncs, int* out) {
  int v = static_cast<int>(threadIdx.x);
  for (int i = 0; i < syncs; ++i) {
    __syncthreads();
    v += 1;
  }
  if (threadIdx.x == 0) out[blockIdx.x] = v;
}

}  // namespace

#define LLM_HARNESS_LAUNCH(...)         \
  do {                                  \
    LLM_LAUNCH(__VA_ARGS__);            \
    LLM_CUDA_CHECK(cudaGetLastError()); \
  } while (0)

void shuffle(const int* in, int* out, Shuffle mode, int param, int width) {
  LLM_HARNESS_LAUNCH(shuffle_kernel, dim3(1), dim3(32), 0, nullptr, in, out, static_cast<int>(mode), param, width);
}
void divergent_votes(const int* pred, unsigned* out) {
  LLM_HARNESS_LAUNCH(divergent_votes_kernel, dim3(1), dim3(32), 0, nullptr, pred, out);
}
void divergent_shuffles(const float* in, float* out) {
  LLM_HARNESS_LAUNCH(divergent_shuffles_kernel, dim3(1), dim3(32), 0, nullptr, in, out);
}
void block_reduce_warp0(const float* in, float* out, int threads) {
  LLM_HARNESS_LAUNCH(block_reduce_warp0_kernel, dim3(1), dim3(static_cast<unsigned>(threads)), 0, nullptr, in, out);
}
void syncthreads_votes(const int* in, int* out, int threads) {
  LLM_HARNESS_LAUNCH(syncthreads_votes_kernel, dim3(1), dim3(static_cast<unsigned>(threads)), 0, nullptr, in, out);
}
void atomics(const int* v, int* counters, float* fsum, double* dsum, int blocks) {
  LLM_HARNESS_LAUNCH(atomics_kernel, dim3(static_cast<unsigned>(blocks)), dim3(256), 0, nullptr, v, counters, fsum,
                     dsum);
}
void match_any(const int* key, unsigned* out) {
  LLM_HARNESS_LAUNCH(match_any_kernel, dim3(1), dim3(32), 0, nullptr, key, out);
}
void mma_tile(const float* a, const float* b, const float* c, float* d, bool bf16) {
  LLM_HARNESS_LAUNCH(mma_kernel, dim3(1), dim3(32), 0, nullptr, a, b, c, d, bf16 ? 1 : 0);
}
void mma_fragments(const unsigned* a, const unsigned* b, const float* c, float* d, MmaShape shape) {
  LLM_HARNESS_LAUNCH(mma_fragments_kernel, dim3(1), dim3(32), 0, nullptr, a, b, c, d, static_cast<int>(shape));
}
void shared_neighbour(const float* in, float* out, int threads, bool with_barrier) {
  LLM_HARNESS_LAUNCH(neighbour_kernel, dim3(1), dim3(static_cast<unsigned>(threads)),
                     static_cast<size_t>(threads) * sizeof(float), nullptr, in, out, with_barrier ? 1 : 0);
}
void sum(const float* buf, int n, float* out) {
  LLM_HARNESS_LAUNCH(sum_kernel, dim3(1), dim3(1), 0, nullptr, buf, n, out);
}
void bug_barrier_divergence(int* out) {
  LLM_HARNESS_LAUNCH(barrier_divergence_kernel, dim3(1), dim3(32), 0, nullptr, out);
}
void bug_exit_before_barrier(int* out) {
  LLM_HARNESS_LAUNCH(exit_before_barrier_kernel, dim3(1), dim3(64), 0, nullptr, out);
}
void bug_barrier_shuffle_deadlock(int* out) {
  LLM_HARNESS_LAUNCH(barrier_shuffle_deadlock_kernel, dim3(1), dim3(32), 0, nullptr, out);
}
void bug_shuffle_reads_exited(int* out) {
  LLM_HARNESS_LAUNCH(shuffle_reads_exited_kernel, dim3(1), dim3(32), 0, nullptr, out);
}
void bug_mask_mismatch(int* out) { LLM_HARNESS_LAUNCH(mask_mismatch_kernel, dim3(1), dim3(32), 0, nullptr, out); }
void bug_out_of_bounds(float* buf, int n) {
  LLM_HARNESS_LAUNCH(out_of_bounds_kernel, dim3(1), dim3(32), 0, nullptr, buf, n);
}
void bug_shared_out_of_bounds(int* out) {
  LLM_HARNESS_LAUNCH(shared_out_of_bounds_kernel, dim3(1), dim3(32), 16 * sizeof(int), nullptr, out);
}
void bug_misaligned_atomic(int* buf) {
  LLM_HARNESS_LAUNCH(misaligned_atomic_kernel, dim3(1), dim3(1), 0, nullptr, buf);
}
void bug_spin(const int* flag) { LLM_HARNESS_LAUNCH(spin_kernel, dim3(1), dim3(32), 0, nullptr, flag); }
void activemask_groups(unsigned* out) { LLM_HARNESS_LAUNCH(activemask_kernel, dim3(1), dim3(32), 0, nullptr, out); }
void empty_kernel(int blocks, int threads) {
  LLM_HARNESS_LAUNCH(empty_kernel_k, dim3(static_cast<unsigned>(blocks)), dim3(static_cast<unsigned>(threads)), 0,
                     nullptr);
}
void sync_kernel(int blocks, int threads, int syncs, int* out) {
  LLM_HARNESS_LAUNCH(sync_kernel_k, dim3(static_cast<unsigned>(blocks)), dim3(static_cast<unsigned>(threads)), 0,
                     nullptr, syncs, out);
}

}  // namespace llm::LLM_CUDA_NS::harness
