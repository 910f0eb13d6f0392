// The emulator's CUDA runtime: memory checks, error reporting, launch limits, streams and
// events, multi-dimensional grids. Emulator only (a GPU's answers differ: device count, names).
#include <gmock/gmock.h>

#include <cstring>
#include <vector>

#include "cuda_test_util.h"
#include "test_util.h"

namespace llm::test {
namespace {

using ::testing::ContainsRegex;
using ::testing::HasSubstr;

__device__ int g_device_value[4];

__global__ void coordinates_kernel(int* out) {
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  out[b * threads + t] = static_cast<int>(1000 * b + t);
}

__global__ void big_shared_kernel(float* out, int n) {
  LLM_DYNAMIC_SHARED(float, s);
  for (int i = static_cast<int>(threadIdx.x); i < n; i += static_cast<int>(blockDim.x))
    s[i] = static_cast<float>(i % 4);
  __syncthreads();
  if (threadIdx.x == 0) {
    float sum = 0;
    for (int i = 0; i < n; ++i) sum += s[i];
    out[0] = sum;
  }
}

__global__ void read_symbol_kernel(int* out) { out[threadIdx.x] = g_device_value[threadIdx.x] * 2; }

__global__ void trap_kernel() {
  if (threadIdx.x == 3) __trap();
}

__global__ void deep_stack_kernel(int* out) {
  volatile int local[8192];  // 32 KiB of the default 64 KiB fiber stack
  for (int i = 0; i < 8192; ++i) local[i] = i;
  int sum = 0;
  for (int i = 0; i < 8192; i += 1024) sum += local[i];
  out[threadIdx.x] = sum;
}

TEST(CudaEmuRuntime, CopiesRejectHostPointersAndOverruns) {
  std::vector<float> host(16, 1.0f);
  DeviceBuffer<float> dev(16);
  EXPECT_EQ(cudaMemcpy(dev.get(), host.data(), 64, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(dev.get(), host.data(), 68, cudaMemcpyHostToDevice), cudaErrorInvalidValue);  // overrun
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(host.data(), host.data() + 8, 16, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemcpy(dev.get(), host.data(), 64, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);  // swapped
  EXPECT_EQ(cudaMemcpy(dev.get() + 8, dev.get(), 32, cudaMemcpyDeviceToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(host.data(), dev.get(), 64, cudaMemcpyDefault), cudaSuccess);
  EXPECT_EQ(cudaMemset(dev.get() + 15, 0, 8), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(host.data()), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(nullptr), cudaSuccess);
  (void)cudaGetLastError();
}

TEST(CudaEmuRuntime, Copies2D) {
  std::vector<float> host(12);
  for (size_t i = 0; i < host.size(); ++i) host[i] = static_cast<float>(i);
  DeviceBuffer<float> dev(8);
  // Columns 1..2 of a 4 x 3 row-major host matrix into a dense 4 x 2 device matrix.
  ASSERT_EQ(cudaMemcpy2D(dev.get(), 2 * sizeof(float), host.data() + 1, 3 * sizeof(float), 2 * sizeof(float), 4,
                         cudaMemcpyHostToDevice),
            cudaSuccess);
  EXPECT_EQ(dev.download(), (std::vector<float>{1, 2, 4, 5, 7, 8, 10, 11}));
  EXPECT_EQ(cudaMemcpy2D(dev.get(), 2 * sizeof(float), host.data(), 3 * sizeof(float), 2 * sizeof(float), 5,
                         cudaMemcpyHostToDevice),
            cudaErrorInvalidValue);  // 5 rows do not fit
  (void)cudaGetLastError();
}

TEST(CudaEmuRuntime, DevicePropertiesAndCounts) {
  const ScopedEmuSettings ampere([](emu::EmuSettings& s) { s.sm = 80; });  // profile_test.cpp has the others
  int count = 0, device = -1;
  ASSERT_EQ(cudaGetDeviceCount(&count), cudaSuccess);
  EXPECT_EQ(count, 1);
  EXPECT_EQ(cudaSetDevice(1), cudaErrorInvalidDevice);
  EXPECT_EQ(cudaSetDevice(0), cudaSuccess);
  EXPECT_EQ(cudaGetDevice(&device), cudaSuccess);
  EXPECT_EQ(device, 0);
  cudaDeviceProp prop;
  ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
  EXPECT_EQ(prop.major, 8);
  EXPECT_EQ(prop.warpSize, 32);
  EXPECT_THAT(std::string(prop.name), HasSubstr("emulator"));
  int optin = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0), cudaSuccess);
  EXPECT_EQ(optin, static_cast<int>(prop.sharedMemPerBlockOptin));
  EXPECT_STREQ(cudaGetErrorName(cudaErrorInvalidValue), "cudaErrorInvalidValue");
  EXPECT_STREQ(cudaGetErrorString(cudaErrorInvalidValue), "invalid argument");
  (void)cudaGetLastError();
}

TEST(CudaEmuRuntime, ThreeDimensionalGridsAndBlocks) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const int threads = 24, blocks = 12;
  DeviceBuffer<int> out(static_cast<size_t>(threads * blocks));
  LLM_LAUNCH(coordinates_kernel, grid, block, 0, nullptr, out.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  const std::vector<int> got = out.download();
  for (int b = 0; b < blocks; ++b) {
    for (int t = 0; t < threads; ++t) EXPECT_EQ(got[static_cast<size_t>(b * threads + t)], 1000 * b + t);
  }
}

TEST(CudaEmuRuntime, DynamicSharedMemoryAboveDefaultLimitNeedsTheAttribute) {
  const ScopedEmuSettings ampere([](emu::EmuSettings& s) { s.sm = 80; });  // more than a T4's 64 KiB
  const int n = 20000;                                                     // 80000 bytes > 48 KiB
  DeviceBuffer<float> out(1);
  LLM_LAUNCH(big_shared_kernel, dim3(1), dim3(128), n * sizeof(float), nullptr, out.get(), n);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  ASSERT_EQ(cudaFuncSetAttribute(big_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(n * sizeof(float))),
            cudaSuccess);
  LLM_LAUNCH(big_shared_kernel, dim3(1), dim3(128), n * sizeof(float), nullptr, out.get(), n);
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(out.download()[0], 6.0f * n / 4);  // sums of small integers: exact
  EXPECT_EQ(cudaFuncSetAttribute(big_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 1 << 20),
            cudaErrorInvalidValue);
}

TEST(CudaEmuRuntime, DeviceSymbols) {
  const int values[4] = {1, 2, 3, 4};
  ASSERT_EQ(cudaMemcpyToSymbol(g_device_value, values, sizeof values), cudaSuccess);
  DeviceBuffer<int> out(4);
  LLM_LAUNCH(read_symbol_kernel, dim3(1), dim3(4), 0, nullptr, out.get());
  EXPECT_EQ(out.download(), (std::vector<int>{2, 4, 6, 8}));
}

TEST(CudaEmuRuntime, StreamsAndEvents) {
  cudaStream_t stream = nullptr;
  cudaEvent_t start = nullptr, stop = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&start), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&stop), cudaSuccess);
  DeviceBuffer<int> out(24);
  ASSERT_EQ(cudaEventRecord(start, stream), cudaSuccess);
  LLM_LAUNCH(coordinates_kernel, dim3(1), dim3(24), 0, stream, out.get());
  ASSERT_EQ(cudaEventRecord(stop, stream), cudaSuccess);
  ASSERT_EQ(cudaEventSynchronize(stop), cudaSuccess);
  float ms = -1;
  ASSERT_EQ(cudaEventElapsedTime(&ms, start, stop), cudaSuccess);
  EXPECT_GE(ms, 0.0f);
  ASSERT_EQ(cudaStreamWaitEvent(stream, stop), cudaSuccess);
  ASSERT_EQ(cudaStreamDestroy(stream), cudaSuccess);
  // A destroyed stream is an invalid handle, for launches and copies alike.
  LLM_LAUNCH(coordinates_kernel, dim3(1), dim3(24), 0, stream, out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidResourceHandle);
  EXPECT_EQ(cudaEventDestroy(start), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(stop), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(stop), cudaErrorInvalidResourceHandle);
  (void)cudaGetLastError();
}

TEST(CudaEmuRuntime, TrapStopsTheLaunchNamingTheThread) {
  const ScopedEmuSettings in_order([](emu::EmuSettings& s) { s.schedule = emu::EmuSettings::Schedule::Order; });
  try {
    LLM_LAUNCH(trap_kernel, dim3(2), dim3(8), 0, nullptr);
    FAIL() << "no error";
  } catch (const emu::KernelError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("trap_kernel"));
    EXPECT_THAT(std::string(e.what()), HasSubstr("thread (3,0,0)"));
    // The source file relative to the project (or to the build directory, when ccache rewrites
    // paths under CCACHE_BASEDIR).
    EXPECT_THAT(std::string(e.what()),
                ContainsRegex(R"(__trap\(\) at (\.\./)*tests/cuda_emu/emu_runtime_test\.cpp:[0-9]+)"));
  }
}

TEST(CudaEmuRuntime, KernelsMayUseHalfTheirFiberStack) {
  DeviceBuffer<int> out(64);
  LLM_LAUNCH(deep_stack_kernel, dim3(2), dim3(64), 0, nullptr, out.get());
  ASSERT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_EQ(out.download()[5], 28672);  // 0 + 1024 + ... + 7168
}

}  // namespace
}  // namespace llm::test
