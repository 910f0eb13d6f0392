// embedding_forward: a gather, 256 threads per block over chunks of dev::kVec = 8 columns, the grid's
// y dimension striding over tokens.
//
// embedding_backward, deterministic without float atomics: sort the token positions by id, then
// let one thread per (run of equal ids, column chunk) add its tokens' rows in position order.
//  1. keys[i] = id << 32 | i (i < N), padded to a power of two with ~0: unique keys, so any
//     correct sort gives the same order, and equal ids end up in increasing position order.
//  2. A bitonic sorting network on the keys: tiles of kTile keys sort in shared memory (one block
//     of kTile/2 threads each); the merge stages with compare distance >= kTile run as one global
//     pass each, the rest of each stage inside the tiles again. N = 16k tokens: 1 + 3 tile launches
//     and 6 global ones. O(N log^2 N) compares is nothing next to reading N x C gradients.
//  3. A grid over (sorted index i, column chunk): only the first i of each run of equal ids does
//     work: acc = dtable[id, chunk]; acc += dout[pos, chunk] for the run's positions in order;
//     store. That is the CPU's order of additions exactly (bitwise equal results). A frequent
//     token is a long serial run for its threads, but the loads are independent, so it streams.
// Threads of non-leading i exit at once; a warp covers one i, so they exit together.
#include "device_util.cuh"
#include "embedding.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 2048;  // keys per shared-memory tile (16 KiB), sorted by kTile / 2 threads

__global__ void __launch_bounds__(kThreads)
    validate_kernel(const int32_t* __restrict__ ids, int64_t N, int64_t V, int* bad) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t n = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; n < N; n += stride) {
    const int32_t id = ids[n];
    if (id < 0 || id >= V) atomicMin(bad, static_cast<int>(n));
  }
}

// Grid (column-chunk blocks, token rows): no 64-bit division of a flat index, whose runtime call
// made ptxas spill registers.
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const int32_t* __restrict__ ids, const void* __restrict__ table, DType tt, int64_t ld_table,
                  void* __restrict__ out, DType ot, int64_t ld_out, int64_t C, int64_t chunks, int64_t N, bool vec) {
  const int64_t chunk = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (chunk >= chunks) return;
  const int64_t c0 = chunk * dev::kVec;
  const int cnt = static_cast<int>(C - c0 < dev::kVec ? C - c0 : dev::kVec);
  for (int64_t n = blockIdx.y; n < N; n += gridDim.y) {
    float v[dev::kVec];
    dev::load_chunk(table, tt, static_cast<int64_t>(ids[n]) * ld_table + c0, cnt, vec, v);
    dev::store_chunk(out, ot, n * ld_out + c0, cnt, vec, v);
  }
}

__global__ void __launch_bounds__(kThreads)
    keys_kernel(const int32_t* __restrict__ ids, int64_t N, int64_t padded, unsigned long long* __restrict__ keys) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < padded; i += stride) {
    keys[i] =
        i < N ? static_cast<unsigned long long>(static_cast<uint32_t>(ids[i])) << 32 | static_cast<uint64_t>(i) : ~0ull;
  }
}

// One compare-exchange of the bitonic network: elements i < l = i + j (bit j of i clear), in
// ascending order where bit k of i is clear.
__device__ __forceinline__ void compare_exchange(unsigned long long& a, unsigned long long& b, bool ascending) {
  if ((a > b) == ascending) {
    const unsigned long long t = a;
    a = b;
    b = t;
  }
}

// Each block sorts (merge_k == 0: all stages k <= tile) or finishes stage merge_k (distances j < tile)
// of its tile of `tile` keys in shared memory; blockDim.x = tile / 2.
__global__ void __launch_bounds__(kTile / 2)
    bitonic_tile_kernel(unsigned long long* __restrict__ keys, int tile, int64_t merge_k) {
  __shared__ unsigned long long s[kTile];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * tile;
  const int p = static_cast<int>(threadIdx.x);
  s[p] = keys[base + p];
  s[p + tile / 2] = keys[base + p + tile / 2];
  __syncthreads();
  for (int64_t k = merge_k == 0 ? 2 : merge_k; k <= (merge_k == 0 ? tile : merge_k); k <<= 1) {
    for (int j = static_cast<int>(k / 2 < tile / 2 ? k / 2 : tile / 2); j > 0; j >>= 1) {
      const int i = (p / j) * 2 * j + p % j;
      compare_exchange(s[i], s[i + j], ((base + i) & k) == 0);
      __syncthreads();
    }
  }
  keys[base + p] = s[p];
  keys[base + p + tile / 2] = s[p + tile / 2];
}

// One global step (k, j) of the network: a thread per pair.
__global__ void __launch_bounds__(kThreads)
    bitonic_step_kernel(unsigned long long* __restrict__ keys, int64_t padded, int64_t k, int64_t j) {
  const int64_t pairs = padded / 2, stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; p < pairs; p += stride) {
    const int64_t i = (p / j) * 2 * j + p % j;
    unsigned long long a = keys[i], b = keys[i + j];
    const bool ascending = (i & k) == 0;
    if ((a > b) == ascending) {
      keys[i] = b;
      keys[i + j] = a;
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    accumulate_kernel(const unsigned long long* __restrict__ keys, int64_t N, const void* __restrict__ dout, DType dt,
                      int64_t ld_dout, float* __restrict__ dtable, int64_t row0, int64_t rows, int64_t C,
                      int64_t chunks, int64_t items, bool vec_dout, bool vec_table) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < items; it += stride) {
    const int64_t i = it / chunks, c0 = (it - i * chunks) * dev::kVec;
    const unsigned long long id = keys[i] >> 32;
    if (i > 0 && (keys[i - 1] >> 32) == id) continue;  // not the first token of its id
    const auto rel = static_cast<int64_t>(id) - row0;
    if (rel < 0 || rel >= rows) continue;  // a row of another bucket
    const int cnt = static_cast<int>(C - c0 < dev::kVec ? C - c0 : dev::kVec);
    float acc[dev::kVec];
    float* row = dtable + rel * C;
    dev::load_chunk(row, DType::F32, c0, cnt, vec_table, acc);
    for (int64_t r = i; r < N; ++r) {
      const unsigned long long key = keys[r];
      if ((key >> 32) != id) break;
      const auto pos = static_cast<int64_t>(key & 0xffffffffull);
      float g[dev::kVec];
      dev::load_chunk(dout, dt, pos * ld_dout + c0, cnt, vec_dout, g);
      LLM_UNROLL_8
      for (int k = 0; k < dev::kVec; ++k) acc[k] += g[k];
    }
    dev::store_chunk(row, DType::F32, c0, cnt, vec_table, acc);
  }
}

int64_t padded_size(int64_t N) {
  int64_t p = 1;
  while (p < N) p <<= 1;
  return p;
}

}  // namespace

void embedding_validate(const int32_t* ids, int64_t N, int64_t V, int* bad, cudaStream_t stream) {
  if (N == 0) return;
  LLM_LAUNCH(validate_kernel, dim3(dev::grid_for(N, kThreads)), dim3(kThreads), 0, stream, ids, N, V, bad);
  LLM_CUDA_CHECK(cudaGetLastError());
}

void embedding_gather(const int32_t* ids, int64_t N, const void* table, DType tt, int64_t ld_table, void* out, DType ot,
                      int64_t ld_out, int64_t C, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  const int64_t chunks = (C + dev::kVec - 1) / dev::kVec;
  const bool vec =
      dev::rows_aligned16(table, ld_table, dtype_size(tt)) && dev::rows_aligned16(out, ld_out, dtype_size(ot));
  const dim3 grid(dev::grid_for(chunks, kThreads), static_cast<unsigned>(N < 65535 ? N : 65535));
  LLM_LAUNCH(gather_kernel, grid, dim3(kThreads), 0, stream, ids, table, tt, ld_table, out, ot, ld_out, C, chunks, N,
             vec);
  LLM_CUDA_CHECK(cudaGetLastError());
}

size_t embedding_scatter_scratch(int64_t N) { return static_cast<size_t>(padded_size(N)) * sizeof(unsigned long long); }

void embedding_scatter_add(const int32_t* ids, int64_t N, const void* dout, DType dt, int64_t ld_dout, float* dtable,
                           int64_t row0, int64_t rows, int64_t C, void* scratch, cudaStream_t stream) {
  if (N == 0 || C == 0 || rows == 0) return;
  LLM_CHECK(N <= (int64_t(1) << 31), "embedding_backward: ", N, " tokens exceed the 2^31 the sort handles");
  auto* keys = static_cast<unsigned long long*>(scratch);
  const int64_t padded = padded_size(N);
  LLM_LAUNCH(keys_kernel, dim3(dev::grid_for(padded, kThreads)), dim3(kThreads), 0, stream, ids, N, padded, keys);
  LLM_CUDA_CHECK(cudaGetLastError());
  if (padded > 1) {
    const int tile = static_cast<int>(padded < kTile ? padded : kTile);
    const auto blocks = static_cast<unsigned>(padded / tile);
    LLM_LAUNCH(bitonic_tile_kernel, dim3(blocks), dim3(static_cast<unsigned>(tile / 2)), 0, stream, keys, tile,
               int64_t(0));
    LLM_CUDA_CHECK(cudaGetLastError());
    for (int64_t k = 2 * int64_t(tile); k <= padded; k <<= 1) {
      for (int64_t j = k / 2; j >= tile; j >>= 1) {
        LLM_LAUNCH(bitonic_step_kernel, dim3(dev::grid_for(padded / 2, kThreads)), dim3(kThreads), 0, stream, keys,
                   padded, k, j);
        LLM_CUDA_CHECK(cudaGetLastError());
      }
      LLM_LAUNCH(bitonic_tile_kernel, dim3(blocks), dim3(static_cast<unsigned>(tile / 2)), 0, stream, keys, tile, k);
      LLM_CUDA_CHECK(cudaGetLastError());
    }
  }
  const int64_t chunks = (C + dev::kVec - 1) / dev::kVec, items = N * chunks;
  const bool vec_dout = dev::rows_aligned16(dout, ld_dout, dtype_size(dt));
  const bool vec_table = dev::rows_aligned16(dtable, C, sizeof(float));
  LLM_LAUNCH(accumulate_kernel, dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream, keys, N, dout, dt,
             ld_dout, dtable, row0, rows, C, chunks, items, vec_dout, vec_table);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
