// Attention backward on tensor cores (f16 / bf16, head_dim 64 or 128). Two kernels recompute
// P = exp(scale Q K^T - lse) tile by tile, so no Tq x Tk matrix is stored and no gradient is
// accumulated with atomics (the results are bitwise reproducible):
//   dkdv  a block per (64-key tile, kv head[, part of its query heads]); 4 warps x 16 keys hold
//         dK and dV in registers and sweep the query tiles of every query head of the kv group in
//         head order: dV += P^T dO, dK += dS^T Q, with dS = P (dO V^T - delta).
//   dq    a block per (64-query tile, query head); 4 warps x 16 queries sweep the key tiles up to
//         the diagonal: dQ += dS K.
// The dq kernel recomputes S and dP a second time (7 tile products instead of FlashAttention-2's
// 5): the price of not adding dQ across key-tile blocks with atomics or keeping per-block
// partials of size T^2 D / 64.
#include "attention_common.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

using namespace attn;

// ---- dK, dV --------------------------------------------------------------------------------------
template <int kD>
struct DkdvShape {
  static constexpr int kThreads = 128, kKeys = kAttnTcKeyRows;
  static constexpr int kQRows = kD == 64 ? 64 : 32;  // query tile; 32 keeps dK, dV, S, dP in registers at D=128
  static constexpr int kPitch = kTcPitch<kD>;
  static constexpr int kWords = (2 * kKeys + 2 * kQRows) * kPitch + 2 * kQRows;
  static constexpr size_t kSmemBytes = size_t(kWords) * 4;
};

template <class T, int kD>
__global__ void __launch_bounds__(128) attn_dkdv_tc_kernel(AttnBwdArgs a) {
  using S = DkdvShape<kD>;
  constexpr int kP = S::kPitch, kQ = S::kQRows;
  LLM_DYNAMIC_SHARED(unsigned, smem);
  unsigned* ks = smem;                                    // [kKeys][kP]
  unsigned* vs = ks + S::kKeys * kP;                      // [kKeys][kP]
  unsigned* qs = vs + S::kKeys * kP;                      // [kQ][kP]
  unsigned* dos = qs + kQ * kP;                           // [kQ][kP]
  float* lse2 = reinterpret_cast<float*>(dos + kQ * kP);  // [kQ] lse * log2(e)
  float* delta = lse2 + kQ;                               // [kQ]

  const int tid = static_cast<int>(threadIdx.x), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int tile = static_cast<int>(blockIdx.x);  // key tiles near the start see the most queries
  const int parts = a.parts, kvh = static_cast<int>(blockIdx.y) / parts, part = static_cast<int>(blockIdx.y) % parts;
  const int b = static_cast<int>(blockIdx.z), nT = a.d.Tq, k0 = tile * S::kKeys, kw = k0 + warp * 16;
  const int per_part = (a.d.group + parts - 1) / parts;
  const int h_begin = kvh * a.d.group + part * per_part;
  const int h_end = min(h_begin + per_part, (kvh + 1) * a.d.group);
  const float sl2 = a.d.scale * kLog2e;

  load_tile_tc<kD, S::kKeys, S::kThreads>(ks, head_row<const unsigned short>(a.k, b, k0, kvh), a.k.st, nT - k0, tid);
  load_tile_tc<kD, S::kKeys, S::kThreads>(vs, head_row<const unsigned short>(a.v, b, k0, kvh), a.v.st, nT - k0, tid);

  float dk[kD / 8][4], dv[kD / 8][4];
#pragma unroll
  for (int nd = 0; nd < kD / 8; ++nd) {
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[nd][e] = dv[nd][e] = 0.0f;
  }

  for (int h = h_begin; h < h_end; ++h) {
    const float* lse_h = a.lse + (int64_t(b) * a.d.Hq + h) * nT;
    const float* delta_h = a.delta + (int64_t(b) * a.d.Hq + h) * nT;
    for (int q0 = (k0 / kQ) * kQ; q0 < nT; q0 += kQ) {  // queries before k0 see none of these keys
      __syncthreads();                                  // the previous query tile is no longer read
      load_tile_tc<kD, kQ, S::kThreads>(qs, head_row<const unsigned short>(a.q, b, q0, h), a.q.st, nT - q0, tid);
      load_tile_tc<kD, kQ, S::kThreads>(dos, head_row<const unsigned short>(a.dout, b, q0, h), a.dout.st, nT - q0, tid);
      if (tid < kQ) {
        const bool in = q0 + tid < nT;
        lse2[tid] = in ? lse_h[q0 + tid] * kLog2e : 0.0f;
        delta[tid] = in ? delta_h[q0 + tid] : 0.0f;
      }
      __syncthreads();
      if (kw >= nT || kw > q0 + kQ - 1) continue;  // warp-uniform: no query of the tile sees these keys

      // S^T = K Q^T and dP^T = V dO^T: 16 keys x kQ queries.
      float st[kQ / 8][4], dpt[kQ / 8][4];
#pragma unroll
      for (int nt = 0; nt < kQ / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) st[nt][e] = dpt[nt][e] = 0.0f;
      }
#pragma unroll
      for (int kk = 0; kk < kD / 16; ++kk) {
        const unsigned* kr = ks + (warp * 16 + g) * kP + 8 * kk + t;
        const unsigned* vr = vs + (warp * 16 + g) * kP + 8 * kk + t;
        const unsigned kf[4] = {kr[0], kr[8 * kP], kr[4], kr[8 * kP + 4]};
        const unsigned vf[4] = {vr[0], vr[8 * kP], vr[4], vr[8 * kP + 4]};
#pragma unroll
        for (int nt = 0; nt < kQ / 8; ++nt) {
          const unsigned* qr = qs + (8 * nt + g) * kP + 8 * kk + t;
          const unsigned* dr = dos + (8 * nt + g) * kP + 8 * kk + t;
          const unsigned qb[2] = {qr[0], qr[4]};
          const unsigned db[2] = {dr[0], dr[4]};
          mma<T>(st[nt], kf, qb);
          mma<T>(dpt[nt], vf, db);
        }
      }
      // P^T = exp(scale S^T - lse) where the query sees the key, dS^T = P^T (dP^T - delta).
#pragma unroll
      for (int nt = 0; nt < kQ / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = 8 * nt + 2 * t + (e & 1), q = q0 + col, key = kw + g + 8 * (e >> 1);
          const float p = q >= key && q < nT && key < nT ? exp2f(fmaf(st[nt][e], sl2, -lse2[col])) : 0.0f;
          st[nt][e] = p;
          dpt[nt][e] = p * (dpt[nt][e] - delta[col]);
        }
      }
      // dV += P^T dO and dK += dS^T Q: k runs over the tile's queries, down the rows of dO and Q.
#pragma unroll
      for (int kk = 0; kk < kQ / 16; ++kk) {
        const unsigned pa[4] = {pack2<T>(st[2 * kk][0], st[2 * kk][1]), pack2<T>(st[2 * kk][2], st[2 * kk][3]),
                                pack2<T>(st[2 * kk + 1][0], st[2 * kk + 1][1]),
                                pack2<T>(st[2 * kk + 1][2], st[2 * kk + 1][3])};
        const unsigned sa[4] = {pack2<T>(dpt[2 * kk][0], dpt[2 * kk][1]), pack2<T>(dpt[2 * kk][2], dpt[2 * kk][3]),
                                pack2<T>(dpt[2 * kk + 1][0], dpt[2 * kk + 1][1]),
                                pack2<T>(dpt[2 * kk + 1][2], dpt[2 * kk + 1][3])};
#pragma unroll
        for (int nd = 0; nd < kD / 8; ++nd) {
          const unsigned ob[2] = {pair_down(dos, kP, 16 * kk + 2 * t, 8 * nd + g),
                                  pair_down(dos, kP, 16 * kk + 2 * t + 8, 8 * nd + g)};
          const unsigned qb[2] = {pair_down(qs, kP, 16 * kk + 2 * t, 8 * nd + g),
                                  pair_down(qs, kP, 16 * kk + 2 * t + 8, 8 * nd + g)};
          mma<T>(dv[nd], pa, ob);
          mma<T>(dk[nd], sa, qb);
        }
      }
    }
  }

  // Rows kw + g and kw + g + 8; dK takes the softmax scale here, once.
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int key = kw + g + 8 * hr;
    if (key >= nT) continue;
    if (parts == 1) {
      unsigned* dkr = reinterpret_cast<unsigned*>(head_row<unsigned short>(a.dk, b, key, kvh));
      unsigned* dvr = reinterpret_cast<unsigned*>(head_row<unsigned short>(a.dv, b, key, kvh));
#pragma unroll
      for (int nd = 0; nd < kD / 8; ++nd) {
        dkr[4 * nd + t] = pack2<T>(dk[nd][2 * hr] * a.d.scale, dk[nd][2 * hr + 1] * a.d.scale);
        dvr[4 * nd + t] = pack2<T>(dv[nd][2 * hr], dv[nd][2 * hr + 1]);
      }
    } else {  // fp32 partials [part, B, T, Hkv, D]
      const int64_t row = ((int64_t(part) * a.d.B + b) * nT + key) * a.d.Hkv + kvh;
      float2* dkr = reinterpret_cast<float2*>(a.dk_part + row * kD);
      float2* dvr = reinterpret_cast<float2*>(a.dv_part + row * kD);
#pragma unroll
      for (int nd = 0; nd < kD / 8; ++nd) {
        dkr[4 * nd + t] = make_float2(dk[nd][2 * hr] * a.d.scale, dk[nd][2 * hr + 1] * a.d.scale);
        dvr[4 * nd + t] = make_float2(dv[nd][2 * hr], dv[nd][2 * hr + 1]);
      }
    }
  }
}

// ---- dQ ------------------------------------------------------------------------------------------
template <int kD>
struct DqShape {
  static constexpr int kThreads = 128, kRows = kAttnTcRows;
  static constexpr int kKeys = kD == 64 ? 64 : 32;  // 32 at D=128 keeps Q, dO, dQ, S, dP in registers
  static constexpr int kPitch = kTcPitch<kD>;
  // Q and dO are staged once into registers, then their space holds the K and V tiles.
  static constexpr int kWords = (kRows > kKeys ? 2 * kRows : 2 * kKeys) * kPitch;
  static constexpr size_t kSmemBytes = size_t(kWords) * 4;
};

template <class T, int kD>
__global__ void __launch_bounds__(128) attn_dq_tc_kernel(AttnBwdArgs a) {
  using S = DqShape<kD>;
  constexpr int kP = S::kPitch, kKeys = S::kKeys;
  LLM_DYNAMIC_SHARED(unsigned, smem);
  const int tid = static_cast<int>(threadIdx.x), warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
  const int tile = static_cast<int>(gridDim.x - 1 - blockIdx.x);  // heavy tiles first
  const int h = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z), kvh = h / a.d.group;
  const int nT = a.d.Tq, q0 = tile * S::kRows, r0 = q0 + warp * 16;
  const float sl2 = a.d.scale * kLog2e;

  load_tile_tc<kD, S::kRows, S::kThreads>(smem, head_row<const unsigned short>(a.q, b, q0, h), a.q.st, nT - q0, tid);
  load_tile_tc<kD, S::kRows, S::kThreads>(smem + S::kRows * kP, head_row<const unsigned short>(a.dout, b, q0, h),
                                          a.dout.st, nT - q0, tid);
  __syncthreads();
  unsigned qf[kD / 16][4], df[kD / 16][4];
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) {
    const unsigned* qr = smem + (warp * 16 + g) * kP + 8 * kk + t;
    const unsigned* dr = qr + S::kRows * kP;
    qf[kk][0] = qr[0], qf[kk][1] = qr[8 * kP], qf[kk][2] = qr[4], qf[kk][3] = qr[8 * kP + 4];
    df[kk][0] = dr[0], df[kk][1] = dr[8 * kP], df[kk][2] = dr[4], df[kk][3] = dr[8 * kP + 4];
  }
  float lse2[2], delta[2];
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int q = r0 + g + 8 * hr;
    const int64_t at = (int64_t(b) * a.d.Hq + h) * nT + q;
    lse2[hr] = q < nT ? a.lse[at] * kLog2e : 0.0f;
    delta[hr] = q < nT ? a.delta[at] : 0.0f;
  }
  float dq[kD / 8][4];
#pragma unroll
  for (int nd = 0; nd < kD / 8; ++nd) dq[nd][0] = dq[nd][1] = dq[nd][2] = dq[nd][3] = 0.0f;

  unsigned* ks = smem;
  unsigned* vs = smem + kKeys * kP;
  const unsigned short* kp = head_row<const unsigned short>(a.k, b, 0, kvh);
  const unsigned short* vp = head_row<const unsigned short>(a.v, b, 0, kvh);
  const int kend = min(nT, q0 + S::kRows);
  const bool warp_live = r0 < nT;
  for (int k0 = 0; k0 < kend; k0 += kKeys) {
    __syncthreads();  // the previous tile (or the Q / dO staging) is no longer read
    load_tile_tc<kD, kKeys, S::kThreads>(ks, kp + int64_t(k0) * a.k.st, a.k.st, nT - k0, tid);
    load_tile_tc<kD, kKeys, S::kThreads>(vs, vp + int64_t(k0) * a.v.st, a.v.st, nT - k0, tid);
    __syncthreads();
    if (!warp_live || k0 > r0 + 15) continue;  // warp-uniform: the tile lies above the diagonal

    float s[kKeys / 8][4], dp[kKeys / 8][4];
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) s[nt][e] = dp[nt][e] = 0.0f;
    }
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
#pragma unroll
      for (int nt = 0; nt < kKeys / 8; ++nt) {
        const unsigned* kr = ks + (8 * nt + g) * kP + 8 * kk + t;
        const unsigned* vr = vs + (8 * nt + g) * kP + 8 * kk + t;
        const unsigned kb[2] = {kr[0], kr[4]};
        const unsigned vb[2] = {vr[0], vr[4]};
        mma<T>(s[nt], qf[kk], kb);
        mma<T>(dp[nt], df[kk], vb);
      }
    }
#pragma unroll
    for (int nt = 0; nt < kKeys / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int hr = e >> 1, key = k0 + 8 * nt + 2 * t + (e & 1), q = r0 + g + 8 * hr;
        const float p = key <= q && key < nT ? exp2f(fmaf(s[nt][e], sl2, -lse2[hr])) : 0.0f;
        s[nt][e] = p * (dp[nt][e] - delta[hr]);  // dS
      }
    }
    // dQ += dS K: k runs over the tile's keys, down the rows of K.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      const unsigned sa[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                              pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nd = 0; nd < kD / 8; ++nd) {
        const unsigned kb[2] = {pair_down(ks, kP, 16 * kk + 2 * t, 8 * nd + g),
                                pair_down(ks, kP, 16 * kk + 2 * t + 8, 8 * nd + g)};
        mma<T>(dq[nd], sa, kb);
      }
    }
  }

#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int q = r0 + g + 8 * hr;
    if (!warp_live || q >= nT) continue;
    unsigned* row = reinterpret_cast<unsigned*>(head_row<unsigned short>(a.dq, b, q, h));
#pragma unroll
    for (int nd = 0; nd < kD / 8; ++nd) {
      row[4 * nd + t] = pack2<T>(dq[nd][2 * hr] * a.d.scale, dq[nd][2 * hr + 1] * a.d.scale);
    }
  }
}

template <class T, int kD>
void launch_bwd(const AttnBwdArgs& a, cudaStream_t stream) {
  using K = DkdvShape<kD>;
  using Q = DqShape<kD>;
  const auto B = static_cast<unsigned>(a.d.B);
  allow_smem(attn_dkdv_tc_kernel<T, kD>, K::kSmemBytes);
  const dim3 kgrid(static_cast<unsigned>((a.d.Tq + K::kKeys - 1) / K::kKeys), static_cast<unsigned>(a.d.Hkv * a.parts),
                   B);
  LLM_LAUNCH((attn_dkdv_tc_kernel<T, kD>), kgrid, dim3(K::kThreads), K::kSmemBytes, stream, a);
  LLM_CUDA_CHECK(cudaGetLastError());
  allow_smem(attn_dq_tc_kernel<T, kD>, Q::kSmemBytes);
  const dim3 qgrid(static_cast<unsigned>((a.d.Tq + Q::kRows - 1) / Q::kRows), static_cast<unsigned>(a.d.Hq), B);
  LLM_LAUNCH((attn_dq_tc_kernel<T, kD>), qgrid, dim3(Q::kThreads), Q::kSmemBytes, stream, a);
  LLM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void attn_bwd_tc(const AttnBwdArgs& a, cudaStream_t stream) {
  const bool bf16 = a.d.dtype == AttnDtype::BF16;
  LLM_CHECK(a.d.dtype != AttnDtype::F32 && (a.d.D == 64 || a.d.D == 128),
            "attention_backward: the tensor-core "
            "kernels take f16/bf16 with head_dim 64 or 128, got head_dim ",
            a.d.D);
  if (a.d.D == 64) {
    bf16 ? launch_bwd<__nv_bfloat16, 64>(a, stream) : launch_bwd<__half, 64>(a, stream);
  } else {
    bf16 ? launch_bwd<__nv_bfloat16, 128>(a, stream) : launch_bwd<__half, 128>(a, stream);
  }
}

}  // namespace llm::LLM_CUDA_NS
