// Host/device pairs for the CUDA op tests: the same values as a host tensor (for CpuBackend) and
// a device tensor (for CudaBackend), so each test runs both ops and compares whole buffers.
#pragma once

#include <initializer_list>
#include <utility>
#include <vector>

#include "cuda_op_test.h"

namespace llm::test {

struct Pair {
  HostTensor h;
  OwnedTensor d;
};

// fp32: 1e-5 relative (the contract). f16 / bf16: the two ops compute in fp32 and round once,
// differing only in the last fp32 bits, so at most one storage ulp: 2^-10 (f16) and 2^-7 (bf16)
// relative at the bottom of a binade, with headroom.
inline double tol_of(DType dt) {
  switch (dt) {
    case DType::F16: return 2e-3;
    case DType::BF16: return 1e-2;
    default: return 1e-5;
  }
}

class CudaPairTest : public CudaOpTest {
 protected:
  Pair pair(DType dt, std::initializer_list<int64_t> shape, const std::vector<float>& values) {
    HostTensor h(dt, shape, values);
    OwnedTensor d = to_device(h);
    return {std::move(h), std::move(d)};
  }
  Pair rand_pair(DType dt, std::initializer_list<int64_t> shape, float stddev = 1.0f) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return pair(dt, shape, randn(g, static_cast<size_t>(n), stddev));
  }
  // Device buffer == host buffer within tol (the whole buffers, so untouched parts are checked too).
  void expect_same(const Pair& p, double tol, const std::string& what) {
    expect_near_rel(values(p.d), p.h.values(), tol, what.c_str());
  }
  // Bit-for-bit equality of the buffers (as floats; NaN-free data).
  void expect_equal(const Pair& p, const std::string& what) {
    const std::vector<float> got = values(p.d), want = p.h.values();
    ASSERT_EQ(got.size(), want.size()) << what;
    size_t bad = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i]) && bad++ < 3) {
        ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", want " << want[i];
      }
    }
    EXPECT_EQ(bad, 0u) << what;
  }
};

// Runs fn and expects an llm::Error whose message starts with `prefix` and contains `part`.
template <class Fn>
void expect_error(Fn&& fn, const std::string& prefix, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one starting with '" << prefix << "' containing '" << part << "'";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(prefix, 0), 0u) << m;
    EXPECT_NE(m.find(part), std::string::npos) << m;
  }
}

inline const std::vector<DType>& float_dtypes() {
  static const std::vector<DType> all = {DType::F32, DType::F16, DType::BF16};
  return all;
}

}  // namespace llm::test
