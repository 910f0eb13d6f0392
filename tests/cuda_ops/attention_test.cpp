// attention_forward / attention_backward on the CUDA backend (under the emulator in CI) against
// the CPU op, on fresh random inputs read through the model's strided views: q, k, v as heads of
// a fused [B, T, Hq + 2 Hkv, D] buffer, or (queries after a cache) k, v as the first Tk rows of a
// [B, ctx, Hkv, D] cache; gradients written into a fused dqkv buffer. Also checks that the ops
// need no device memory beyond O(B Hq T D) (never T^2), that the backward is bitwise
// reproducible, and the error messages. Sizes are small: the emulator runs each tensor-core
// product as 64 warp shuffles.
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "cuda_op_test.h"

namespace llm::test {
namespace {

struct Case {
  int64_t B, Tq, Tk, Hq, Hkv, D;
  DType dt;
};

std::string name_of(const Case& c) {
  return cat("B", c.B, "_Tq", c.Tq, "_Tk", c.Tk, "_Hq", c.Hq, "_Hkv", c.Hkv, "_D", c.D, "_", dtype_name(c.dt));
}

double tol_of(DType dt) { return dt == DType::F32 ? 1e-5 : 1e-2; }

// Device bytes in use (the emulator counts its live allocations).
size_t device_used() {
  size_t free_b = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free_b, &total), cudaSuccess);
  return total - free_b;
}

class CudaAttention : public CudaOpTest {
 protected:
  // A host/device pair of the same values.
  struct Pair {
    HostTensor h;
    OwnedTensor d;
  };
  Pair pair(DType dt, std::initializer_list<int64_t> shape, const std::vector<float>& values) {
    HostTensor h(dt, shape, values);
    OwnedTensor d = to_device(h);
    return {std::move(h), std::move(d)};
  }
};

// Heads [h0, h1) of a dense [B, T, H, D] buffer's values, as a dense [B, T, h1 - h0, D] list.
std::vector<float> heads_of(const std::vector<float>& all, int64_t BT, int64_t H, int64_t D, int64_t h0, int64_t h1) {
  std::vector<float> r;
  r.reserve(size_t(BT * (h1 - h0) * D));
  for (int64_t bt = 0; bt < BT; ++bt) {
    const auto* row = all.data() + (bt * H + h0) * D;
    r.insert(r.end(), row, row + (h1 - h0) * D);
  }
  return r;
}

// ---- forward ------------------------------------------------------------------------------------
class CudaAttentionForward : public CudaAttention, public ::testing::WithParamInterface<Case> {};

TEST_P(CudaAttentionForward, MatchesCpu) {
  const Case c = GetParam();
  const int64_t H = c.Hq + 2 * c.Hkv;
  // q (and, when Tq == Tk, k and v) are heads of one fused buffer; after a cache (Tq < Tk) k and v
  // are the first Tk rows of [B, Tk + 5, Hkv, D] caches.
  Pair qkv = pair(c.dt, {c.B, c.Tq, H, c.D}, randn(g, size_t(c.B * c.Tq * H * c.D)));
  const int64_t ctx = c.Tk + 5;
  Pair kc = pair(c.dt, {c.B, ctx, c.Hkv, c.D}, randn(g, size_t(c.B * ctx * c.Hkv * c.D)));
  Pair vc = pair(c.dt, {c.B, ctx, c.Hkv, c.D}, randn(g, size_t(c.B * ctx * c.Hkv * c.D)));
  auto views = [&](const Tensor& fused, const Tensor& kcache, const Tensor& vcache) {
    const Tensor q = fused.slice(2, 0, c.Hq);
    if (c.Tq == c.Tk)
      return std::array<Tensor, 3>{q, fused.slice(2, c.Hq, c.Hq + c.Hkv), fused.slice(2, c.Hq + c.Hkv, H)};
    return std::array<Tensor, 3>{q, kcache.slice(1, 0, c.Tk), vcache.slice(1, 0, c.Tk)};
  };
  const auto hv = views(qkv.h.t(), kc.h.t(), vc.h.t());
  const auto dv = views(qkv.d.t(), kc.d.t(), vc.d.t());
  HostTensor out(c.dt, {c.B, c.Tq, c.Hq, c.D}), lse(DType::F32, {c.B, c.Hq, c.Tq});
  cpu.attention_forward(hv[0], hv[1], hv[2], out, lse);

  OwnedTensor dout = dev.tensor(c.dt, {c.B, c.Tq, c.Hq, c.D}), dlse = dev.tensor(DType::F32, {c.B, c.Hq, c.Tq});
  const size_t before = device_used(), arena_before = dev.live_bytes();
  cuda.attention_forward(dv[0], dv[1], dv[2], dout, dlse);
  cuda.synchronize();
  // Only the decode split needs scratch: [B, Hq, splits, D + 2] floats, splits <= Tk / 128 + 1.
  const size_t bound = size_t(c.B * c.Hq * (c.Tk / 128 + 1) * (c.D + 2) * 4) + 4096;
  EXPECT_LE(device_used() - before, bound);
  EXPECT_EQ(dev.live_bytes(), arena_before);
  if (c.dt == DType::F32) {
    expect_near_rel(values(dout), out.values(), tol_of(c.dt), "out");
  } else {
    expect_near_half(values(dout), out.values(), "out");
  }
  expect_near_rel(values(dlse), lse.values(), c.dt == DType::F32 ? 1e-5 : 2e-3, "lse");
  // lse may be left out (inference).
  OwnedTensor dout2 = dev.tensor(c.dt, {c.B, c.Tq, c.Hq, c.D});
  cuda.attention_forward(dv[0], dv[1], dv[2], dout2, Tensor());
  EXPECT_EQ(values(dout2), values(dout));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaAttentionForward,
    ::testing::Values(Case{2, 17, 17, 7, 1, 64, DType::F32},      // FMA tiles, GQA 7
                      Case{1, 300, 300, 2, 1, 128, DType::F32},   // several tiles, GQA 2
                      Case{1, 128, 128, 7, 1, 64, DType::F16},    // tensor cores, GQA 7
                      Case{1, 300, 300, 1, 1, 128, DType::BF16},  // tensor cores, 5 query tiles
                      Case{2, 17, 17, 2, 2, 128, DType::F16}, Case{1, 300, 300, 7, 1, 64, DType::BF16},
                      Case{2, 33, 100, 4, 2, 64, DType::BF16},  // a prefill chunk after a cache
                      Case{1, 70, 90, 2, 1, 128, DType::F16},
                      Case{1, 5, 40, 3, 1, 96, DType::F32},  // other head dims: FMA tiles
                      Case{1, 50, 50, 2, 1, 96, DType::F16}, Case{1, 19, 23, 2, 2, 32, DType::BF16},
                      Case{1, 1, 1, 7, 1, 64, DType::BF16},  // one token
                      // decode (Tq == 1) over caches of several lengths; group 9 takes two blocks
                      Case{1, 1, 17, 14, 2, 64, DType::BF16}, Case{2, 1, 300, 14, 2, 64, DType::F16},
                      Case{1, 1, 700, 7, 1, 128, DType::F32}, Case{1, 1, 129, 9, 1, 128, DType::BF16},
                      Case{3, 1, 260, 4, 4, 96, DType::F32}),
    [](const ::testing::TestParamInfo<Case>& i) { return name_of(i.param); });

// ---- backward -----------------------------------------------------------------------------------
class CudaAttentionBackward : public CudaAttention, public ::testing::WithParamInterface<Case> {};

TEST_P(CudaAttentionBackward, MatchesCpu) {
  const Case c = GetParam();
  const int64_t T = c.Tq, H = c.Hq + 2 * c.Hkv;
  Pair qkv = pair(c.dt, {c.B, T, H, c.D}, randn(g, size_t(c.B * T * H * c.D)));
  Pair dout = pair(c.dt, {c.B, T, c.Hq, c.D}, randn(g, size_t(c.B * T * c.Hq * c.D)));
  auto split = [&](const Tensor& t) {
    return std::array<Tensor, 3>{t.slice(2, 0, c.Hq), t.slice(2, c.Hq, c.Hq + c.Hkv), t.slice(2, c.Hq + c.Hkv, H)};
  };
  // CPU: forward, then backward into a fused dqkv buffer.
  const auto hv = split(qkv.h.t());
  HostTensor out(c.dt, {c.B, T, c.Hq, c.D}), lse(DType::F32, {c.B, c.Hq, T}), dqkv(c.dt, {c.B, T, H, c.D});
  cpu.attention_forward(hv[0], hv[1], hv[2], out, lse);
  const auto hg = split(dqkv.t());
  cpu.attention_backward(dout.h, hv[0], hv[1], hv[2], out, lse, hg[0], hg[1], hg[2]);

  // CUDA: its own forward, then the backward into a dqkv buffer full of NaN (all of it is written).
  const auto dv = split(qkv.d.t());
  OwnedTensor dout_f = dev.tensor(c.dt, {c.B, T, c.Hq, c.D}), dlse = dev.tensor(DType::F32, {c.B, c.Hq, T});
  cuda.attention_forward(dv[0], dv[1], dv[2], dout_f, dlse);
  OwnedTensor ddqkv = to_device(HostTensor(
      c.dt, {c.B, T, H, c.D}, std::vector<float>(size_t(c.B * T * H * c.D), std::numeric_limits<float>::quiet_NaN())));
  const auto dg = split(ddqkv.t());
  const size_t before = device_used(), arena_before = dev.live_bytes();
  cuda.attention_backward(dout.d, dv[0], dv[1], dv[2], dout_f, dlse, dg[0], dg[1], dg[2]);
  cuda.synchronize();
  // delta [B, Hq, T] and at most Hq / Hkv parts of dK/dV partials [B, T, Hkv, D]: O(B Hq T D).
  const size_t bound = size_t((c.B * c.Hq * T + 64) * 4 + 2 * c.B * c.Hq * T * c.D * 4) + 4096;
  EXPECT_LE(device_used() - before, bound);
  EXPECT_EQ(dev.live_bytes(), arena_before);
  const double tol = tol_of(c.dt);
  const std::vector<float> got = values(ddqkv), want = dqkv.values();
  const int64_t BT = c.B * T;
  const auto check = [&](int64_t h0, int64_t h1, const char* what) {
    const std::vector<float> g1 = heads_of(got, BT, H, c.D, h0, h1), w1 = heads_of(want, BT, H, c.D, h0, h1);
    if (c.dt == DType::F32) {
      // Sums over 300 keys in another order: the gradient's norm error is the 1e-5 bound; single
      // elements near the rms were seen 1.14e-5 of it apart.
      EXPECT_LE(norm_rel_err(g1, w1), tol) << what << ": norm-relative error";
      expect_near_rel(g1, w1, 10 * tol, what);
    } else {
      // dS = P (dP - delta) cancels, and P and dS are rounded to the input type before the
      // products (as FlashAttention does): single gradient elements were seen 5.8e-2 of the rms
      // from the CPU's. The norm error (<= 1e-2) is the measure; 0.25 per element still catches
      // a wrong index or a missing tile, which are off by the whole value.
      expect_near_half(g1, w1, what, 1e-3, 0.25);
    }
  };
  check(0, c.Hq, "dq");
  check(c.Hq, c.Hq + c.Hkv, "dk");
  check(c.Hq + c.Hkv, H, "dv");
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttentionBackward,
                         ::testing::Values(Case{1, 1, 1, 7, 1, 64, DType::BF16},   // one token
                                           Case{2, 17, 17, 7, 1, 64, DType::F32},  // FMA tiles, GQA 7
                                           Case{1, 300, 300, 2, 2, 128, DType::F32},
                                           Case{1, 17, 17, 7, 1, 128, DType::F16},  // tensor cores, GQA 7, split heads
                                           Case{1, 128, 128, 7, 1, 64, DType::BF16},
                                           Case{1, 300, 300, 1, 1, 64, DType::F16},  // 5 query tiles, partial last one
                                           Case{1, 300, 300, 2, 1, 128, DType::BF16},
                                           Case{2, 128, 128, 2, 2, 128, DType::F16},
                                           Case{1, 40, 40, 3, 1, 96, DType::BF16}),  // other head dims: FMA tiles
                         [](const ::testing::TestParamInfo<Case>& i) { return name_of(i.param); });

// ---- properties -----------------------------------------------------------------------------------
// The scratch memory grows with T, not T^2: at T = 1024 the T x T fp32 scores of one head alone
// would be 4 MiB.
TEST_F(CudaAttention, MemoryIsLinearInSequenceLength) {
  const int64_t B = 1, T = 1024, Hq = 2, Hkv = 1, D = 64, H = Hq + 2 * Hkv;
  OwnedTensor qkv = to_device(HostTensor(DType::F32, {B, T, H, D}, randn(g, size_t(B * T * H * D))));
  OwnedTensor dout = to_device(HostTensor(DType::F32, {B, T, Hq, D}, randn(g, size_t(B * T * Hq * D))));
  OwnedTensor out = dev.tensor(DType::F32, {B, T, Hq, D}), lse = dev.tensor(DType::F32, {B, Hq, T});
  OwnedTensor dqkv = dev.tensor(DType::F32, {B, T, H, D});
  const Tensor q = qkv->slice(2, 0, Hq), k = qkv->slice(2, Hq, Hq + Hkv), v = qkv->slice(2, Hq + Hkv, H);
  const size_t before = device_used();
  cuda.attention_forward(q, k, v, out, lse);
  cuda.attention_backward(dout, q, k, v, out, lse, dqkv->slice(2, 0, Hq), dqkv->slice(2, Hq, Hq + Hkv),
                          dqkv->slice(2, Hq + Hkv, H));
  cuda.synchronize();
  const size_t used = device_used() - before;
  EXPECT_LE(used, size_t(B * Hq * T * (2 * D + 1) * 4) + 4096);
  EXPECT_LT(used, size_t(T * T * 4) / 8);
}

// No atomics: the same inputs give bitwise the same gradients (several blocks per kv group).
TEST_F(CudaAttention, BackwardIsDeterministic) {
  for (DType dt : {DType::BF16, DType::F32}) {
    const int64_t B = 1, T = 40, Hq = 7, Hkv = 1, D = 64, H = Hq + 2 * Hkv;
    OwnedTensor qkv = to_device(HostTensor(dt, {B, T, H, D}, randn(g, size_t(B * T * H * D))));
    OwnedTensor dout = to_device(HostTensor(dt, {B, T, Hq, D}, randn(g, size_t(B * T * Hq * D))));
    OwnedTensor out = dev.tensor(dt, {B, T, Hq, D}), lse = dev.tensor(DType::F32, {B, Hq, T});
    const Tensor q = qkv->slice(2, 0, Hq), k = qkv->slice(2, Hq, Hq + Hkv), v = qkv->slice(2, Hq + Hkv, H);
    cuda.attention_forward(q, k, v, out, lse);
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      OwnedTensor dqkv = dev.tensor(dt, {B, T, H, D});
      cuda.attention_backward(dout, q, k, v, out, lse, dqkv->slice(2, 0, Hq), dqkv->slice(2, Hq, Hq + Hkv),
                              dqkv->slice(2, Hq + Hkv, H));
      const std::vector<float> got = values(dqkv);
      if (run == 0) {
        first = got;
      } else {
        EXPECT_EQ(std::memcmp(got.data(), first.data(), got.size() * sizeof(float)), 0) << dtype_name(dt);
      }
    }
  }
}

TEST_F(CudaAttention, ErrorsNameTheOp) {
  auto expect_error = [](auto&& f, const char* prefix, const char* part) {
    try {
      f();
      ADD_FAILURE() << "no error; expected " << part;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
      EXPECT_NE(msg.find(part), std::string::npos) << msg;
    }
  };
  OwnedTensor q = dev.tensor(DType::BF16, {1, 4, 3, 64}), k = dev.tensor(DType::BF16, {1, 4, 2, 64});
  OwnedTensor o = dev.tensor(DType::BF16, {1, 4, 3, 64}), l = dev.tensor(DType::F32, {1, 3, 4});
  expect_error([&] { cuda.attention_forward(q, k, k, o, l); }, "attention_forward", "not a multiple");
  OwnedTensor q2 = dev.tensor(DType::F16, {1, 4, 2, 64}), o2 = dev.tensor(DType::F16, {1, 4, 2, 64});
  expect_error([&] { cuda.attention_forward(q2, k, k, o2, Tensor()); }, "attention_forward", "one dtype");
  OwnedTensor q3 = dev.tensor(DType::F32, {1, 4, 1, 256}), o3 = dev.tensor(DType::F32, {1, 4, 1, 256});
  expect_error([&] { cuda.attention_forward(q3, q3, q3, o3, Tensor()); }, "attention_forward", "head_dim 256");
  OwnedTensor kl = dev.tensor(DType::BF16, {1, 6, 2, 64}), q4 = dev.tensor(DType::BF16, {1, 4, 2, 64});
  OwnedTensor l4 = dev.tensor(DType::F32, {1, 2, 4});
  expect_error([&] { cuda.attention_backward(q4, q4, kl, kl, q4, l4, q4, kl, kl); }, "attention_backward",
               "as many queries as keys");
  HostTensor host(DType::BF16, {1, 4, 2, 64});
  expect_error([&] { cuda.attention_forward(host, k, k, q4, Tensor()); }, "attention_forward", "CPU tensor");
}

}  // namespace
}  // namespace llm::test
