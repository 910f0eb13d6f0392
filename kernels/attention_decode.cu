// Decode attention: one query token (Tq == 1) over Tk cached keys, the memory-bound inference
// step. A block serves up to 8 query heads of one kv head (a GQA group), so each K and V row is
// read from memory once for all of them; its 4 warps take 32-key chunks of the block's key range
// in turn. In a chunk, lane i scores key i against every head (q in shared memory, broadcast),
// the warp updates each head's running max / sum, and for P V the lanes switch to owning column
// pairs (d = 2 lane + 64 i) and walk the chunk's V rows, which are coalesced. Warps are combined
// in the block in warp order; when the keys are split over several blocks (short batches, long
// caches: enough blocks to fill the GPU), a second kernel combines the splits in split order.
#include "attention_common.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

using namespace attn;

constexpr int kHeads = 8, kWarps = 4, kThreads = 32 * kWarps;
static_assert(kAttnDecodeKeys == 32 * kWarps, "a split is a whole number of warp chunks");

template <int kD>
constexpr size_t decode_smem_bytes() {
  return size_t(kHeads * kD + kWarps * kHeads * 32 + 2 * kWarps * kHeads + kWarps * kHeads * kD) * 4;
}

struct DecodeWs {
  float* o;  // [B, Hq, splits, D] unnormalised partial outputs
  float* m;  // [B, Hq, splits] partial max (scaled scores)
  float* l;  // [B, Hq, splits] partial sum of exp(s - m)
};

DecodeWs decode_ws(float* ws, const AttnDims& d, int splits) {
  const int64_t rows = int64_t(d.B) * d.Hq * splits;
  return {ws, ws + rows * d.D, ws + rows * d.D + rows};
}

// The explicit minimum of one block per SM lifts ptxas's default register cap (~96 here), under
// which it spilled; the kernel is bound by K/V bandwidth, not by occupancy.
template <class T, int kD>
__global__ void __launch_bounds__(kThreads, 1) attn_decode_kernel(AttnFwdArgs a, int keys_per_split, DecodeWs ws) {
  constexpr int kPairs = kD / 64;  // column pairs per lane
  LLM_DYNAMIC_SHARED(float, smem);
  float* qs = smem;                       // [8][kD] scaled queries
  float* ps = qs + kHeads * kD;           // [4][8][32] each warp's P of its chunk
  float* wm = ps + kWarps * kHeads * 32;  // [4][8] per-warp max
  float* wl = wm + kWarps * kHeads;       // [4][8] per-warp sum
  float* wo = wl + kWarps * kHeads;       // [4][8][kD] per-warp output
  const int tid = static_cast<int>(threadIdx.x), warp = tid >> 5, lane = tid & 31;
  const int hchunks = (a.d.group + kHeads - 1) / kHeads, D = a.d.D;
  // Keys in use: all of them, or (a step replayed from a graph) the position read on the device,
  // clamped into the cache so that a bad position cannot read outside it.
  const int Tk = a.pos == nullptr ? a.d.Tk : max(1, min(a.d.Tk, *a.pos + 1));
  const int kvh = static_cast<int>(blockIdx.y) / hchunks, hc = static_cast<int>(blockIdx.y) % hchunks;
  const int b = static_cast<int>(blockIdx.z), split = static_cast<int>(blockIdx.x),
            splits = static_cast<int>(gridDim.x);
  const int h0 = kvh * a.d.group + hc * kHeads, nh = min(kHeads, a.d.group - hc * kHeads);
  const int kb = split * keys_per_split, ke = min(Tk, kb + keys_per_split);
  if (kb >= Tk) {
    // A split past the keys in use (only with a.pos; split 0 always has keys, so splits > 1):
    // an empty partial, which the combine weighs by exp(-inf - M) = 0. The whole block returns
    // here, before any barrier.
    for (int i = tid; i < nh * D; i += kThreads) {
      const int64_t row = (int64_t(b) * a.d.Hq + h0 + i / D) * splits + split;
      ws.o[row * D + i % D] = 0.0f;
      if (i % D == 0) {
        ws.m[row] = -INFINITY;
        ws.l[row] = 0.0f;
      }
    }
    return;
  }

  for (int i = tid; i < kHeads * D; i += kThreads) {
    const int hh = i / D, c = i % D;
    qs[hh * kD + c] = hh < nh ? to_f(head_row<const T>(a.q, b, 0, h0 + hh)[c]) * a.d.scale : 0.0f;
  }
  __syncthreads();

  float m[kHeads], l[kHeads], o[kHeads][2 * kPairs];
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) {
    m[hh] = -INFINITY;
    l[hh] = 0.0f;
#pragma unroll
    for (int i = 0; i < 2 * kPairs; ++i) o[hh][i] = 0.0f;
  }
  const T* kp = head_row<const T>(a.k, b, 0, kvh);
  const T* vp = head_row<const T>(a.v, b, 0, kvh);
  float* wps = ps + warp * kHeads * 32;
  for (int c0 = kb + warp * 32; c0 < ke; c0 += kThreads) {
    const int key = c0 + lane;
    float s[kHeads] = {};
    if (key < ke) {
      const T* kr = kp + int64_t(key) * a.k.st;
      for (int c = 0; c < D; c += 2) {
        const float kx = to_f(kr[c]), ky = to_f(kr[c + 1]);
#pragma unroll
        for (int hh = 0; hh < kHeads; ++hh) s[hh] += qs[hh * kD + c] * kx + qs[hh * kD + c + 1] * ky;
      }
    }
#pragma unroll
    for (int hh = 0; hh < kHeads; ++hh) {
      if (hh >= nh) break;  // block-uniform
      const float sv = key < ke ? s[hh] : -INFINITY;
      const float mnew = fmaxf(m[hh], warp_max(sv));  // finite: key c0 < ke is in the chunk
      const float alpha = expf(m[hh] - mnew), pv = expf(sv - mnew);
      m[hh] = mnew;
      l[hh] = l[hh] * alpha + pv;
      wps[hh * 32 + lane] = pv;
#pragma unroll
      for (int i = 0; i < 2 * kPairs; ++i) o[hh][i] *= alpha;
    }
    __syncwarp();
    const int n = min(32, ke - c0);
    for (int j = 0; j < n; ++j) {
      const T* vr = vp + int64_t(c0 + j) * a.v.st;
#pragma unroll
      for (int i = 0; i < kPairs; ++i) {
        const int d = 2 * lane + 64 * i;
        if (d >= D) continue;
        const float vx = to_f(vr[d]), vy = to_f(vr[d + 1]);
#pragma unroll
        for (int hh = 0; hh < kHeads; ++hh) {
          const float pv = wps[hh * 32 + j];
          o[hh][2 * i] += pv * vx;
          o[hh][2 * i + 1] += pv * vy;
        }
      }
    }
    __syncwarp();  // the chunk's P is read before the next chunk overwrites it
  }

  // Combine the warps (in warp order), then finish or leave a partial for the split combine.
#pragma unroll
  for (int hh = 0; hh < kHeads; ++hh) {
    const float lsum = warp_sum(l[hh]);
    if (lane == 0) {
      wm[warp * kHeads + hh] = m[hh];
      wl[warp * kHeads + hh] = lsum;
    }
#pragma unroll
    for (int i = 0; i < kPairs; ++i) {
      const int d = 2 * lane + 64 * i;
      if (d >= D) continue;
      wo[(warp * kHeads + hh) * kD + d] = o[hh][2 * i];
      wo[(warp * kHeads + hh) * kD + d + 1] = o[hh][2 * i + 1];
    }
  }
  __syncthreads();
  for (int i = tid; i < nh * D; i += kThreads) {
    const int hh = i / D, d = i % D, h = h0 + hh;
    float M = -INFINITY;
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, wm[w * kHeads + hh]);  // finite: warp 0 has keys
    float L = 0.0f, O = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      const float f = expf(wm[w * kHeads + hh] - M);  // 0 for a warp without keys
      L += wl[w * kHeads + hh] * f;
      O += wo[(w * kHeads + hh) * kD + d] * f;
    }
    if (splits == 1) {
      head_row<T>(a.out, b, 0, h)[d] = from_f<T>(O / L);
      if (d == 0 && a.lse != nullptr) a.lse[int64_t(b) * a.d.Hq + h] = M + logf(L);
    } else {
      const int64_t row = (int64_t(b) * a.d.Hq + h) * splits + split;
      ws.o[row * D + d] = O;
      if (d == 0) {
        ws.m[row] = M;
        ws.l[row] = L;
      }
    }
  }
}

// out[b, 0, h, :] from the splits' partials, in split order: one block per (head, batch).
template <class T>
__global__ void __launch_bounds__(128) attn_decode_combine_kernel(AttnFwdArgs a, int splits, DecodeWs ws) {
  const int h = static_cast<int>(blockIdx.x), b = static_cast<int>(blockIdx.y), D = a.d.D;
  const int64_t base = (int64_t(b) * a.d.Hq + h) * splits;
  float M = -INFINITY;
  for (int s = 0; s < splits; ++s) M = fmaxf(M, ws.m[base + s]);
  float L = 0.0f;
  for (int s = 0; s < splits; ++s) L += ws.l[base + s] * expf(ws.m[base + s] - M);
  for (int d = static_cast<int>(threadIdx.x); d < D; d += static_cast<int>(blockDim.x)) {
    float O = 0.0f;
    for (int s = 0; s < splits; ++s) O += ws.o[(base + s) * D + d] * expf(ws.m[base + s] - M);
    head_row<T>(a.out, b, 0, h)[d] = from_f<T>(O / L);
  }
  if (threadIdx.x == 0 && a.lse != nullptr) a.lse[int64_t(b) * a.d.Hq + h] = M + logf(L);
}

template <class T, int kD>
void launch(const AttnFwdArgs& a, int splits, int keys_per_split, float* ws, cudaStream_t stream) {
  constexpr size_t smem = decode_smem_bytes<kD>();
  allow_smem(attn_decode_kernel<T, kD>, smem);
  const DecodeWs w = splits > 1 ? decode_ws(ws, a.d, splits) : DecodeWs{nullptr, nullptr, nullptr};
  const int hchunks = (a.d.group + kHeads - 1) / kHeads;
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(a.d.Hkv * hchunks),
                  static_cast<unsigned>(a.d.B));
  LLM_LAUNCH((attn_decode_kernel<T, kD>), grid, dim3(kThreads), smem, stream, a, keys_per_split, w);
  LLM_CUDA_CHECK(cudaGetLastError());
  if (splits > 1) {
    LLM_LAUNCH((attn_decode_combine_kernel<T>), dim3(static_cast<unsigned>(a.d.Hq), static_cast<unsigned>(a.d.B)),
               dim3(128), 0, stream, a, splits, w);
    LLM_CUDA_CHECK(cudaGetLastError());
  }
}

template <class T>
void launch_dim(const AttnFwdArgs& a, int splits, int keys_per_split, float* ws, cudaStream_t stream) {
  a.d.D <= 64 ? launch<T, 64>(a, splits, keys_per_split, ws, stream)
              : launch<T, 128>(a, splits, keys_per_split, ws, stream);
}

}  // namespace

int64_t attn_decode_workspace(const AttnDims& d, int splits) {
  return splits > 1 ? int64_t(d.B) * d.Hq * splits * (d.D + 2) : 0;
}

void attn_decode(const AttnFwdArgs& a, int splits, int keys_per_split, float* ws, cudaStream_t stream) {
  LLM_CHECK(a.d.Tq == 1 && keys_per_split % kAttnDecodeKeys == 0 && splits >= 1 &&
                int64_t(splits - 1) * keys_per_split < a.d.Tk,
            "attention_forward: bad decode split (", splits, " x ", keys_per_split, " keys for ", a.d.Tk, ")");
  switch (a.d.dtype) {
    case AttnDtype::F32: launch_dim<float>(a, splits, keys_per_split, ws, stream); break;
    case AttnDtype::F16: launch_dim<__half>(a, splits, keys_per_split, ws, stream); break;
    case AttnDtype::BF16: launch_dim<__nv_bfloat16>(a, splits, keys_per_split, ws, stream); break;
  }
}

}  // namespace llm::LLM_CUDA_NS
