// Launch configuration: 256 threads per block, grid-stride over (row, chunk) work items, a chunk
// being one 16-byte vector of the narrower dtype (kVec = 8 elements for a conversion; 16, 8, 4
// elements of 1, 2, 4 bytes for a bit copy), at most dev::kMaxBlocks blocks.
#include <cstring>

#include "copy.cuh"
#include "device_util.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

constexpr int kThreads = 256;

struct RowAt {
  int64_t src, dst;  // element offsets of the row
};

__device__ __forceinline__ RowAt row_offsets(const CopyShape& s, int64_t row) {
  const int64_t i2 = row % s.size[2];
  const int64_t r = row / s.size[2];
  const int64_t i1 = r % s.size[1], i0 = r / s.size[1];
  return {i0 * s.src_stride[0] + i1 * s.src_stride[1] + i2 * s.src_stride[2],
          i0 * s.dst_stride[0] + i1 * s.dst_stride[1] + i2 * s.dst_stride[2]};
}

__global__ void __launch_bounds__(kThreads)
    convert_kernel(const void* __restrict__ src, DType st, void* __restrict__ dst, DType dt, CopyShape s,
                   int64_t chunks, int64_t items, bool vec) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < items; it += stride) {
    const int64_t row = it / chunks, c0 = (it - row * chunks) * dev::kVec;
    const RowAt at = row_offsets(s, row);
    const int cnt = static_cast<int>(s.cols - c0 < dev::kVec ? s.cols - c0 : dev::kVec);
    float v[dev::kVec];
    dev::load_chunk(src, st, at.src + c0, cnt, vec, v);
    dev::store_chunk(dst, dt, at.dst + c0, cnt, vec, v);
  }
}

// W: the element's bit pattern type; a chunk is one 16-byte word.
template <class W>
__global__ void __launch_bounds__(kThreads) raw_copy_kernel(const W* __restrict__ src, W* __restrict__ dst, CopyShape s,
                                                            int64_t chunks, int64_t items, bool vec) {
  constexpr int kElems = 16 / static_cast<int>(sizeof(W));
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < items; it += stride) {
    const int64_t row = it / chunks, c0 = (it - row * chunks) * kElems;
    const RowAt at = row_offsets(s, row);
    const int64_t cnt = s.cols - c0 < kElems ? s.cols - c0 : kElems;
    if (vec && cnt == kElems) {
      *reinterpret_cast<uint4*>(dst + at.dst + c0) = *reinterpret_cast<const uint4*>(src + at.src + c0);
    } else {
      for (int64_t k = 0; k < cnt; ++k) dst[at.dst + c0 + k] = src[at.src + c0 + k];
    }
  }
}

template <class W>
__global__ void __launch_bounds__(kThreads) fill_kernel(W* __restrict__ p, int64_t n, W value, uint4 word, bool vec) {
  constexpr int kElems = 16 / static_cast<int>(sizeof(W));
  const int64_t chunks = (n + kElems - 1) / kElems;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; it < chunks; it += stride) {
    const int64_t i0 = it * kElems;
    if (vec && i0 + kElems <= n) {
      *reinterpret_cast<uint4*>(p + i0) = word;
    } else {
      for (int64_t i = i0; i < n && i < i0 + kElems; ++i) p[i] = value;
    }
  }
}

bool rows_aligned(const void* base, const int64_t (&strides)[3], size_t es) {
  if (!dev::aligned16(base)) return false;
  for (int64_t s : strides) {
    if ((s * static_cast<int64_t>(es)) % 16 != 0) return false;
  }
  return true;
}

template <class W>
void launch_raw(const void* src, void* dst, const CopyShape& s, int64_t rows, cudaStream_t stream) {
  constexpr int64_t kElems = 16 / sizeof(W);
  const int64_t chunks = (s.cols + kElems - 1) / kElems, items = rows * chunks;
  const bool vec = rows_aligned(src, s.src_stride, sizeof(W)) && rows_aligned(dst, s.dst_stride, sizeof(W));
  LLM_LAUNCH((raw_copy_kernel<W>), dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream,
             static_cast<const W*>(src), static_cast<W*>(dst), s, chunks, items, vec);
  LLM_CUDA_CHECK(cudaGetLastError());
}

template <class W>
void launch_fill(void* p, int64_t n, uint32_t pattern, cudaStream_t stream) {
  W value;
  std::memcpy(&value, &pattern, sizeof(W));  // the low bytes on a little-endian machine
  W lanes[16 / sizeof(W)];
  for (W& l : lanes) l = value;
  uint4 word;
  std::memcpy(&word, lanes, sizeof word);
  const int64_t chunks = (n + int64_t(16 / sizeof(W)) - 1) / int64_t(16 / sizeof(W));
  LLM_LAUNCH((fill_kernel<W>), dim3(dev::grid_for(chunks, kThreads)), dim3(kThreads), 0, stream, static_cast<W*>(p), n,
             value, word, dev::aligned16(p));
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void copy_strided(const void* src, DType src_dtype, void* dst, DType dst_dtype, const CopyShape& s,
                  cudaStream_t stream) {
  const int64_t rows = s.size[0] * s.size[1] * s.size[2];
  if (rows == 0 || s.cols == 0) return;
  if (src_dtype == dst_dtype) {
    switch (dtype_size(src_dtype)) {
      case 1: return launch_raw<unsigned char>(src, dst, s, rows, stream);
      case 2: return launch_raw<unsigned short>(src, dst, s, rows, stream);
      default: return launch_raw<unsigned>(src, dst, s, rows, stream);
    }
  }
  const int64_t chunks = (s.cols + dev::kVec - 1) / dev::kVec, items = rows * chunks;
  // A chunk of kVec elements is 16 or 32 bytes, so aligned row starts make every chunk aligned.
  const bool vec =
      rows_aligned(src, s.src_stride, dtype_size(src_dtype)) && rows_aligned(dst, s.dst_stride, dtype_size(dst_dtype));
  LLM_LAUNCH(convert_kernel, dim3(dev::grid_for(items, kThreads)), dim3(kThreads), 0, stream, src, src_dtype, dst,
             dst_dtype, s, chunks, items, vec);
  LLM_CUDA_CHECK(cudaGetLastError());
}

void fill_pattern(void* p, int64_t n, int elem_bytes, uint32_t pattern, cudaStream_t stream) {
  if (n == 0) return;
  switch (elem_bytes) {
    case 1: return launch_fill<unsigned char>(p, n, pattern, stream);
    case 2: return launch_fill<unsigned short>(p, n, pattern, stream);
    default: return launch_fill<unsigned>(p, n, pattern, stream);
  }
}

}  // namespace llm::LLM_CUDA_NS
