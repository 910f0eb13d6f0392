// dropout against its documented mask (an independent float64 loop), its rate, and its use as
// its own backward.
#include <functional>

#include "llm/error.h"
#include "ops/op_fixture.h"

namespace llm::test {
namespace {

// The documented mask: keep(seed, i) = (splitmix64(seed ^ i * 0x9e3779b97f4a7c15) >> 40) >= p * 2^24.
bool keep(uint64_t seed, int64_t i, double p) {
  uint64_t z = seed ^ (static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull);
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return double(z >> 40) >= p * 16777216.0;
}

TEST_F(OpTest, DropoutMatchesItsDocumentedMask) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    for (double p : {0.0, 0.05, 0.5}) {
      const int64_t n = 70001;  // several threads' chunks and a tail
      const uint64_t seed = g();
      const auto x = rounded(randn(g, size_t(n), 2.0f), dt);
      HostTensor X(dt, {n}, x);
      cpu.dropout(X, float(p), seed);
      ref::Vec want(static_cast<size_t>(n));
      int64_t kept = 0;
      for (int64_t i = 0; i < n; ++i) {
        const bool k = keep(seed, i, p);
        kept += k;
        want[size_t(i)] = k ? double(x[size_t(i)]) / (1.0 - p) : 0.0;
      }
      expect_close(X.values(), want, std::max(storage_tol(dt), 1e-6),
                   cat("dropout ", dtype_name(dt), " p ", p).c_str());
      EXPECT_NEAR(double(kept) / double(n), 1.0 - p, 0.01) << "p " << p;  // the rate
    }
  }
}

TEST_F(OpTest, DropoutIsItsOwnBackwardAndDependsOnTheSeed) {
  const int64_t n = 1000;
  const auto x = randn(g, size_t(n)), dy = randn(g, size_t(n));
  HostTensor X(DType::F32, {n}, x), DY(DType::F32, {n}, dy), X2(DType::F32, {n}, x);
  cpu.dropout(X, 0.3f, 42);
  cpu.dropout(DY, 0.3f, 42);  // d/dx of sum(dy * dropout(x)) = dropout(dy), the same mask
  cpu.dropout(X2, 0.3f, 43);
  const auto y = X.values(), dx = DY.values(), y2 = X2.values();
  int64_t differ = 0;
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_EQ(y[size_t(i)] == 0.0f, dx[size_t(i)] == 0.0f) << i;
    if (y[size_t(i)] != 0.0f) {
      EXPECT_FLOAT_EQ(dx[size_t(i)] * x[size_t(i)], y[size_t(i)] * dy[size_t(i)]) << i;
    }
    differ += (y[size_t(i)] == 0.0f) != (y2[size_t(i)] == 0.0f);
  }
  EXPECT_GT(differ, 100);
}

void expect_error(const std::function<void()>& f, const std::string& a, const std::string& b) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(a, 0), 0u) << m;
    EXPECT_NE(m.find(b), std::string::npos) << m;
  }
}

TEST_F(OpTest, DropoutRejectsBadArguments) {
  HostTensor X(DType::F32, {4, 6}), I(DType::I32, {4});
  expect_error([&] { cpu.dropout(X, 1.0f, 1); }, "dropout: ", "[0, 1)");
  expect_error([&] { cpu.dropout(I, 0.1f, 1); }, "dropout: ", "contiguous float");
  expect_error([&] { cpu.dropout(X.t().slice(1, 0, 5), 0.1f, 1); }, "dropout: ", "contiguous float");
}

}  // namespace
}  // namespace llm::test
