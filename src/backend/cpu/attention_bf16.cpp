// attention_forward / attention_backward with bf16 operands on CPUs with AVX512-BF16: the fp32
// path's blocks of 64 queries per (batch, head), with the products on vdpbf16ps (bf16 pairs, fp32
// accumulation) in place of sgemm calls. Each task works on one (batch, kv head) and its group of
// query heads in buffers that stay in L1/L2: scores, probabilities and their gradients never go
// to memory, and there is no call per product. (Batched oneDNN products over every head at once
// were tried first: forward + backward of one layer of tiny's training step took 1.4 ms, against
// 0.9 here, the scores' round trips through memory and the calls costing more than the products.)
//
// vdpbf16ps multiplies pairs: lane l of its result gains a[2l] b[2l] + a[2l + 1] b[2l + 1]. So a
// product C [M, N] = A [M, K] B [K, N] reads a pair of A (one row, two consecutive k) broadcast to
// every lane, and B packed as [K / 2, N, 2] (pairs of consecutive k for each column n): `Packed`.
// Every A below is bf16 with its k contiguous; K odd is padded with a zero.

// GCC 12's _mm512_reduce_* and masked intrinsics warn of uninitialised variables inside the
// header when inlined (GCC PR 105593, fixed in 12.3); the pragma must precede the header.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>

#include "backend/cpu/attention_rows.h"
#include "backend/cpu/cpu_util.h"

#define LLM_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

namespace llm::cpu {
namespace {

constexpr int64_t kQueryBlock = 64;  // as the fp32 path (attention.cpp), for the same reason

int64_t even(int64_t n) { return (n + 1) / 2 * 2; }

// A grow-only scratch array of a task's thread, left uninitialised (std::vector would zero it on
// every call: 5% of the op).
template <class T>
struct Scratch {
  std::unique_ptr<T[]> data;
  size_t size = 0;
  T* get(int64_t n) {
    if (static_cast<size_t>(n) > size) data.reset(new T[size = static_cast<size_t>(n)]);
    return data.get();
  }
};

// B operand [K, N] as [K / 2, N] pairs (uint32: the even k in the low half), K rounded up to even.
struct Packed {
  Scratch<uint32_t> buf;
  uint32_t* pairs = nullptr;
  int64_t n = 0, k2 = 0;
  void reset(int64_t k, int64_t cols) {
    n = cols, k2 = (k + 1) / 2;
    pairs = buf.get(k2 * n);
  }
};

// B = rows [0, k) of x (each of n bf16 at x + r * ld): B[r, c] = x[r, c].
void pack_rows(const uint16_t* x, int64_t ld, int64_t k, int64_t n, Packed& b) {
  b.reset(k, n);
  for (int64_t p = 0; p < b.k2; ++p) {
    const uint16_t* lo = x + 2 * p * ld;
    const uint16_t* hi = 2 * p + 1 < k ? lo + ld : nullptr;
    uint32_t* out = b.pairs + p * n;
    for (int64_t c = 0; c < n; ++c) out[c] = lo[c] | (hi ? uint32_t(hi[c]) << 16 : 0u);
  }
}

// B = the transpose of rows [0, n) of x (each of k bf16, k even, at x + r * ld): B[c, r] = x[r, c],
// so that A @ B = A @ x^T. The pairs are x's own: a 32-bit transpose.
void pack_transposed(const uint16_t* x, int64_t ld, int64_t n, int64_t k, Packed& b) {
  b.reset(k, n);
  for (int64_t r = 0; r < n; ++r) {
    const uint16_t* src = x + r * ld;
    for (int64_t p = 0; p < b.k2; ++p) {
      uint32_t v;
      std::memcpy(&v, src + 2 * p, 4);
      b.pairs[p * n + r] = v;
    }
  }
}

// The first `left` of 16 lanes.
inline __mmask16 tail(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
}

// The leading [2 k2, n] of a packed B (k2 <= b.k2, n <= b.n): a block's keys of the whole row's.
struct Slice {
  const Packed& b;
  int64_t k2, n;
};

// Where a product's rows go: fp32 (added to when accumulate), or rounded to bf16 (c16).
struct Out {
  float* c = nullptr;
  uint16_t* c16 = nullptr;
  int64_t ldc = 0;
  bool accumulate = false;
};

// R rows of C [., N] = alpha * A [., 2 k2] @ B, 64 columns at a time.
template <int R>
LLM_BF16_TARGET void product_rows(const uint16_t* a, int64_t lda, const Slice& b, float alpha, const Out& out) {
  // The inner loop's bounds in locals (through the references GCC reloads them every step).
  const int64_t k2 = b.k2, n = b.n, ldb = b.b.n;
  const uint32_t* const pairs = b.b.pairs;
  const __m512 va = _mm512_set1_ps(alpha);
  for (int64_t n0 = 0; n0 < n; n0 += 64) {
    __mmask16 mask[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) mask[j] = tail(std::max<int64_t>(n - n0 - 16 * j, 0));
    __m512 acc[R][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_setzero_ps();
    for (int64_t p = 0; p < k2; ++p) {
      const uint32_t* brow = pairs + p * ldb + n0;
      __m512bh bv[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) bv[j] = (__m512bh)_mm512_maskz_loadu_epi32(mask[j], brow + 16 * j);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        uint32_t pair;
        std::memcpy(&pair, a + r * lda + 2 * p, 4);
        const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], av, bv[j]);
      }
    }
    // Unrolled like the loops above, so that every acc index is a constant (else GCC keeps acc
    // in memory and stores it on every step of the inner loop: 2x slower).
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        if (!mask[j]) continue;
        const int64_t at = r * out.ldc + n0 + 16 * j;
        __m512 v = _mm512_mul_ps(acc[r][j], va);
        if (out.c16) {
          _mm256_mask_storeu_epi16(out.c16 + at, mask[j], (__m256i)_mm512_cvtneps_pbh(v));
          continue;
        }
        if (out.accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[j], out.c + at));
        _mm512_mask_storeu_ps(out.c + at, mask[j], v);
      }
    }
  }
}

// C [M, N] = alpha * A [M, K] @ B (into `out`). A row i at a + i * lda, its k contiguous (read in
// pairs: a row holds an even number of values, the last one 0 where K is odd).
void product(int64_t M, const uint16_t* a, int64_t lda, const Slice& b, float alpha, Out out) {
  int64_t i = 0;
  const auto advance = [&](int64_t rows) {
    a += rows * lda;
    (out.c16 ? static_cast<void>(out.c16 += rows * out.ldc) : static_cast<void>(out.c += rows * out.ldc));
  };
  for (; i + 4 <= M; i += 4, advance(4)) product_rows<4>(a, lda, b, alpha, out);
  switch (M - i) {
    case 3: product_rows<3>(a, lda, b, alpha, out); break;
    case 2: product_rows<2>(a, lda, b, alpha, out); break;
    case 1: product_rows<1>(a, lda, b, alpha, out); break;
    default: break;
  }
}

// Head h's row t of x [B, T, H, D] (bf16).
const uint16_t* head_row(const Tensor& x, int64_t b, int64_t t, int64_t h) {
  return reinterpret_cast<const uint16_t*>(at(x, b, t, h));
}

uint16_t* mutable_row(const Tensor& x, int64_t b, int64_t t, int64_t h) {
  return reinterpret_cast<uint16_t*>(at(x, b, t, h));
}

// Rows [t0, t0 + n) of head h of x as a dense [n, D] bf16 matrix.
uint16_t* gather(const Tensor& x, int64_t b, int64_t h, int64_t t0, int64_t n, Scratch<uint16_t>& dst) {
  const int64_t D = x.size(3), ld = x.stride(1);
  uint16_t* out = dst.get(n * D);
  const uint16_t* src = head_row(x, b, t0, h);
  for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * D, src + i * ld, static_cast<size_t>(D) * 2);
  return out;
}

// x^T of a row-major [rows, cols] bf16 matrix (row stride ldx) as [cols, even(rows)], the zero
// column where rows is odd: two rows at a time, so each store is a pair (the A operand of a
// product over the rows).
void transpose(const uint16_t* x, int64_t ldx, int64_t rows, int64_t cols, uint16_t* dst) {
  const int64_t pairs = (rows + 1) / 2;
  auto* out = reinterpret_cast<uint32_t*>(dst);  // [cols, pairs]
  for (int64_t p = 0; p < pairs; ++p) {
    const uint16_t* lo = x + 2 * p * ldx;
    if (2 * p + 1 < rows) {
      const uint16_t* hi = lo + ldx;
      for (int64_t c = 0; c < cols; ++c) out[c * pairs + p] = lo[c] | uint32_t(hi[c]) << 16;
    } else {
      for (int64_t c = 0; c < cols; ++c) out[c * pairs + p] = lo[c];
    }
  }
}

// exp(x) for 16 lanes: cpu::fast_exp's reduction and polynomial.
LLM_BF16_TARGET inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(12582912.0f));
  const __m512 n = _mm512_sub_ps(t, _mm512_set1_ps(12582912.0f));
  const __m512 r =
      _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_sub_epi32(_mm512_castps_si512(t), _mm512_set1_epi32(0x4B400000));
  return _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(127)), 23)));
}

// Zeros p[from, to).
void zero(uint16_t* p, int64_t from, int64_t to) {
  if (to > from) std::memset(p + from, 0, static_cast<size_t>(to - from) * 2);
}

// p [width] = bf16 softmax of s over the visible keys [lo, n), 0 elsewhere; s is overwritten.
// Returns the log-sum-exp.
LLM_BF16_TARGET float softmax_row(float* s, int64_t lo, int64_t n, int64_t width, uint16_t* p) {
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = lo; j < n; j += 16) mx = _mm512_mask_max_ps(mx, tail(n - j), mx, _mm512_loadu_ps(s + j));
  const float m = _mm512_reduce_max_ps(mx);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = lo; j < n; j += 16) {
    const __mmask16 k = tail(n - j);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), _mm512_set1_ps(m)));
    _mm512_mask_storeu_ps(s + j, k, e);
    sum = _mm512_mask_add_ps(sum, k, sum, e);
  }
  const float total = _mm512_reduce_add_ps(sum);
  const __m512 inv = _mm512_set1_ps(1.0f / total);
  zero(p, 0, lo);
  for (int64_t j = lo; j < n; j += 16) {
    const __mmask16 k = tail(n - j);
    const __m256bh v = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + j), inv));
    _mm256_mask_storeu_epi16(p + j, k, (__m256i)v);
  }
  zero(p, n, width);
  return m + std::log(total);
}

// p = exp(s - lse) and ds = p (dp - di) over the visible keys [lo, n), in bf16 [width], 0 elsewhere.
LLM_BF16_TARGET void softmax_grad_row(const float* s, const float* dp, float lse, float di, int64_t lo, int64_t n,
                                      int64_t width, uint16_t* p, uint16_t* ds) {
  zero(p, 0, lo);
  zero(ds, 0, lo);
  for (int64_t j = lo; j < n; j += 16) {
    const __mmask16 k = tail(n - j);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), _mm512_set1_ps(lse)));
    const __m512 g = _mm512_mul_ps(e, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, dp + j), _mm512_set1_ps(di)));
    _mm256_mask_storeu_epi16(p + j, k, (__m256i)_mm512_cvtneps_pbh(e));
    _mm256_mask_storeu_epi16(ds + j, k, (__m256i)_mm512_cvtneps_pbh(g));
  }
  zero(p, n, width);
  zero(ds, n, width);
}

// sum_i a[i] b[i] over n (even) bf16 values, in fp32: vdpbf16ps on pairs.
LLM_BF16_TARGET float dot(const uint16_t* a, const uint16_t* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 32) {
    const __mmask16 k = tail((n - j) / 2);
    acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_maskz_loadu_epi32(k, a + j),
                           (__m512bh)_mm512_maskz_loadu_epi32(k, b + j));
  }
  return _mm512_reduce_add_ps(acc);
}

struct Dims {
  int64_t B, Tq, Tk, Hq, Hkv, D, G;
};

Dims dims_of(const Tensor& q, const Tensor& k) {
  return {q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), q.size(2) / k.size(2)};
}

}  // namespace

bool attention_bf16_supported() {
  // Not under ASan: its -O1 build of these kernels disagreed with the CUDA twins in 7 of the
  // sanitizer stage's tests while the optimised build agrees (open; the fp32 path runs there).
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
  return __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}

bool attention_bf16_applies(std::initializer_list<const Tensor*> operands) {
  for (const Tensor* t : operands) {
    if (t->dtype() != DType::BF16 || t->stride(3) != 1 || t->size(3) % 2 != 0) return false;
  }
  return true;
}

void attention_forward_bf16(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                            const Tensor& positions) {
  const Dims s = dims_of(q, k);
  const int32_t* pos = positions.empty() ? nullptr : positions.ptr<int32_t>();  // [B, T], Tq == Tk
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.D));
  const int64_t offset = s.Tk - s.Tq;  // query t is at absolute position offset + t
  const int64_t blocks = (s.Tq + kQueryBlock - 1) / kQueryBlock, tasks = s.B * s.Hkv * blocks;
#pragma omp parallel if (tasks * s.G * kQueryBlock * s.Tk * s.D > kParallelMinWork)
  {
    Packed kt, vn;
    Scratch<float> scores_buf;
    Scratch<uint16_t> p_buf, v_buf;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / (s.Hkv * blocks), g = (task / blocks) % s.Hkv, blk = task % blocks;
      const int64_t t0 = blk * kQueryBlock, nq = std::min(kQueryBlock, s.Tq - t0);
      const int64_t nk = offset + t0 + nq, nkp = even(nk);              // keys the block's last query sees
      pack_transposed(head_row(k, b, 0, g), k.stride(1), nk, s.D, kt);  // k^T [D, nk]
      pack_rows(gather(v, b, g, 0, nk, v_buf), s.D, nk, s.D, vn);       // v [nk, D]
      float* const scores = scores_buf.get(nq * nk);
      uint16_t* const p = p_buf.get(nq * nkp);
      for (int64_t h = g * s.G; h < (g + 1) * s.G; ++h) {
        // scores [nq, nk] = scale * q [nq, D] @ k^T
        product(nq, head_row(q, b, t0, h), q.stride(1), {kt, kt.k2, nk}, scale, {scores, nullptr, nk});
        for (int64_t i = 0; i < nq; ++i) {
          const int64_t t = t0 + i;
          const float l = softmax_row(scores + i * nk, first_key(pos, b, s.Tq, t), offset + t + 1, nkp, p + i * nkp);
          if (!lse.empty()) lse.ptr<float>()[(b * s.Hq + h) * s.Tq + t] = l;
        }
        // out [nq, D] = p [nq, nk] @ v, rounded to bf16 straight into out's rows
        product(nq, p, nkp, {vn, vn.k2, s.D}, 1.0f, {nullptr, mutable_row(out, b, t0, h), out.stride(1)});
      }
    }
  }
}

void attention_backward_bf16(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                             const Tensor& lse, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                             const Tensor& positions) {
  const Dims s = dims_of(q, k);
  const int32_t* pos = positions.empty() ? nullptr : positions.ptr<int32_t>();  // [B, T]
  const int64_t T = s.Tq, D = s.D;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  const int64_t blocks = (T + kQueryBlock - 1) / kQueryBlock, nq_max = std::min(kQueryBlock, T);
  // One task per (batch, kv head): it alone adds to that head's dk and dv, over its group's query
  // heads and every block, in a fixed order (the result does not depend on the thread count).
#pragma omp parallel if (s.B * s.Hq * T * T * D > kParallelMinWork)
  {
    Packed kt, vt, kn, qn, don;
    Scratch<float> scores_buf, dscores_buf, dk_buf, dv_buf;
    Scratch<uint16_t> k_buf, q_buf, do_buf, p_buf, ds_buf, pt_buf, dst_buf;
    float* const scores = scores_buf.get(nq_max * T);
    float* const dscores = dscores_buf.get(nq_max * T);
    float* const dk32 = dk_buf.get(T * D);
    float* const dv32 = dv_buf.get(T * D);
    uint16_t* const p = p_buf.get(nq_max * even(T));
    uint16_t* const ds = ds_buf.get(nq_max * even(T));
    uint16_t* const pt = pt_buf.get(even(nq_max) * even(T));
    uint16_t* const dst = dst_buf.get(even(nq_max) * even(T));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < s.B * s.Hkv; ++task) {
      const int64_t b = task / s.Hkv, g = task % s.Hkv;
      pack_transposed(head_row(k, b, 0, g), k.stride(1), T, D, kt);  // k^T [D, T]
      pack_transposed(head_row(v, b, 0, g), v.stride(1), T, D, vt);  // v^T [D, T]
      pack_rows(gather(k, b, g, 0, T, k_buf), D, T, D, kn);          // k [T, D]
      std::fill(dk32, dk32 + T * D, 0.0f);
      std::fill(dv32, dv32 + T * D, 0.0f);
      for (int64_t h = g * s.G; h < (g + 1) * s.G; ++h) {
        const float* l = lse.ptr<float>() + (b * s.Hq + h) * T;
        for (int64_t blk = 0; blk < blocks; ++blk) {
          const int64_t t0 = blk * kQueryBlock, nq = std::min(kQueryBlock, T - t0), nk = t0 + nq, nkp = even(nk);
          const uint16_t* qb = gather(q, b, h, t0, nq, q_buf);
          const uint16_t* dob = gather(dout, b, h, t0, nq, do_buf);
          // scores = scale * q @ k^T; dscores = dout @ v^T, both [nq, nk]
          product(nq, qb, D, {kt, kt.k2, nk}, scale, {scores, nullptr, nk});
          product(nq, dob, D, {vt, vt.k2, nk}, 1.0f, {dscores, nullptr, nk});
          // p and ds [nq, nkp] in bf16 (a zero column where nk is odd)
          for (int64_t i = 0; i < nq; ++i) {
            const int64_t t = t0 + i;
            const float di = dot(dob + i * D, head_row(out, b, t, h), D);  // rowsum(dout * out)
            softmax_grad_row(scores + i * nk, dscores + i * nk, l[t], di, first_key(pos, b, T, t), t + 1, nkp,
                             p + i * nkp, ds + i * nkp);
          }
          // dq [nq, D] = scale * ds @ k, rounded to bf16 straight into dq's rows
          product(nq, ds, nkp, {kn, nkp / 2, D}, scale, {nullptr, mutable_row(dq, b, t0, h), dq.stride(1)});
          // dk [nk, D] += scale * ds^T @ q;  dv [nk, D] += p^T @ dout
          transpose(ds, nkp, nq, nk, dst);
          transpose(p, nkp, nq, nk, pt);
          pack_rows(qb, D, nq, D, qn);
          pack_rows(dob, D, nq, D, don);
          product(nk, dst, even(nq), {qn, qn.k2, D}, scale, {dk32, nullptr, D, true});
          product(nk, pt, even(nq), {don, don.k2, D}, 1.0f, {dv32, nullptr, D, true});
        }
      }
      for (int64_t t = 0; t < T; ++t) {
        from_f32(dk32 + t * D, at(dk, b, t, g), dk.dtype(), D);
        from_f32(dv32 + t * D, at(dv, b, t, g), dv.dtype(), D);
      }
    }
  }
}

}  // namespace llm::cpu
