// rope against a float64 rotation; the inverse is the transpose (the backward).
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

// fp32 tables exactly as the model builds them (HF's recipe).
void tables(int64_t P, int64_t D, double theta, std::vector<float>& cs, std::vector<float>& sn) {
  const int64_t half = D / 2;
  cs.resize(size_t(P * half));
  sn.resize(size_t(P * half));
  for (int64_t i = 0; i < half; ++i) {
    const float inv = 1.0f / std::pow(float(theta), float(2 * i) / float(D));
    for (int64_t p = 0; p < P; ++p) {
      const float a = float(p) * inv;
      cs[size_t(p * half + i)] = float(std::cos(double(a)));
      sn[size_t(p * half + i)] = float(std::sin(double(a)));
    }
  }
}

TEST_F(OpTest, RopeMatchesFloat64Rotation) {
  for (auto [B, T, H, D, pos0] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{1, 1, 1, 2, 0},
                                  {2, 17, 3, 10, 5},
                                  {1, 33, 7, 64, 0},
                                  {3, 5, 2, 128, 1000}}) {
    const double theta = 10000.0;
    std::vector<float> cs, sn;
    tables(pos0 + T + 3, D, theta, cs, sn);
    HostTensor Cos(DType::F32, {pos0 + T + 3, D / 2}, cs), Sin(DType::F32, {pos0 + T + 3, D / 2}, sn);
    const auto x = randn(g, size_t(B * T * H * D));
    HostTensor X(DType::F32, {B, T, H, D}, x);
    cpu.rope(X, Cos, Sin, pos0, false);
    // The fp32 angle p * inv_freq carries a relative error near 6e-8 of an angle up to ~1000
    // radians here, so the float64 rotation differs by up to ~1e-4 absolute at large positions.
    expect_close(X.values(), ref::rope(ref::to_d(x), B, T, H, D, pos0, theta), pos0 > 100 ? 5e-4 : 2e-5, "rotated");
    // inverse undoes it: R^T R = I
    cpu.rope(X, Cos, Sin, pos0, true);
    expect_close(X.values(), ref::to_d(x), 1e-5, "round trip");
  }
}

TEST_F(OpTest, RopeInverseIsTheBackward) {
  // <R x, r> = <x, R^T r>: the gradient of sum(r * rope(x)) is rope^-1(r).
  const int64_t B = 2, T = 9, H = 3, D = 16;
  std::vector<float> cs, sn;
  tables(T, D, 1e6, cs, sn);
  HostTensor Cos(DType::F32, {T, D / 2}, cs), Sin(DType::F32, {T, D / 2}, sn);
  const auto x = randn(g, size_t(B * T * H * D)), r = randn(g, size_t(B * T * H * D));
  HostTensor Rr(DType::F32, {B, T, H, D}, r);
  cpu.rope(Rr, Cos, Sin, 0, true);
  const ref::Vec rd = ref::to_d(r);
  const auto gx =
      ref::finite_diff([&](const ref::Vec& v) { return ref::dot(rd, ref::rope(v, B, T, H, D, 0, 1e6)); }, ref::to_d(x));
  expect_close(Rr.values(), gx, 1e-4, "dx");
}

TEST_F(OpTest, RopeRejectsPositionsBeyondTable) {
  std::vector<float> cs, sn;
  tables(4, 8, 1e4, cs, sn);
  HostTensor Cos(DType::F32, {4, 4}, cs), Sin(DType::F32, {4, 4}, sn), X(DType::F32, {1, 3, 1, 8});
  try {
    cpu.rope(X, Cos, Sin, 2, false);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rope: positions [2, 5) exceed the rotary table of 4 positions"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace llm::test
