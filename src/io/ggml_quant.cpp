// ggml block formats: the reference quantizers and the dequantizers, ported from the formulas of
// ggml-quants.c (quantize_row_q8_0_ref, ..._q4_0_ref, ..._q5_0_ref, ..._q4_K_ref, ..._q6_K_ref and
// their helpers nearest_int, make_qx_quants, make_qkx2_quants). The float operations are kept in
// ggml's order so the same inputs give the same bytes. See include/llm/ggml_quant.h.
#include "llm/ggml_quant.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "llm/dtype.h"
#include "llm/error.h"

namespace llm {

namespace {

constexpr int kQK = 32;    // Q8_0, Q4_0, Q5_0 block
constexpr int kQKK = 256;  // K-quant super-block
constexpr float kGroupMaxEps = 1e-15f;

void put_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16_bits(v);
  p[0] = static_cast<uint8_t>(h & 0xFF);
  p[1] = static_cast<uint8_t>(h >> 8);
}
float get_f16(const uint8_t* p) { return f16_bits_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// Round to nearest, ties to even, for |v| <= 4194303 (ggml's nearest_int: the magic-number add).
int nearest_int(float v) {
  const float t = v + 12582912.f;
  const int32_t i = std::bit_cast<int32_t>(t);
  return (i & 0x007fffff) - 0x00400000;
}

// ---- 32-value blocks -------------------------------------------------------------------------

void quantize_q8_0(const float* x, int64_t nb, uint8_t* y) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 34) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < kQK; ++j) {
      y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
    }
  }
}

void dequantize_q8_0(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 34) {
    const float d = get_f16(y);
    for (int j = 0; j < kQK; ++j) x[j] = static_cast<float>(static_cast<int8_t>(y[2 + j])) * d;
  }
}

// The value of largest magnitude (its sign kept); the first one on ties, as ggml scans.
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void quantize_q4_0(const float* x, int64_t nb, uint8_t* y) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 18) {
    const float d = signed_absmax(x, kQK) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(y, d);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = x[j] * id, x1 = x[kQK / 2 + j] * id;
      const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 8.5f)));
      y[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void dequantize_q4_0(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 18) {
    const float d = get_f16(y);
    for (int j = 0; j < kQK / 2; ++j) {
      x[j] = static_cast<float>((y[2 + j] & 0x0F) - 8) * d;
      x[j + kQK / 2] = static_cast<float>((y[2 + j] >> 4) - 8) * d;
    }
  }
}

void quantize_q5_0(const float* x, int64_t nb, uint8_t* y) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 22) {
    const float d = signed_absmax(x, kQK) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(y, d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = x[j] * id, x1 = x[kQK / 2 + j] * id;
      const auto q0 = static_cast<uint32_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x0 + 16.5f))));
      const auto q1 = static_cast<uint32_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x1 + 16.5f))));
      y[6 + j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= ((q0 & 0x10u) >> 4) << j;
      qh |= ((q1 & 0x10u) >> 4) << (j + kQK / 2);
    }
    for (int b = 0; b < 4; ++b) y[2 + b] = static_cast<uint8_t>(qh >> (8 * b));
  }
}

void dequantize_q5_0(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, x += kQK, y += 22) {
    const float d = get_f16(y);
    const uint32_t qh = y[2] | (y[3] << 8) | (y[4] << 16) | (static_cast<uint32_t>(y[5]) << 24);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint32_t h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
      x[j] = static_cast<float>(static_cast<int>((y[6 + j] & 0x0Fu) | h0) - 16) * d;
      x[j + kQK / 2] = static_cast<float>(static_cast<int>((y[6 + j] >> 4) | h1) - 16) * d;
    }
  }
}

// ---- K-quants --------------------------------------------------------------------------------

// ggml's make_qx_quants (signed levels -nmax..nmax-1 stored as L + nmax), weights by rmse_type 1
// (x^2), with the search over 18 nearby scales.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * static_cast<float>(l);
      suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i]))));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// ggml's make_qkx2_quants: levels 0..nmax with a minimum (x ~ scale*L - the_min), weighted least
// squares over nstep+1 candidate scales.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min, uint8_t* Laux,
                       float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + static_cast<float>(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      const float fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

void get_scale_min_k4(int j, const uint8_t* q, uint8_t* d, uint8_t* m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// block_q4_K: d (f16) at 0, dmin (f16) at 2, scales[12] at 4, qs[128] at 16.
void quantize_q4_K(const float* x, int64_t nb, uint8_t* y) {
  uint8_t L[kQKK], Laux[32];
  float weights[32], mins[kQKK / 32], scales[kQKK / 32];
  for (int64_t i = 0; i < nb; ++i, x += kQKK, y += 144) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < kQKK / 32; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t* sc = y + 4;
    for (int j = 0; j < kQKK / 32; ++j) {
      uint8_t ls = static_cast<uint8_t>(nearest_int(inv_scale * scales[j]));
      uint8_t lm = static_cast<uint8_t>(nearest_int(inv_min * mins[j]));
      ls = std::min<uint8_t>(63, ls);
      lm = std::min<uint8_t>(63, lm);
      if (j < 4) {
        sc[j] = ls;
        sc[j + 4] = lm;
      } else {
        sc[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
        sc[j - 4] = static_cast<uint8_t>(sc[j - 4] | ((ls >> 4) << 6));
        sc[j - 0] = static_cast<uint8_t>(sc[j - 0] | ((lm >> 4) << 6));
      }
    }
    put_f16(y, max_scale / 63.f);
    put_f16(y + 2, max_min / 63.f);
    for (int j = 0; j < kQKK / 32; ++j) {
      uint8_t s, m;
      get_scale_min_k4(j, sc, &s, &m);
      const float d = get_f16(y) * static_cast<float>(s);
      if (d == 0.0f) continue;
      const float dm = get_f16(y + 2) * static_cast<float>(m);
      for (int ii = 0; ii < 32; ++ii) {
        const int l = nearest_int((x[32 * j + ii] + dm) / d);
        L[32 * j + ii] = static_cast<uint8_t>(std::max(0, std::min(15, l)));
      }
    }
    uint8_t* q = y + 16;
    for (int j = 0; j < kQKK; j += 64, q += 32) {
      for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
    }
  }
}

void dequantize_q4_K(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, y += 144) {
    const float d = get_f16(y), min = get_f16(y + 2);
    const uint8_t* q = y + 16;
    int is = 0;
    for (int j = 0; j < kQKK; j += 64, q += 32, is += 2) {
      uint8_t s, m;
      get_scale_min_k4(is + 0, y + 4, &s, &m);
      const float d1 = d * s, m1 = min * m;
      get_scale_min_k4(is + 1, y + 4, &s, &m);
      const float d2 = d * s, m2 = min * m;
      for (int l = 0; l < 32; ++l) *x++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *x++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

// block_q6_K: ql[128] at 0, qh[64] at 128, scales[16] (int8) at 192, d (f16) at 208.
void quantize_q6_K(const float* x, int64_t nb, uint8_t* y) {
  int8_t L[kQKK];
  float scales[kQKK / 16];
  for (int64_t i = 0; i < nb; ++i, x += kQKK, y += 210) {
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < kQKK / 16; ++ib) {
      const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      scales[ib] = scale;
      if (std::fabs(scale) > max_abs_scale) {
        max_abs_scale = std::fabs(scale);
        max_scale = scale;
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(y, 0, 210);
      continue;
    }
    const float iscale = -128.f / max_scale;
    put_f16(y + 208, 1 / iscale);
    auto* sc = reinterpret_cast<int8_t*>(y + 192);
    for (int ib = 0; ib < kQKK / 16; ++ib) {
      sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
    }
    for (int j = 0; j < kQKK / 16; ++j) {
      const float d = get_f16(y + 208) * static_cast<float>(sc[j]);
      if (d == 0.0f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = std::max(-32, std::min(31, nearest_int(x[16 * j + ii] / d)));
        L[16 * j + ii] = static_cast<int8_t>(l + 32);
      }
    }
    uint8_t* ql = y;
    uint8_t* qh = y + 128;
    for (int j = 0; j < kQKK; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const auto q1 = static_cast<uint8_t>(L[j + l + 0] & 0xF);
        const auto q2 = static_cast<uint8_t>(L[j + l + 32] & 0xF);
        const auto q3 = static_cast<uint8_t>(L[j + l + 64] & 0xF);
        const auto q4 = static_cast<uint8_t>(L[j + l + 96] & 0xF);
        ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
        ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
        qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                     ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

void dequantize_q6_K(const uint8_t* y, int64_t nb, float* x) {
  for (int64_t i = 0; i < nb; ++i, y += 210) {
    const float d = get_f16(y + 208);
    const uint8_t* ql = y;
    const uint8_t* qh = y + 128;
    const auto* sc = reinterpret_cast<const int8_t*>(y + 192);
    for (int n = 0; n < kQKK; n += 128, x += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        x[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
        x[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
        x[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
        x[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
      }
    }
  }
}

}  // namespace

int64_t ggml_block_elems(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16: return 1;
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q5_0: return kQK;
    case GgmlType::Q4_K:
    case GgmlType::Q6_K: return kQKK;
  }
  fail("ggml type ", static_cast<uint32_t>(t), " is not supported");
}

size_t ggml_block_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 4;
    case GgmlType::F16:
    case GgmlType::BF16: return 2;
    case GgmlType::Q8_0: return 34;
    case GgmlType::Q4_0: return 18;
    case GgmlType::Q5_0: return 22;
    case GgmlType::Q4_K: return 144;
    case GgmlType::Q6_K: return 210;
  }
  fail("ggml type ", static_cast<uint32_t>(t), " is not supported");
}

size_t ggml_row_bytes(GgmlType t, int64_t n) {
  const int64_t b = ggml_block_elems(t);
  LLM_CHECK(n >= 0 && n % b == 0, ggml_type_name(t), ": ", n, " values are not a whole number of ", b, "-value blocks");
  return static_cast<size_t>(n / b) * ggml_block_bytes(t);
}

void ggml_quantize(GgmlType t, const float* x, int64_t n, uint8_t* out) {
  const int64_t nb = static_cast<int64_t>(ggml_row_bytes(t, n) / ggml_block_bytes(t));
  switch (t) {
    case GgmlType::F32: std::memcpy(out, x, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = t == GgmlType::F16 ? f32_to_f16_bits(x[i]) : f32_to_bf16_bits(x[i]);
        out[2 * i] = static_cast<uint8_t>(h & 0xFF);
        out[2 * i + 1] = static_cast<uint8_t>(h >> 8);
      }
      return;
    case GgmlType::Q8_0: return quantize_q8_0(x, nb, out);
    case GgmlType::Q4_0: return quantize_q4_0(x, nb, out);
    case GgmlType::Q5_0: return quantize_q5_0(x, nb, out);
    case GgmlType::Q4_K: return quantize_q4_K(x, nb, out);
    case GgmlType::Q6_K: return quantize_q6_K(x, nb, out);
  }
}

void ggml_dequantize(GgmlType t, const uint8_t* in, int64_t n, float* out) {
  const int64_t nb = static_cast<int64_t>(ggml_row_bytes(t, n) / ggml_block_bytes(t));
  switch (t) {
    case GgmlType::F32: std::memcpy(out, in, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const auto h = static_cast<uint16_t>(in[2 * i] | (in[2 * i + 1] << 8));
        out[i] = t == GgmlType::F16 ? f16_bits_to_f32(h) : bf16_bits_to_f32(h);
      }
      return;
    case GgmlType::Q8_0: return dequantize_q8_0(in, nb, out);
    case GgmlType::Q4_0: return dequantize_q4_0(in, nb, out);
    case GgmlType::Q5_0: return dequantize_q5_0(in, nb, out);
    case GgmlType::Q4_K: return dequantize_q4_K(in, nb, out);
    case GgmlType::Q6_K: return dequantize_q6_K(in, nb, out);
  }
}

}  // namespace llm
