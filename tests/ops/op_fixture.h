// Common setup for op tests: the CPU backend and conversions between host values and tensors.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "host_tensor.h"
#include "ops/ref_ops.h"
#include "test_util.h"

namespace llm::test {

class OpTest : public ::testing::Test {
 protected:
  CpuBackend cpu{0};
  std::mt19937_64 g = rng();
};

// Asserts |got - want| <= tol * max(|want|, rms(want), abs_floor) elementwise. Floating-point
// sums err relative to the magnitude of their terms, which the vector's RMS stands for, so an
// element that cancels to near zero is judged on that scale rather than on its own.
template <class A>
void expect_close(const A& got, const ref::Vec& want, double tol, const char* what, double abs_floor = 1e-7) {
  ASSERT_EQ(got.size(), want.size()) << what;
  double ss = 0;
  for (double w : want) ss += w * w;
  const double rms = want.empty() ? 0.0 : std::sqrt(ss / double(want.size()));
  const RelErr e = max_rel_err(got, want, std::max(rms, abs_floor));
  EXPECT_LE(e.err, tol) << what << ": worst at " << e.at << ": got " << got[e.at] << ", want " << want[e.at] << " (rms "
                        << rms << ")";
}

// f() fails with an llm::Error whose message contains want (an op's message starts with its name).
inline void expect_error(const std::function<void()>& f, const std::string& want) {
  try {
    f();
    ADD_FAILURE() << "no error, expected " << want;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
}

}  // namespace llm::test
