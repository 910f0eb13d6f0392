// Device profiles (EmuSettings::sm, LLM_EMU_PROFILE): what each reports and the limits each
// enforces, checked against the published numbers of an A100, a T4 and a V100. Emulator only.
#include <string>

#include "cuda_test_util.h"
#include "harness_kernels.cuh"
#include "test_util.h"

namespace llm::test {
namespace {

namespace harness = ::llm::LLM_CUDA_NS::harness;

struct Expected {
  int sm;
  size_t smem_optin;
  int threads_per_sm;
};

// A kernel to hang the shared-memory opt-in on.
__global__ void smem_kernel(float* out) {
  LLM_DYNAMIC_SHARED(float, s);
  s[threadIdx.x] = 1.0f;
  out[threadIdx.x] = s[threadIdx.x];
}

TEST(CudaEmuProfile, EachProfileReportsItsCardAndEnforcesItsLimits) {
  for (const Expected& e : {Expected{80, 166912, 2048}, Expected{75, 65536, 1024}, Expected{70, 98304, 2048}}) {
    const ScopedEmuSettings profile([&](emu::EmuSettings& s) { s.sm = e.sm; });
    SCOPED_TRACE(cat("sm_", e.sm));
    cudaDeviceProp p;
    ASSERT_EQ(cudaGetDeviceProperties(&p, 0), cudaSuccess);
    EXPECT_EQ(p.major * 10 + p.minor, e.sm);
    EXPECT_EQ(cuda_device_sm(), e.sm);
    EXPECT_EQ(p.sharedMemPerBlockOptin, e.smem_optin);
    EXPECT_EQ(p.maxThreadsPerMultiProcessor, e.threads_per_sm);
    EXPECT_NE(std::string(p.name).find(cat("sm_", e.sm)), std::string::npos) << p.name;
    int attr = 0;
    ASSERT_EQ(cudaDeviceGetAttribute(&attr, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0), cudaSuccess);
    EXPECT_EQ(static_cast<size_t>(attr), e.smem_optin);

    // The opt-in: up to the card's maximum, not a byte more.
    const int most = static_cast<int>(e.smem_optin);
    EXPECT_EQ(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, most + 1),
              cudaErrorInvalidValue);
    ASSERT_EQ(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, most), cudaSuccess);
    DeviceBuffer<float> out(32);
    LLM_LAUNCH(smem_kernel, dim3(1), dim3(32), static_cast<size_t>(most), nullptr, out.get());
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    LLM_LAUNCH(smem_kernel, dim3(1), dim3(32), static_cast<size_t>(most) + 16, nullptr, out.get());
    EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);

    // Occupancy follows threads per SM: 1024-thread blocks fit once on a T4, twice elsewhere.
    int blocks = 0;
    ASSERT_EQ(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, smem_kernel, 1024, 0), cudaSuccess);
    EXPECT_EQ(blocks, e.threads_per_sm / 1024);
  }
}

TEST(CudaEmuProfile, AnOptInFromABiggerCardDoesNotCarryOver) {
  // Raised on the A100 profile, launched on the T4 one: more than a T4 has is refused.
  {
    const ScopedEmuSettings ampere([](emu::EmuSettings& s) { s.sm = 80; });
    ASSERT_EQ(cudaFuncSetAttribute(smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024), cudaSuccess);
  }
  const ScopedEmuSettings turing([](emu::EmuSettings& s) { s.sm = 75; });
  DeviceBuffer<float> out(32);
  LLM_LAUNCH(smem_kernel, dim3(1), dim3(32), 100 * 1024, nullptr, out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
}

TEST(CudaEmuProfile, ProfileNamesParseAndBadOnesAreRefusedNamingTheVariable) {
  EXPECT_EQ(emu::parse_emu_profile("7.5"), 75);
  EXPECT_EQ(emu::parse_emu_profile("70"), 70);
  EXPECT_EQ(emu::parse_emu_profile("8.0"), 80);
  for (const char* bad : {"", "8.6", "sm_75", "9.0"}) {
    try {
      (void)emu::parse_emu_profile(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(cat("LLM_EMU_PROFILE=", bad)), std::string::npos) << e.what();
    }
  }
}

TEST(CudaEmuProfile, VoltaHasNoTensorCoreInstructionTheKernelsUse) {
  const ScopedEmuSettings volta([](emu::EmuSettings& s) { s.sm = 70; });
  DeviceBuffer<unsigned> a(128), b(64);
  DeviceBuffer<float> c(128), d(128);
  a.zero();
  b.zero();
  c.zero();
  try {
    harness::mma_fragments(a.get(), b.get(), c.get(), d.get(), harness::MmaShape::M16N8K16F16);
    ADD_FAILURE() << "an f16 mma ran on the sm_70 profile";
  } catch (const emu::KernelError& e) {
    EXPECT_NE(std::string(e.what()).find("mma.sync.m16n8k8 (f16) needs sm_75"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace llm::test
