// Attention forward on tensor cores (f16 / bf16, head_dim 64 or 128): FlashAttention-2 style.
// A block of 4 warps owns 64 query rows of one (batch, query head); each warp owns 16 rows and
// keeps their Q fragments, the fp32 output accumulator and the running max / sum in registers.
// Key/value tiles of kKeys rows stream through shared memory; S = Q K^T and O += P V are mma
// m16n8k16 products with fp32 accumulation; P is rounded to the input type for the second one,
// as FlashAttention does. Nothing of size Tq x Tk is ever stored: only lse per row.
#include "attention_common.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

using namespace attn;

template <int kD>
struct FwdTcShape {
  static constexpr int kThreads = 128, kRows = kAttnTcRows;
  static constexpr int kKeys = 64;
  static constexpr int kPitch = kTcPitch<kD>;
  // The Q tile is staged once into registers, then its space is reused by the K and V tiles.
  static constexpr int kWords = (kRows > 2 * kKeys ? kRows : 2 * kKeys) * kPitch;
  static constexpr size_t kSmemBytes = size_t(kWords) * 4;
};

template <class T, int kD>
__global__ void __launch_bounds__(128) attn_fwd_tc_kernel(AttnFwdArgs a) {
  using S = FwdTcShape<kD>;
  constexpr int kKeys = S::kKeys, kP = S::kPitch;
  LLM_DYNAMIC_SHARED(unsigned, smem);
  unsigned* ks = smem;               // [kKeys][kP]
  unsigned* vs = smem + kKeys * kP;  // [kKeys][kP]

  const int tid = static_cast<int>(threadIdx.x), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  // Causal work grows with the tile index: launch the heavy tiles first.
  const int tile = static_cast<int>(gridDim.x - 1 - blockIdx.x);
  const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z), kvh = h / a.d.group;
  const int Tq = a.d.Tq, Tk = a.d.Tk, q0 = tile * S::kRows, r0 = warp * 16;
  const int row0 = Tk - Tq + q0 + r0;  // absolute position of the warp's first row

  // Q tile -> registers (A fragments, one per 16 dims).
  load_tile_tc<kD, S::kRows, S::kThreads>(smem, head_row<const unsigned short>(a.q, b, q0, h), a.q.st, Tq - q0, tid);
  __syncthreads();
  unsigned qf[kD / 16][4];
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    const unsigned* base = smem + (r0 + g) * kP + 8 * kk + t;
    qf[kk][0] = base[0];
    qf[kk][1] = base[8 * kP];
    qf[kk][2] = base[4];
    qf[kk][3] = base[8 * kP + 4];
  }

  float o[kD / 8][4];
#pragma unroll
  for (int nd = 0; nd < kD / 8; ++nd) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float sl2 = a.d.scale * kLog2e;  // exp(scale (s - m)) = exp2(sl2 s - sl2 m)
  const bool warp_live = q0 + r0 < Tq;   // warps of padding rows only load tiles

  const unsigned short* kp = head_row<const unsigned short>(a.k, b, 0, kvh);
  const unsigned short* vp = head_row<const unsigned short>(a.v, b, 0, kvh);
  const int kend = min(Tk, Tk - Tq + q0 + S::kRows);  // keys the block's last row may see
  const int ntiles = (kend + kKeys - 1) / kKeys;
  for (int j = 0; j < ntiles; ++j) {
    const int k0 = j * kKeys;
    __syncthreads();  // the previous tile (or the Q staging) is no longer read
    load_tile_tc<kD, kKeys, S::kThreads>(ks, kp + int64_t(k0) * a.k.st, a.k.st, Tk - k0, tid);
    load_tile_tc<kD, kKeys, S::kThreads>(vs, vp + int64_t(k0) * a.v.st, a.v.st, Tk - k0, tid);
    __syncthreads();
    // Warp-uniform: skip tiles wholly above this warp's diagonal. Tile 0 is never skipped, so the
    // running max is finite from the first tile on (key 0 is visible to every row).
    if (!warp_live || k0 > row0 + 15) continue;

    float s[kKeys / 8][4];
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) {
        const unsigned* kb = ks + (8 * nt + g) * kP + 8 * kk + t;
        const unsigned bf[2] = {kb[0], kb[4]};
        mma<T>(s[nt], qf[kk], bf);
      }
    }
    if (k0 + kKeys - 1 > row0 || k0 + kKeys > Tk) {  // the tile crosses the diagonal or the end
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = k0 + 8 * nt + 2 * t + (e & 1), row = row0 + g + 8 * (e >> 1);
          if (key > row || key >= Tk) s[nt][e] = -INFINITY;
        }
      }
    }
    // Online softmax for rows g (e = 0, 1) and g + 8 (e = 2, 3).
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * hr], s[nt][2 * hr + 1]));
      const float mnew = fmaxf(m[hr], quad_max(mx));
      const float alpha = exp2f((m[hr] - mnew) * sl2);  // 0 on the first tile (m = -inf)
      m[hr] = mnew;
      const float mb = mnew * sl2;
      float rs = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) {
        s[nt][2 * hr] = exp2f(fmaf(s[nt][2 * hr], sl2, -mb));
        s[nt][2 * hr + 1] = exp2f(fmaf(s[nt][2 * hr + 1], sl2, -mb));
        rs += s[nt][2 * hr] + s[nt][2 * hr + 1];
      }
      l[hr] = l[hr] * alpha + rs;
#pragma unroll
      for (int nd = 0; nd < kD / 8; ++nd) {
        o[nd][2 * hr] *= alpha;
        o[nd][2 * hr + 1] *= alpha;
      }
    }
    // O += P V: the S accumulators are already P's A fragments (two n-tiles per k-step).
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const unsigned pa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nd = 0; nd < kD / 8; ++nd) {
        const unsigned bf[2] = {pair_down(vs, kP, 16 * kk + 2 * t, 8 * nd + g),
                                pair_down(vs, kP, 16 * kk + 2 * t + 8, 8 * nd + g)};
        mma<T>(o[nd], pa, bf);
      }
    }
  }

  // The row sums were kept per lane; finish them across the quad, normalise, store.
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const float lsum = quad_sum(l[hr]);
    const int q = q0 + r0 + g + 8 * hr;
    if (!warp_live || q >= Tq) continue;
    const float inv = 1.0f / lsum;
    unsigned* orow = reinterpret_cast<unsigned*>(head_row<unsigned short>(a.out, b, q, h));
#pragma unroll
    for (int nd = 0; nd < kD / 8; ++nd) orow[4 * nd + t] = pack2<T>(o[nd][2 * hr] * inv, o[nd][2 * hr + 1] * inv);
    if (a.lse != nullptr && t == 0) a.lse[(int64_t(b) * a.d.Hq + h) * Tq + q] = m[hr] * a.d.scale + logf(lsum);
  }
}

template <class T, int kD>
void launch_fwd(const AttnFwdArgs& a, cudaStream_t stream) {
  using S = FwdTcShape<kD>;
  allow_smem(attn_fwd_tc_kernel<T, kD>, S::kSmemBytes);
  const dim3 grid(static_cast<unsigned>((a.d.Tq + S::kRows - 1) / S::kRows), static_cast<unsigned>(a.d.Hq),
                  static_cast<unsigned>(a.d.B));
  LLM_LAUNCH((attn_fwd_tc_kernel<T, kD>), grid, dim3(S::kThreads), S::kSmemBytes, stream, a);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void attn_fwd_tc(const AttnFwdArgs& a, cudaStream_t stream) {
  const bool bf16 = a.d.dtype == AttnDtype::BF16;
  LLM_CHECK(a.d.dtype != AttnDtype::F32 && (a.d.D == 64 || a.d.D == 128),
            "attention_forward: the tensor-core "
            "kernel takes f16/bf16 with head_dim 64 or 128, got head_dim ",
            a.d.D);
  if (a.d.D == 64) {
    bf16 ? launch_fwd<__nv_bfloat16, 64>(a, stream) : launch_fwd<__half, 64>(a, stream);
  } else {
    bf16 ? launch_fwd<__nv_bfloat16, 128>(a, stream) : launch_fwd<__half, 128>(a, stream);
  }
}

}  // namespace llm::LLM_CUDA_NS
