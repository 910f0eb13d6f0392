// Float64 reference implementations of every op, written as the plainest loops from the math
// (independent of the backend code), used both as forward references and, through finite
// differences, to check every backward op.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace llm::ref {

using Vec = std::vector<double>;

template <class T>
Vec to_d(const std::vector<T>& v) {
  return Vec(v.begin(), v.end());
}

// y = w * x / sqrt(mean(x^2) + eps) per row; x [N, C]
inline Vec rmsnorm(const Vec& x, const Vec& w, int64_t N, int64_t C, double eps, Vec* rstd = nullptr) {
  Vec y(x.size());
  if (rstd) rstd->assign(static_cast<size_t>(N), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += x[n * C + c] * x[n * C + c];
    const double r = 1.0 / std::sqrt(ss / double(C) + eps);
    if (rstd) (*rstd)[n] = r;
    for (int64_t c = 0; c < C; ++c) y[n * C + c] = w[c] * x[n * C + c] * r;
  }
  return y;
}

// c [M, N] = op(a) @ op(b) (+ bias)
inline Vec matmul(const Vec& a, bool ta, const Vec& b, bool tb, int64_t M, int64_t N, int64_t K,
                  const Vec* bias = nullptr) {
  Vec c(static_cast<size_t>(M * N));
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = bias ? (*bias)[j] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += (ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
      c[i * N + j] = s;
    }
  }
  return c;
}

// NeoX rotation of x [B, T, H, D] at positions pos0 + t
inline Vec rope(const Vec& x, int64_t B, int64_t T, int64_t H, int64_t D, int64_t pos0, double theta) {
  Vec y(x);
  const int64_t half = D / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const double ang = double(pos0 + t) * std::pow(theta, -2.0 * double(i) / double(D));
          const size_t o = static_cast<size_t>(((b * T + t) * H + h) * D);
          const double x1 = x[o + i], x2 = x[o + i + half];
          y[o + i] = x1 * std::cos(ang) - x2 * std::sin(ang);
          y[o + i + half] = x2 * std::cos(ang) + x1 * std::sin(ang);
        }
  return y;
}

// causal GQA attention: q [B, Tq, Hq, D], k, v [B, Tk, Hkv, D] -> out [B, Tq, Hq, D]
inline Vec attention(const Vec& q, const Vec& k, const Vec& v, int64_t B, int64_t Tq, int64_t Tk, int64_t Hq,
                     int64_t Hkv, int64_t D, Vec* lse = nullptr) {
  Vec out(static_cast<size_t>(B * Tq * Hq * D));
  if (lse) lse->assign(static_cast<size_t>(B * Hq * Tq), 0.0);
  const double scale = 1.0 / std::sqrt(double(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / (Hq / Hkv);
      for (int64_t t = 0; t < Tq; ++t) {
        const int64_t visible = Tk - Tq + t + 1;
        Vec s(static_cast<size_t>(visible));
        double mx = -1e300;
        for (int64_t j = 0; j < visible; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += q[((b * Tq + t) * Hq + h) * D + d] * k[((b * Tk + j) * Hkv + g) * D + d];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (auto& e : s) sum += (e = std::exp(e - mx));
        if (lse) (*lse)[(b * Hq + h) * Tq + t] = mx + std::log(sum);
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j < visible; ++j) acc += s[j] / sum * v[((b * Tk + j) * Hkv + g) * D + d];
          out[((b * Tq + t) * Hq + h) * D + d] = acc;
        }
      }
    }
  return out;
}

inline Vec swiglu(const Vec& gu, int64_t N, int64_t I) {
  Vec out(static_cast<size_t>(N * I));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < I; ++i) {
      const double g = gu[n * 2 * I + i], u = gu[n * 2 * I + I + i];
      out[n * I + i] = g / (1.0 + std::exp(-g)) * u;
    }
  return out;
}

// per-token loss of logits h @ w^T against targets (negative: 0)
inline Vec cross_entropy(const Vec& h, const Vec& w, const std::vector<int32_t>& tg, int64_t N, int64_t C, int64_t V) {
  const Vec logits = matmul(h, false, w, true, N, V, C);
  Vec loss(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) {
    if (tg[n] < 0) continue;
    double mx = -1e300;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, logits[n * V + j]);
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(logits[n * V + j] - mx);
    loss[n] = mx + std::log(s) - logits[n * V + tg[n]];
  }
  return loss;
}

inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central finite difference of the scalar f at x, all coordinates. With float64 f and
// h = 1e-5 * max(1, |x|), truncation (h^2 f''') and rounding (1e-16 / h) errors stay near 1e-10
// relative: far below the fp32 errors (about 1e-6) the backward ops are judged by.
template <class F>
Vec finite_diff(F&& f, Vec x) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i], h = 1e-5 * std::max(1.0, std::abs(xi));
    x[i] = xi + h;
    const double fp = f(x);
    x[i] = xi - h;
    const double fm = f(x);
    x[i] = xi;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// An attention gradient checked along a direction: for f = <r, attention(x[0], x[1], x[2])>
// (causal, T queries and keys), `analytic` = <grad, u> for the gradient of input `which`, `fd` =
// (f(x + h u) - f(x - h u)) / 2h in float64, and `scale` = sum |grad_i u_i|, the size the
// difference is judged against.
struct Directional {
  double analytic = 0, fd = 0, scale = 0;
};
template <class G>
Directional attention_directional(const Vec (&x)[3], const Vec& r, int which, const G& grad,
                                  const std::vector<float>& u, int64_t B, int64_t T, int64_t Hq, int64_t Hkv,
                                  int64_t D) {
  const double h = 1e-5;
  auto at = [&](double s) {
    Vec y[3] = {x[0], x[1], x[2]};
    for (size_t i = 0; i < u.size(); ++i) y[which][i] += s * u[i];
    return dot(r, attention(y[0], y[1], y[2], B, T, T, Hq, Hkv, D));
  };
  Directional d;
  d.fd = (at(h) - at(-h)) / (2 * h);
  for (size_t i = 0; i < u.size(); ++i) {
    d.analytic += double(grad[i]) * u[i];
    d.scale += std::abs(double(grad[i]) * u[i]);
  }
  return d;
}

}  // namespace llm::ref
