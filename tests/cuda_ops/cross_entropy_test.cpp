// cross_entropy (the fused output layer + loss) on the CUDA backend (under the emulator in CI)
// against the CPU op: losses, dh and accumulated dw, with chunking forced small so chunk
// boundaries are crossed, ignored targets, awkward sizes (V = 4099, 1; C = 1, 33), strided h/dh,
// every compute dtype and dh in another dtype; the target check's message; determinism.
// Losses are compared at 1e-5 in every dtype: both ops compute the logits from the same 16-bit
// values in fp32 and the softmax in fp32. Gradients in 16-bit go through dlogits rounded to the
// compute dtype (the memory plan's layout), hence 1e-2 there.
#include <cstring>

#include "cuda_op_test.h"

namespace llm::test {
namespace {

struct CeCase {
  int64_t N, C, V;
  DType dt;
  int64_t chunk;  // 0: the backend's default (one chunk at these sizes)
};

std::string name_of(const CeCase& c) {
  return cat("N", c.N, "_C", c.C, "_V", c.V, "_", dtype_name(c.dt), "_chunk", c.chunk);
}

std::vector<int32_t> random_targets(std::mt19937_64& g, int64_t N, int64_t V) {
  std::uniform_int_distribution<int32_t> id(0, static_cast<int32_t>(V - 1));
  std::vector<int32_t> t(static_cast<size_t>(N));
  for (auto& x : t) x = id(g);
  if (N > 2) t[1] = -100;            // the usual ignore index
  if (N > 4) t[N - 2] = -1;          // any negative target is ignored
  if (N > 3) t[2] = int32_t(V - 1);  // the last vocabulary row
  return t;
}

double grad_tol(DType dt) { return dt == DType::F32 ? 1e-5 : 1e-2; }

class CudaCrossEntropy : public CudaOpTest {
 protected:
  // Runs both ops on the same inputs and compares. dh_type: the dtype of dh (or none when
  // !want_dh); dw accumulates onto small random values.
  void run(const CeCase& c, bool want_dh, bool want_dw, DType dh_type) {
    SCOPED_TRACE(cat(name_of(c), " dh=", want_dh ? dtype_name(dh_type) : "none", " dw=", want_dw));
    const int64_t N = c.N, C = c.C, V = c.V;
    const float scale = 0.37f;
    HostTensor H(c.dt, {N, C}, randn(g, size_t(N * C))), W(c.dt, {V, C}, randn(g, size_t(V * C), 0.3f));
    HostTensor T(DType::I32, {N}, random_targets(g, N, V));
    HostTensor L(DType::F32, {N}), DH(dh_type, {N, C}), DW(DType::F32, {V, C}, randn(g, size_t(V * C), 0.01f));
    OwnedTensor h = to_device(H), w = to_device(W), t = to_device(T), dw = to_device(DW);
    OwnedTensor l = dev.tensor(DType::F32, {N}), dh = dev.tensor(dh_type, {N, C});
    cpu.cross_entropy(H, W, T, L, want_dh ? DH.t() : Tensor(), want_dw ? DW.t() : Tensor(), scale, c.chunk);
    cuda.cross_entropy(h, w, t, l, want_dh ? dh.t() : Tensor(), want_dw ? dw.t() : Tensor(), scale, c.chunk);
    expect_near_rel(values(l), L.values(), 1e-5, "losses");
    const std::vector<float> got_l = values(l);
    for (int64_t n = 0; n < N; ++n) {
      if (T.t().ptr<int32_t>()[n] < 0) {
        EXPECT_EQ(got_l[size_t(n)], 0.0f) << "ignored target at " << n;
      }
    }
    // fp32 throughout: 1e-5 per element. A half-precision input or a dh stored in f16/bf16 (where
    // fp32 values 1e-7 apart can round to neighbouring ulps): the half-precision check.
    // dw of a bf16 run: a vocabulary row sums dlogits x h over the chunk's tokens from bf16 inputs;
    // single elements were seen 5.04e-2 of the rms apart (the norm error stays far below 1e-2).
    const auto check = [&](const std::vector<float>& got, const std::vector<float>& want, bool fp32, const char* what) {
      if (fp32) {
        expect_near_rel(got, want, grad_tol(DType::F32), what);
      } else {
        expect_near_half(got, want, what, 1e-3, 1e-1);
      }
    };
    if (want_dh) check(values(dh), DH.values(), c.dt == DType::F32 && dh_type == DType::F32, "dh");
    if (want_dw) check(values(dw), DW.values(), c.dt == DType::F32, "dw");
  }
};

TEST_F(CudaCrossEntropy, MatchesCpuAcrossChunksAndDtypes) {
  const CeCase cases[] = {
      {23, 33, 4099, DType::F32, 7},   // chunks of 7, 7, 7, 2
      {23, 33, 4099, DType::BF16, 0},  // one chunk
      {23, 33, 4099, DType::F16, 1},   // one token per chunk
      {1, 1, 33, DType::F32, 0},       // a single token and hidden size 1
      {31, 31, 1, DType::F32, 4},      // a one-word vocabulary: every loss and gradient is 0
      {33, 64, 31, DType::BF16, 16},
  };
  for (const CeCase& c : cases) run(c, true, true, c.dt);
}

TEST_F(CudaCrossEntropy, LossOnlyAndOneGradientAtATime) {
  const CeCase c{19, 33, 257, DType::F32, 5};
  run(c, false, false, DType::F32);
  run(c, true, false, DType::F32);
  run(c, false, true, DType::F32);
  const CeCase b{19, 33, 257, DType::BF16, 5};
  run(b, false, false, DType::BF16);
}

// dh in f32 with bf16 inputs comes straight from cuBLASLt; f16 with bf16 inputs goes through
// fp32 scratch and a conversion kernel.
TEST_F(CudaCrossEntropy, DhInAnotherDtype) {
  run({17, 33, 1031, DType::BF16, 6}, true, true, DType::F32);
  run({17, 33, 1031, DType::BF16, 6}, true, true, DType::F16);
  run({17, 33, 1031, DType::F32, 6}, true, false, DType::BF16);
}

// h and dh as column blocks of wider buffers (row stride C + 7), as slices of a fused buffer are.
TEST_F(CudaCrossEntropy, StridedRows) {
  const int64_t N = 13, C = 32, V = 515, ld = C + 8;
  for (DType dt : {DType::F32, DType::BF16}) {
    HostTensor Hb(dt, {N, ld}, randn(g, size_t(N * ld))), W(dt, {V, C}, randn(g, size_t(V * C), 0.3f));
    HostTensor T(DType::I32, {N}, random_targets(g, N, V)), L(DType::F32, {N});
    HostTensor DHb(dt, {N, ld}, std::vector<float>(size_t(N * ld), 5.0f)), DW(DType::F32, {V, C});
    std::memset(DW.t().data(), 0, DW.t().nbytes());
    OwnedTensor hb = to_device(Hb), w = to_device(W), t = to_device(T), dhb = to_device(DHb), dw = to_device(DW);
    OwnedTensor l = dev.tensor(DType::F32, {N});
    cpu.cross_entropy(Hb.t().slice(1, 0, C), W, T, L, DHb.t().slice(1, 0, C), DW, 1.0f, 4);
    cuda.cross_entropy(hb.t().slice(1, 0, C), w, t, l, dhb.t().slice(1, 0, C), dw, 1.0f, 4);
    expect_near_rel(values(l), L.values(), 1e-5, "losses");
    if (dt == DType::F32) {
      expect_near_rel(values(dhb), DHb.values(), grad_tol(dt), "dh (and the untouched columns beyond C)");
      expect_near_rel(values(dw), DW.values(), grad_tol(dt), "dw");
    } else {
      expect_near_half(values(dhb), DHb.values(), "dh (and the untouched columns beyond C)");
      expect_near_half(values(dw), DW.values(), "dw", 1e-3, 1e-1);  // as in run()
    }
  }
}

// ZeRO-2's path: the softmax statistics kept by the forward agree with the CPU's, and the output
// layer's dw formed later in row ranges (cross_entropy_dw) agrees with the fused op's dw.
TEST_F(CudaCrossEntropy, StatsAndRowRangeDwMatchTheFusedOp) {
  const int64_t N = 23, C = 33, V = 1031, chunk = 6;
  for (DType dt : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(dt));
    HostTensor H(dt, {N, C}, randn(g, size_t(N * C))), W(dt, {V, C}, randn(g, size_t(V * C), 0.3f));
    HostTensor T(DType::I32, {N}, random_targets(g, N, V)), L(DType::F32, {N}), S(DType::F32, {N, 2});
    const std::vector<float> dw0 = randn(g, size_t(V * C), 0.01f);
    HostTensor DW0(DType::F32, {V, C}, dw0);
    OwnedTensor h = to_device(H), w = to_device(W), t = to_device(T), dw = to_device(DW0);
    OwnedTensor l = dev.tensor(DType::F32, {N}), st = dev.tensor(DType::F32, {N, 2});
    cpu.cross_entropy(H, W, T, L, Tensor(), Tensor(), 0.37f, chunk, S);
    cuda.cross_entropy(h, w, t, l, Tensor(), dw, 0.37f, chunk, st);
    // max is one of the logits (fp32 from the same inputs); the sums differ in order only.
    expect_near_rel(values(st), S.values(), 1e-5, "stats");
    std::vector<float> ranged(dw0);
    for (const auto& [r0, r1] : {std::pair<int64_t, int64_t>{0, 1}, {1, 500}, {500, 1030}, {1030, 1031}}) {
      OwnedTensor part = to_device(
          HostTensor(DType::F32, {r1 - r0, C}, std::vector<float>(dw0.begin() + r0 * C, dw0.begin() + r1 * C)));
      cuda.cross_entropy_dw(h, w.t().slice(0, r0, r1), r0, t, st, part, 0.37f, chunk);
      const std::vector<float> got = values(part);
      std::copy(got.begin(), got.end(), ranged.begin() + r0 * C);
    }
    if (dt == DType::F32) {
      expect_near_rel(ranged, values(dw), 1e-5, "row-range dw against the fused dw");
    } else {
      expect_near_half(ranged, values(dw), "row-range dw against the fused dw", 1e-3, 1e-1);
    }
  }
}

// The same call twice gives the same bits (fixed reduction trees, one cuBLASLt algorithm).
TEST_F(CudaCrossEntropy, Deterministic) {
  const int64_t N = 21, C = 33, V = 700;
  HostTensor H(DType::BF16, {N, C}, randn(g, size_t(N * C))), W(DType::BF16, {V, C}, randn(g, size_t(V * C), 0.3f));
  HostTensor T(DType::I32, {N}, random_targets(g, N, V));
  OwnedTensor h = to_device(H), w = to_device(W), t = to_device(T);
  std::vector<float> first[3];
  for (int run = 0; run < 2; ++run) {
    OwnedTensor l = dev.tensor(DType::F32, {N}), dh = dev.tensor(DType::BF16, {N, C}),
                dw = dev.zeros(DType::F32, {V, C});
    cuda.cross_entropy(h, w, t, l, dh, dw, 0.5f, 8);
    const std::vector<float> now[3] = {values(l), values(dh), values(dw)};
    for (int i = 0; i < 3; ++i) {
      if (run == 0) {
        first[i] = now[i];
      } else {
        EXPECT_EQ(std::memcmp(first[i].data(), now[i].data(), now[i].size() * 4), 0) << "output " << i;
      }
    }
  }
}

TEST_F(CudaCrossEntropy, RejectsTargetOutsideVocabularyBeforeWritingAnything) {
  const int64_t N = 5, C = 4, V = 5;
  HostTensor H(DType::F32, {N, C}, randn(g, size_t(N * C))), W(DType::F32, {V, C}, randn(g, size_t(V * C)));
  HostTensor T(DType::I32, {N}, std::vector<int32_t>{0, -100, 7, 5, 1});
  HostTensor DW(DType::F32, {V, C}, randn(g, size_t(V * C)));
  OwnedTensor h = to_device(H), w = to_device(W), t = to_device(T), dw = to_device(DW);
  OwnedTensor l = dev.tensor(DType::F32, {N}), dh = dev.tensor(DType::F32, {N, C});
  try {
    cuda.cross_entropy(h, w, t, l, dh, dw, 1.0f, 0);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cross_entropy: target 7 at position 2 is outside the vocabulary [0, 5)"),
              std::string::npos)
        << e.what();
  }
  const std::vector<float> after = values(dw), before = DW.values();
  EXPECT_EQ(std::memcmp(after.data(), before.data(), after.size() * 4), 0) << "dw was modified";
}

TEST_F(CudaCrossEntropy, RejectsMixedDtypesAndCpuTensors) {
  HostTensor H(DType::F32, {2, 4}), W(DType::F32, {5, 4}), T(DType::I32, {2}, std::vector<int32_t>{0, 1});
  OwnedTensor h = to_device(H), wb = dev.tensor(DType::BF16, {5, 4}), t = to_device(T), l = dev.tensor(DType::F32, {2});
  EXPECT_THROW(
      {
        try {
          cuda.cross_entropy(h, wb, t, l, Tensor(), Tensor(), 1.0f, 0);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("cross_entropy: h is f32 and w is bf16"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  EXPECT_THROW(cuda.cross_entropy(h, W, t, l, Tensor(), Tensor(), 1.0f, 0), Error);  // w on the host
}

}  // namespace
}  // namespace llm::test
