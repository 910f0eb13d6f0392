// The tensor-core fragment layouts checked against an independent transcription of the PTX ISA
// ("Matrix Fragments for mma.m16n8k8" and "... mma.m16n8k16 with floating point type", 16-bit
// A/B types, f32 C/D): the host builds every lane's registers from the formulas below, one mma
// runs on the device (or the emulator), and D is compared with a plain float64 product. The
// kernels' own layout table (kernels/cuda_compat.cuh) and the emulator's shuffled products are
// not used to build or read the fragments, so a mistake shared by them shows here.
// Shared with the GPU build (test_cuda_gpu); shapes the device cannot run are skipped.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "harness_kernels.cuh"
#include "llm/dtype.h"
#include "test_util.h"

namespace llm::test {
namespace {

namespace harness = ::llm::LLM_CUDA_NS::harness;
using harness::MmaShape;

// ---- PTX ISA, transcribed: groupID = %laneid >> 2, threadID_in_group = %laneid % 4 -------------
struct Pos {
  int row, col;
};
int group_id(int lane) { return lane >> 2; }
int thread_in_group(int lane) { return lane % 4; }

// m16n8k8, .f16: A holds a0..a3 (two .f16x2 registers), B b0..b1 (one), C/D c0..c3.
Pos k8_a(int lane, int i) {
  const int row = (i < 2) ? group_id(lane) : group_id(lane) + 8;  // a0,a1: groupID; a2,a3: groupID + 8
  const int col = thread_in_group(lane) * 2 + (i & 0x1);
  return {row, col};
}
Pos k8_b(int lane, int i) { return {thread_in_group(lane) * 2 + i, group_id(lane)}; }

// m16n8k16, .f16 / .bf16: A holds a0..a7 (four registers), B b0..b3 (two), C/D c0..c3.
Pos k16_a(int lane, int i) {
  const int row = ((0 <= i && i < 2) || (4 <= i && i < 6)) ? group_id(lane) : group_id(lane) + 8;
  const int col = (i < 4) ? thread_in_group(lane) * 2 + (i & 0x1) : thread_in_group(lane) * 2 + (i & 0x1) + 8;
  return {row, col};
}
Pos k16_b(int lane, int i) {
  const int row = (i < 2) ? thread_in_group(lane) * 2 + (i & 0x1) : thread_in_group(lane) * 2 + (i & 0x1) + 8;
  return {row, group_id(lane)};
}

// C and D of both shapes (f32): c0..c3.
Pos cd(int lane, int i) {
  const int row = (i < 2) ? group_id(lane) : group_id(lane) + 8;
  return {row, thread_in_group(lane) * 2 + (i & 0x1)};
}

// Element i of a fragment of 16-bit values sits in register i / 2, the even one in the low half.
void put16(std::vector<unsigned>& regs, int lane, int regs_per_lane, int i, uint16_t bits) {
  unsigned& r = regs[static_cast<size_t>(lane * regs_per_lane + i / 2)];
  r |= static_cast<unsigned>(bits) << (i % 2 == 0 ? 0 : 16);
}

struct Shape {
  MmaShape id;
  const char* name;
  int k;
  bool bf16;
  int min_sm;
};

void check_shape(const Shape& s, std::mt19937_64& g) {
  const int M = 16, N = 8, K = s.k;
  // A [M, K], B [K, N], C [M, N]: fresh random values, A and B rounded to the 16-bit type.
  std::vector<float> A = uniform(g, static_cast<size_t>(M * K), -2, 2),
                     B = uniform(g, static_cast<size_t>(K * N), -2, 2);
  const std::vector<float> C = uniform(g, static_cast<size_t>(M * N), -2, 2);
  auto bits = [&](float v) { return s.bf16 ? f32_to_bf16_bits(v) : f32_to_f16_bits(v); };
  for (auto& v : A) v = s.bf16 ? round_to<bf16>(v) : round_to<f16>(v);
  for (auto& v : B) v = s.bf16 ? round_to<bf16>(v) : round_to<f16>(v);

  std::vector<unsigned> ra(32 * 4, 0), rb(32 * 2, 0);
  std::vector<float> rc(32 * 4);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < K / 2; ++i) {  // 4 A elements for k = 8, 8 for k = 16
      const Pos p = K == 8 ? k8_a(lane, i) : k16_a(lane, i);
      put16(ra, lane, 4, i, bits(A[static_cast<size_t>(p.row * K + p.col)]));
    }
    for (int i = 0; i < K / 4; ++i) {  // 2 B elements for k = 8, 4 for k = 16
      const Pos p = K == 8 ? k8_b(lane, i) : k16_b(lane, i);
      put16(rb, lane, 2, i, bits(B[static_cast<size_t>(p.row * N + p.col)]));
    }
    for (int i = 0; i < 4; ++i) {
      const Pos p = cd(lane, i);
      rc[static_cast<size_t>(lane * 4 + i)] = C[static_cast<size_t>(p.row * N + p.col)];
    }
  }
  DeviceBuffer<unsigned> da(ra), db(rb);
  DeviceBuffer<float> dc(rc), dd(32 * 4);
  harness::mma_fragments(da.get(), db.get(), dc.get(), dd.get(), s.id);
  const std::vector<float> rd = dd.download();

  int seen = 0;
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 4; ++i) {
      const Pos p = cd(lane, i);
      double want = C[static_cast<size_t>(p.row * N + p.col)], mass = std::abs(want);
      for (int k = 0; k < K; ++k) {
        const double prod = double(A[static_cast<size_t>(p.row * K + k)]) * B[static_cast<size_t>(k * N + p.col)];
        want += prod;
        mass += std::abs(prod);
      }
      EXPECT_NEAR(rd[static_cast<size_t>(lane * 4 + i)], want, 1e-5 * mass + 1e-6)
          << s.name << " lane " << lane << " d" << i << " = D[" << p.row << "][" << p.col << "]";
      ++seen;
    }
  }
  EXPECT_EQ(seen, M * N);  // C/D's formulas cover the 16x8 tile once
}

const Shape kShapes[] = {
    {MmaShape::M16N8K8F16, "m16n8k8 f16", 8, false, 75},
    {MmaShape::M16N8K16F16, "m16n8k16 f16", 16, false, 75},
    {MmaShape::M16N8K16BF16, "m16n8k16 bf16", 16, true, 80},
};

TEST(CudaMmaLayout, FragmentsFromThePtxFormulasGiveThePlainProduct) {
  LLM_REQUIRE_CUDA_DEVICE();
  auto g = rng();
  const int sm = cuda_device_sm();
  for (const Shape& s : kShapes) {
    if (sm < s.min_sm) {
      std::printf("[  SKIPPED ] %s: the device is sm_%d\n", s.name, sm);
      continue;
    }
    for (int rep = 0; rep < 3; ++rep) check_shape(s, g);
  }
}

#if LLM_CUDA_EMULATED
// The emulator's sm_75 path: m16n8k16 f16 as two m16n8k8, as a T4 runs it; and the bf16 one
// refused there, as a T4 would trap.
TEST(CudaMmaLayout, TuringProfileComposesTwoK8Products) {
  const ScopedEmuSettings turing([](emu::EmuSettings& s) { s.sm = 75; });
  auto g = rng();
  check_shape(kShapes[0], g);
  check_shape(kShapes[1], g);
  DeviceBuffer<unsigned> a(128), b(64);
  DeviceBuffer<float> c(128), d(128);
  a.zero();
  b.zero();
  c.zero();
  try {
    harness::mma_fragments(a.get(), b.get(), c.get(), d.get(), MmaShape::M16N8K16BF16);
    ADD_FAILURE() << "a bf16 mma ran on the sm_75 profile";
  } catch (const emu::KernelError& e) {
    EXPECT_NE(std::string(e.what()).find("mma.sync.m16n8k16 (bf16) needs sm_80 but the emulated device is sm_75"),
              std::string::npos)
        << e.what();
  }
}
#endif

}  // namespace
}  // namespace llm::test
