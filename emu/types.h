// CUDA's built-in vector types, launch dimensions and runtime enums for the emulator, with the
// numeric values and alignments of the real headers (an aligned float4 load must be legal in
// emulation exactly when it is on a GPU; UBSan reports the misaligned ones).
#pragma once

#include <cstddef>
#include <cstdint>

namespace llm::emu {

#define LLM_EMU_VECTOR_TYPES(T, name, a2, a4)                                   \
  struct alignas(a2) name##2 {                                                  \
    T x, y;                                                                     \
  };                                                                            \
  struct name##3 {                                                              \
    T x, y, z;                                                                  \
  };                                                                            \
  struct alignas(a4) name##4 {                                                  \
    T x, y, z, w;                                                               \
  };                                                                            \
  constexpr name##2 make_##name##2(T x, T y) { return name##2 {x, y}; }         \
  constexpr name##3 make_##name##3(T x, T y, T z) { return name##3 {x, y, z}; } \
  constexpr name##4 make_##name##4(T x, T y, T z, T w) { return name##4 {x, y, z, w}; }

LLM_EMU_VECTOR_TYPES(float, float, 8, 16)
LLM_EMU_VECTOR_TYPES(int, int, 8, 16)
LLM_EMU_VECTOR_TYPES(unsigned int, uint, 8, 16)
LLM_EMU_VECTOR_TYPES(short, short, 4, 8)
LLM_EMU_VECTOR_TYPES(unsigned short, ushort, 4, 8)
LLM_EMU_VECTOR_TYPES(signed char, char, 2, 4)
LLM_EMU_VECTOR_TYPES(unsigned char, uchar, 2, 4)
LLM_EMU_VECTOR_TYPES(long long, longlong, 16, 16)
LLM_EMU_VECTOR_TYPES(unsigned long long, ulonglong, 16, 16)
LLM_EMU_VECTOR_TYPES(double, double, 16, 16)
#undef LLM_EMU_VECTOR_TYPES

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}  // NOLINT: implicit, as in CUDA
  constexpr operator uint3() const { return uint3{x, y, z}; }
};

enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidSymbol = 13,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorInsufficientDriver = 35,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalState = 401,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorNotSupported = 801,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureWrongThread = 908,
  cudaErrorUnknown = 999,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind : int {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute : int {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

enum cudaDeviceAttr : int {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrClockRate = 13,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrL2CacheSize = 38,
  cudaDevAttrMaxThreadsPerMultiProcessor = 39,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaDataType_t : int {
  CUDA_R_32F = 0,
  CUDA_R_64F = 1,
  CUDA_R_16F = 2,
  CUDA_R_8I = 3,
  CUDA_R_32I = 10,
  CUDA_R_16BF = 14,
};
using cudaDataType = cudaDataType_t;

// Streams and events are opaque handles, as in CUDA; the emulator runs everything synchronously.
struct CUstream_st;
struct CUevent_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;
inline constexpr unsigned int cudaStreamDefault = 0x00;
inline constexpr unsigned int cudaStreamNonBlocking = 0x01;
inline constexpr unsigned int cudaEventDefault = 0x00;
inline constexpr unsigned int cudaEventBlockingSync = 0x01;
inline constexpr unsigned int cudaEventDisableTiming = 0x02;
inline constexpr unsigned int cudaHostAllocDefault = 0x00;
// Graphs (stream capture): opaque handles and the capture enums of driver_types.h.
struct CUgraph_st;
struct CUgraphExec_st;
using cudaGraph_t = CUgraph_st*;
using cudaGraphExec_t = CUgraphExec_st*;
enum cudaStreamCaptureMode : int {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus : int {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};
#define cudaStreamLegacy (reinterpret_cast<::llm::emu::cudaStream_t>(0x1))
#define cudaStreamPerThread (reinterpret_cast<::llm::emu::cudaStream_t>(0x2))

// The fields of cudaDeviceProp that exist in every CUDA from 12.1 on (13.0 removed clockRate
// and friends, so they are absent here too: code using them would not build for CUDA 13).
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  size_t memPitch;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  size_t totalConstMem;
  int major;
  int minor;
  int multiProcessorCount;
  int concurrentKernels;
  int pciBusID;
  int pciDeviceID;
  int pciDomainID;
  int unifiedAddressing;
  int memoryBusWidth;
  int l2CacheSize;
  int maxThreadsPerMultiProcessor;
  size_t sharedMemPerMultiprocessor;
  int regsPerMultiprocessor;
  int managedMemory;
  size_t sharedMemPerBlockOptin;
  int maxBlocksPerMultiProcessor;
  size_t reservedSharedMemPerBlock;
  int memoryPoolsSupported;
};

}  // namespace llm::emu
