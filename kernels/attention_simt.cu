// Attention with fp32 FMA tiles: every storage dtype (fp32 training on a GPU, or f16/bf16 where
// the tensor-core kernels do not apply: other head dims, bf16 before sm_80, unaligned views) and
// any even head_dim up to 128. Same decomposition as the tensor-core kernels (online-softmax
// forward; dK/dV and dQ backward kernels that recompute P, no atomics), same fixed orders.
// Tiles are converted to fp32 in shared memory. A row of a tile is served by a quad of 4 lanes:
// each lane computes 8 (or 4) of the row's scores and owns the column pairs d = 8i + 2p of the
// row's accumulator (p = lane % 4), so a row's softmax needs only two quad shuffles.
// Also here: the backward's delta = rowsum(dO * O) and the sum of dK/dV partials over parts.
#include <algorithm>

#include "attention_common.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

using namespace attn;

// Rows of fp32 tiles are padded by 2 floats: the float2 reads of a quad's 4 rows (or a warp's
// 8 rows) then fall into distinct banks.
template <int kD>
inline constexpr int kPad = kD + 2;

// rows [0, rows) x [0, D) of a head view into an fp32 tile of pitch `pitch`, times `mul`; rows
// >= valid are zero.
template <class T>
__device__ __forceinline__ void load_rows(float* dst, int pitch, const T* src, int64_t st, int rows, int valid, int D,
                                          float mul, int tid, int threads) {
  const int half = D / 2;
  for (int i = tid; i < rows * half; i += threads) {
    const int r = i / half, c = 2 * (i % half);
    float x = 0.0f, y = 0.0f;
    if (r < valid) {
      x = to_f(src[int64_t(r) * st + c]) * mul;
      y = to_f(src[int64_t(r) * st + c + 1]) * mul;
    }
    dst[r * pitch + c] = x;
    dst[r * pitch + c + 1] = y;
  }
}

// acc[2i], acc[2i+1] += w * row[d], row[d+1] for the lane's column pairs d = 8i + 2p < D.
template <int kD>
__device__ __forceinline__ void axpy_pairs(float* acc, float w, const float* row, int p, int D) {
#pragma unroll
  for (int i = 0; i < kD / 8; ++i) {
    const int d = 8 * i + 2 * p;
    if (d < D) {
      const float2 r = *reinterpret_cast<const float2*>(row + d);
      acc[2 * i] += w * r.x;
      acc[2 * i + 1] += w * r.y;
    }
  }
}

template <class T, int kD>
__device__ __forceinline__ void store_pairs(T* dst, const float* acc, float mul, int p, int D) {
#pragma unroll
  for (int i = 0; i < kD / 8; ++i) {
    const int d = 8 * i + 2 * p;
    if (d < D) {
      dst[d] = from_f<T>(acc[2 * i] * mul);
      dst[d + 1] = from_f<T>(acc[2 * i + 1] * mul);
    }
  }
}

// The first key query q (of T) of row b sees: its document's start with positions, else 0.
__device__ __forceinline__ int first_key(const int32_t* positions, int b, int T, int q) {
  if (positions == nullptr || q >= T) return 0;
  const int p = positions[int64_t(b) * T + q];
  return p < 0 ? q : p > q ? 0 : q - p;
}

// ---- forward -------------------------------------------------------------------------------------
constexpr int kFwdRows = 16, kFwdKeys = 32, kFwdThreads = 64;

template <int kD>
constexpr size_t fwd_smem_bytes() {
  return size_t(kFwdRows * kPad<kD> + kFwdKeys * kPad<kD> + kFwdKeys * kD + kFwdRows * (kFwdKeys + 1)) * 4;
}

// Minimum 1 block per SM: without it ptxas held the D = 64 f16/bf16 variants at 64 registers and
// spilled on sm_80 (cuda_resources); 64 threads of up to 123 registers still fit 8 blocks per SM.
template <class T, int kD>
__global__ void __launch_bounds__(kFwdThreads, 1) attn_fwd_simt_kernel(AttnFwdArgs a) {
  constexpr int kQP = kPad<kD>, kPP = kFwdKeys + 1;
  LLM_DYNAMIC_SHARED(float, smem);
  float* qs = smem;                 // [16][kQP], scaled
  float* ks = qs + kFwdRows * kQP;  // [32][kQP]
  float* vs = ks + kFwdKeys * kQP;  // [32][kD]
  float* ps = vs + kFwdKeys * kD;   // [16][33]
  const int tid = static_cast<int>(threadIdx.x), r = tid >> 2, p = tid & 3;
  const int tile = static_cast<int>(gridDim.x - 1 - blockIdx.x);  // heavy tiles first
  const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z), kvh = h / a.d.group;
  const int Tq = a.d.Tq, Tk = a.d.Tk, D = a.d.D, q0 = tile * kFwdRows;
  const int row = Tk - Tq + q0 + r;                         // absolute position of the quad's row
  const int first = first_key(a.positions, b, Tq, q0 + r);  // documents: keys before it are masked

  load_rows(qs, kQP, head_row<const T>(a.q, b, q0, h), a.q.st, kFwdRows, Tq - q0, D, a.d.scale, tid, kFwdThreads);
  float o[kD / 4];
#pragma unroll
  for (int i = 0; i < kD / 4; ++i) o[i] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  const T* kp = head_row<const T>(a.k, b, 0, kvh);
  const T* vp = head_row<const T>(a.v, b, 0, kvh);
  const int kend = min(Tk, Tk - Tq + q0 + kFwdRows);
  for (int k0 = 0; k0 < kend; k0 += kFwdKeys) {
    __syncthreads();  // the previous tile is no longer read
    load_rows(ks, kQP, kp + int64_t(k0) * a.k.st, a.k.st, kFwdKeys, Tk - k0, D, 1.0f, tid, kFwdThreads);
    load_rows(vs, kD, vp + int64_t(k0) * a.v.st, a.v.st, kFwdKeys, Tk - k0, D, 1.0f, tid, kFwdThreads);
    __syncthreads();
    float s[8] = {};
    for (int c = 0; c < D; c += 2) {
      const float2 qv = *reinterpret_cast<const float2*>(qs + r * kQP + c);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float2 kv = *reinterpret_cast<const float2*>(ks + (p + 4 * j) * kQP + c);
        s[j] += qv.x * kv.x + qv.y * kv.y;
      }
    }
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int key = k0 + p + 4 * j;
      if (key > row || key >= Tk || key < first) s[j] = -INFINITY;
      mx = fmaxf(mx, s[j]);
    }
    // Causal: key 0 lies in the first tile and every row sees it, so mnew is finite from then on.
    // Documents: a row's tiles before its document are all masked; while mnew is -inf, exponents
    // are taken against 0 so they give 0, not NaN.
    const float mnew = fmaxf(m, quad_max(mx)), mref = mnew == -INFINITY ? 0.0f : mnew, alpha = expf(m - mref);
    m = mnew;
    l *= alpha;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float e = expf(s[j] - mref);
      l += e;
      ps[r * kPP + p + 4 * j] = e;
    }
#pragma unroll
    for (int i = 0; i < kD / 4; ++i) o[i] *= alpha;
    __syncwarp();  // the quad's P row is written
    for (int j = 0; j < kFwdKeys; ++j) axpy_pairs<kD>(o, ps[r * kPP + j], vs + j * kD, p, D);
  }
  l = quad_sum(l);
  const int q = q0 + r;
  if (q < Tq) {
    store_pairs<T, kD>(head_row<T>(a.out, b, q, h), o, 1.0f / l, p, D);
    if (a.lse != nullptr && p == 0) a.lse[(int64_t(b) * a.d.Hq + h) * Tq + q] = m + logf(l);
  }
}

// ---- backward: dQ --------------------------------------------------------------------------------
constexpr int kDqRows = 16, kDqKeys = 32, kDqThreads = 64;

template <int kD>
constexpr size_t dq_smem_bytes() {
  return size_t(2 * kDqRows * kPad<kD> + 2 * kDqKeys * kPad<kD> + kDqRows * (kDqKeys + 1)) * 4;
}

template <class T, int kD>
__global__ void __launch_bounds__(kDqThreads) attn_dq_simt_kernel(AttnBwdArgs a) {
  constexpr int kP = kPad<kD>, kSP = kDqKeys + 1;
  LLM_DYNAMIC_SHARED(float, smem);
  float* qs = smem;                // [16][kP]
  float* dos = qs + kDqRows * kP;  // [16][kP]
  float* ks = dos + kDqRows * kP;  // [32][kP]
  float* vs = ks + kDqKeys * kP;   // [32][kP]
  float* dss = vs + kDqKeys * kP;  // [16][33]
  const int tid = static_cast<int>(threadIdx.x), r = tid >> 2, p = tid & 3;
  const int tile = static_cast<int>(gridDim.x - 1 - blockIdx.x);
  const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z), kvh = h / a.d.group;
  const int nT = a.d.Tq, D = a.d.D, q0 = tile * kDqRows, q = q0 + r;

  load_rows(qs, kP, head_row<const T>(a.q, b, q0, h), a.q.st, kDqRows, nT - q0, D, 1.0f, tid, kDqThreads);
  load_rows(dos, kP, head_row<const T>(a.dout, b, q0, h), a.dout.st, kDqRows, nT - q0, D, 1.0f, tid, kDqThreads);
  const int64_t at = (int64_t(b) * a.d.Hq + h) * nT + q;
  const float lse = q < nT ? a.lse[at] : 0.0f, delta = q < nT ? a.delta[at] : 0.0f;
  const int first = first_key(a.positions, b, nT, q);
  float dq[kD / 4];
#pragma unroll
  for (int i = 0; i < kD / 4; ++i) dq[i] = 0.0f;
  const T* kp = head_row<const T>(a.k, b, 0, kvh);
  const T* vp = head_row<const T>(a.v, b, 0, kvh);
  const int kend = min(nT, q0 + kDqRows);
  for (int k0 = 0; k0 < kend; k0 += kDqKeys) {
    __syncthreads();
    load_rows(ks, kP, kp + int64_t(k0) * a.k.st, a.k.st, kDqKeys, nT - k0, D, 1.0f, tid, kDqThreads);
    load_rows(vs, kP, vp + int64_t(k0) * a.v.st, a.v.st, kDqKeys, nT - k0, D, 1.0f, tid, kDqThreads);
    __syncthreads();
    float s[8] = {}, dp[8] = {};
    for (int c = 0; c < D; c += 2) {
      const float2 qv = *reinterpret_cast<const float2*>(qs + r * kP + c);
      const float2 dv = *reinterpret_cast<const float2*>(dos + r * kP + c);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float2 kv = *reinterpret_cast<const float2*>(ks + (p + 4 * j) * kP + c);
        const float2 vv = *reinterpret_cast<const float2*>(vs + (p + 4 * j) * kP + c);
        s[j] += qv.x * kv.x + qv.y * kv.y;
        dp[j] += dv.x * vv.x + dv.y * vv.y;
      }
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int key = k0 + p + 4 * j;
      const float pr = key <= q && key >= first && key < nT ? expf(s[j] * a.d.scale - lse) : 0.0f;
      dss[r * kSP + p + 4 * j] = pr * (dp[j] - delta);
    }
    __syncwarp();
    for (int j = 0; j < kDqKeys; ++j) axpy_pairs<kD>(dq, dss[r * kSP + j], ks + j * kP, p, D);
  }
  if (q < nT) store_pairs<T, kD>(head_row<T>(a.dq, b, q, h), dq, a.d.scale, p, D);
}

// ---- backward: dK, dV ----------------------------------------------------------------------------
constexpr int kKvKeys = kAttnSimtKeyRows, kKvQueries = 16, kKvThreads = 128;

template <int kD>
constexpr size_t dkdv_smem_bytes() {
  return size_t(2 * kKvKeys * kPad<kD> + 2 * kKvQueries * kPad<kD> + 2 * kKvKeys * (kKvQueries + 1) + 3 * kKvQueries) *
         4;
}

// Without a minimum of one block per SM ptxas caps this kernel at 128 registers and spills at
// head_dim 128; with it, 150 registers still leave three 128-thread blocks per SM.
template <class T, int kD>
__global__ void __launch_bounds__(kKvThreads, 1) attn_dkdv_simt_kernel(AttnBwdArgs a) {
  constexpr int kP = kPad<kD>, kSP = kKvQueries + 1;
  LLM_DYNAMIC_SHARED(float, smem);
  float* ks = smem;                                           // [32][kP]
  float* vs = ks + kKvKeys * kP;                              // [32][kP]
  float* qs = vs + kKvKeys * kP;                              // [16][kP]
  float* dos = qs + kKvQueries * kP;                          // [16][kP]
  float* ps = dos + kKvQueries * kP;                          // [32][17]  P^T
  float* dss = ps + kKvKeys * kSP;                            // [32][17]  dS^T
  float* lses = dss + kKvKeys * kSP;                          // [16]
  float* deltas = lses + kKvQueries;                          // [16]
  int* firsts = reinterpret_cast<int*>(deltas + kKvQueries);  // [16] each query's first key
  const int tid = static_cast<int>(threadIdx.x), kr = tid >> 2, p = tid & 3;
  const int parts = a.parts, kvh = static_cast<int>(blockIdx.y) / parts, part = static_cast<int>(blockIdx.y) % parts;
  const int b = static_cast<int>(blockIdx.z), nT = a.d.Tq, D = a.d.D;
  const int k0 = static_cast<int>(blockIdx.x) * kKvKeys, key = k0 + kr;
  const int per_part = (a.d.group + parts - 1) / parts;
  const int h_begin = kvh * a.d.group + part * per_part;
  const int h_end = min(h_begin + per_part, (kvh + 1) * a.d.group);

  load_rows(ks, kP, head_row<const T>(a.k, b, k0, kvh), a.k.st, kKvKeys, nT - k0, D, 1.0f, tid, kKvThreads);
  load_rows(vs, kP, head_row<const T>(a.v, b, k0, kvh), a.v.st, kKvKeys, nT - k0, D, 1.0f, tid, kKvThreads);
  float dk[kD / 4], dv[kD / 4];
#pragma unroll
  for (int i = 0; i < kD / 4; ++i) dk[i] = dv[i] = 0.0f;
  for (int h = h_begin; h < h_end; ++h) {
    const int64_t hrow = (int64_t(b) * a.d.Hq + h) * nT;
    for (int q0 = (k0 / kKvQueries) * kKvQueries; q0 < nT; q0 += kKvQueries) {
      __syncthreads();
      load_rows(qs, kP, head_row<const T>(a.q, b, q0, h), a.q.st, kKvQueries, nT - q0, D, 1.0f, tid, kKvThreads);
      load_rows(dos, kP, head_row<const T>(a.dout, b, q0, h), a.dout.st, kKvQueries, nT - q0, D, 1.0f, tid, kKvThreads);
      if (tid < kKvQueries) {
        lses[tid] = q0 + tid < nT ? a.lse[hrow + q0 + tid] : 0.0f;
        deltas[tid] = q0 + tid < nT ? a.delta[hrow + q0 + tid] : 0.0f;
        firsts[tid] = first_key(a.positions, b, nT, q0 + tid);
      }
      __syncthreads();
      float s[4] = {}, dp[4] = {};
      for (int c = 0; c < D; c += 2) {
        const float2 kv = *reinterpret_cast<const float2*>(ks + kr * kP + c);
        const float2 vv = *reinterpret_cast<const float2*>(vs + kr * kP + c);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 qv = *reinterpret_cast<const float2*>(qs + (p + 4 * j) * kP + c);
          const float2 dv2 = *reinterpret_cast<const float2*>(dos + (p + 4 * j) * kP + c);
          s[j] += kv.x * qv.x + kv.y * qv.y;
          dp[j] += vv.x * dv2.x + vv.y * dv2.y;
        }
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int col = p + 4 * j, q = q0 + col;
        const float pr =
            q >= key && q < nT && key < nT && key >= firsts[col] ? expf(s[j] * a.d.scale - lses[col]) : 0.0f;
        ps[kr * kSP + col] = pr;
        dss[kr * kSP + col] = pr * (dp[j] - deltas[col]);
      }
      __syncwarp();
      for (int j = 0; j < kKvQueries; ++j) {
        axpy_pairs<kD>(dv, ps[kr * kSP + j], dos + j * kP, p, D);
        axpy_pairs<kD>(dk, dss[kr * kSP + j], qs + j * kP, p, D);
      }
    }
  }
  if (key >= nT) return;
  if (parts == 1) {
    store_pairs<T, kD>(head_row<T>(a.dk, b, key, kvh), dk, a.d.scale, p, D);
    store_pairs<T, kD>(head_row<T>(a.dv, b, key, kvh), dv, 1.0f, p, D);
  } else {  // fp32 partials [part, B, T, Hkv, D]
    const int64_t row = ((int64_t(part) * a.d.B + b) * nT + key) * a.d.Hkv + kvh;
    store_pairs<float, kD>(a.dk_part + row * D, dk, a.d.scale, p, D);
    store_pairs<float, kD>(a.dv_part + row * D, dv, 1.0f, p, D);
  }
}

// ---- backward helpers ----------------------------------------------------------------------------
// delta[b, h, t] = sum_d dout * out: one warp per (b, t, h) row.
template <class T>
__global__ void __launch_bounds__(128) attn_delta_kernel(AttnBwdArgs a) {
  const int warp = static_cast<int>((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int Hq = a.d.Hq, nT = a.d.Tq;
  if (warp >= a.d.B * nT * Hq) return;  // whole warps leave together
  const int h = warp % Hq, t = (warp / Hq) % nT, b = warp / (Hq * nT);
  const T* o = head_row<const T>(a.out, b, t, h);
  const T* d = head_row<const T>(a.dout, b, t, h);
  float acc = 0.0f;
  for (int c = lane; c < a.d.D; c += 32) acc += to_f(o[c]) * to_f(d[c]);
  acc = warp_sum(acc);
  if (lane == 0) a.delta[(int64_t(b) * Hq + h) * nT + t] = acc;
}

// dk, dv (b, t, kvh, d) = the sum of the parts' partials, in part order.
template <class T>
__global__ void __launch_bounds__(256) attn_reduce_parts_kernel(AttnBwdArgs a) {
  const int64_t n = int64_t(a.d.B) * a.d.Tq * a.d.Hkv * a.d.D;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    float sk = 0.0f, sv = 0.0f;
    for (int part = 0; part < a.parts; ++part) {
      sk += a.dk_part[part * n + i];
      sv += a.dv_part[part * n + i];
    }
    const int D = a.d.D, Hkv = a.d.Hkv, nT = a.d.Tq;
    const int d = static_cast<int>(i % D), kvh = static_cast<int>((i / D) % Hkv);
    const int t = static_cast<int>((i / (int64_t(D) * Hkv)) % nT), b = static_cast<int>(i / (int64_t(D) * Hkv * nT));
    head_row<T>(a.dk, b, t, kvh)[d] = from_f<T>(sk);
    head_row<T>(a.dv, b, t, kvh)[d] = from_f<T>(sv);
  }
}

template <class T, int kD>
void launch_fwd(const AttnFwdArgs& a, cudaStream_t stream) {
  constexpr size_t smem = fwd_smem_bytes<kD>();
  allow_smem(attn_fwd_simt_kernel<T, kD>, smem);
  const dim3 grid(static_cast<unsigned>((a.d.Tq + kFwdRows - 1) / kFwdRows), static_cast<unsigned>(a.d.Hq),
                  static_cast<unsigned>(a.d.B));
  LLM_LAUNCH((attn_fwd_simt_kernel<T, kD>), grid, dim3(kFwdThreads), smem, stream, a);
  LLM_CUDA_CHECK(cudaGetLastError());
}

template <class T, int kD>
void launch_bwd(const AttnBwdArgs& a, cudaStream_t stream) {
  constexpr size_t kv_smem = dkdv_smem_bytes<kD>(), q_smem = dq_smem_bytes<kD>();
  const auto B = static_cast<unsigned>(a.d.B);
  allow_smem(attn_dkdv_simt_kernel<T, kD>, kv_smem);
  const dim3 kgrid(static_cast<unsigned>((a.d.Tq + kKvKeys - 1) / kKvKeys), static_cast<unsigned>(a.d.Hkv * a.parts),
                   B);
  LLM_LAUNCH((attn_dkdv_simt_kernel<T, kD>), kgrid, dim3(kKvThreads), kv_smem, stream, a);
  LLM_CUDA_CHECK(cudaGetLastError());
  allow_smem(attn_dq_simt_kernel<T, kD>, q_smem);
  const dim3 qgrid(static_cast<unsigned>((a.d.Tq + kDqRows - 1) / kDqRows), static_cast<unsigned>(a.d.Hq), B);
  LLM_LAUNCH((attn_dq_simt_kernel<T, kD>), qgrid, dim3(kDqThreads), q_smem, stream, a);
  LLM_CUDA_CHECK(cudaGetLastError());
}

// Calls f with a value of the storage type.
template <class F>
void by_dtype(AttnDtype dt, F&& f) {
  switch (dt) {
    case AttnDtype::F32: f(float{}); break;
    case AttnDtype::F16: f(__half{}); break;
    case AttnDtype::BF16: f(__nv_bfloat16{}); break;
  }
}

}  // namespace

void attn_fwd_simt(const AttnFwdArgs& a, cudaStream_t stream) {
  by_dtype(a.d.dtype, [&](auto x) {
    using T = decltype(x);
    a.d.D <= 64 ? launch_fwd<T, 64>(a, stream) : launch_fwd<T, 128>(a, stream);
  });
}

void attn_bwd_simt(const AttnBwdArgs& a, cudaStream_t stream) {
  by_dtype(a.d.dtype, [&](auto x) {
    using T = decltype(x);
    a.d.D <= 64 ? launch_bwd<T, 64>(a, stream) : launch_bwd<T, 128>(a, stream);
  });
}

void attn_bwd_delta(const AttnBwdArgs& a, cudaStream_t stream) {
  const int64_t rows = int64_t(a.d.B) * a.d.Tq * a.d.Hq;
  const auto blocks = static_cast<unsigned>((rows + 3) / 4);
  by_dtype(a.d.dtype, [&](auto x) {
    using T = decltype(x);
    LLM_LAUNCH((attn_delta_kernel<T>), dim3(blocks), dim3(128), 0, stream, a);
  });
  LLM_CUDA_CHECK(cudaGetLastError());
}

void attn_bwd_reduce_parts(const AttnBwdArgs& a, cudaStream_t stream) {
  const int64_t n = int64_t(a.d.B) * a.d.Tq * a.d.Hkv * a.d.D;
  const auto blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 4096));
  by_dtype(a.d.dtype, [&](auto x) {
    using T = decltype(x);
    LLM_LAUNCH((attn_reduce_parts_kernel<T>), dim3(blocks), dim3(256), 0, stream, a);
  });
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace llm::LLM_CUDA_NS
