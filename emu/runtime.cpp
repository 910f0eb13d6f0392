#include "runtime.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <set>

#include "graph.h"
#include "memory.h"
#include "profile.h"

namespace llm::emu {

// Opaque handle types: the emulator only needs to know which handles are alive.
struct CUstream_st {
  unsigned int flags = 0;
};
struct CUevent_st {
  unsigned int flags = 0;
  bool recorded = false;
  std::chrono::steady_clock::time_point when;
};

namespace {

thread_local cudaError_t t_last_error = cudaSuccess;
thread_local int t_device = 0;

struct Handles {
  std::mutex m;
  std::set<const CUstream_st*> streams;
  std::set<const CUevent_st*> events;
};

Handles& handles() {
  static Handles h;
  return h;
}

bool event_is_valid(cudaEvent_t e) {
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.m);
  return h.events.count(e) != 0;
}

// Remembers an error for cudaGetLastError and returns it, as the runtime does.
cudaError_t report(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

size_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{16} << 30;
}

// Checks the pointers of a copy against the registry of device allocations.
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return cudaErrorInvalidValue;
  const bool dst_dev = is_device_pointer(dst), src_dev = is_device_pointer(src);
  switch (kind) {
    case cudaMemcpyHostToHost: return dst_dev || src_dev ? cudaErrorInvalidValue : cudaSuccess;
    case cudaMemcpyHostToDevice: return is_device_range(dst, bytes) && !src_dev ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDeviceToHost: return is_device_range(src, bytes) && !dst_dev ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDeviceToDevice:
      return is_device_range(dst, bytes) && is_device_range(src, bytes) ? cudaSuccess : cudaErrorInvalidValue;
    case cudaMemcpyDefault:
      if (dst_dev && !is_device_range(dst, bytes)) return cudaErrorInvalidValue;
      if (src_dev && !is_device_range(src, bytes)) return cudaErrorInvalidValue;
      return cudaSuccess;
  }
  return cudaErrorInvalidMemcpyDirection;
}

cudaError_t copy_now(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (const cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return report(e);
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t copy2d_now(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                       cudaMemcpyKind kind) {
  if (width > dpitch || width > spitch) return report(cudaErrorInvalidValue);
  if (height == 0 || width == 0) return cudaSuccess;
  // The whole strided extent must lie in one allocation on the device side(s).
  const size_t dext = dpitch * (height - 1) + width, sext = spitch * (height - 1) + width;
  if (const cudaError_t e = check_copy(dst, src, 1, kind); e != cudaSuccess) return report(e);
  if ((kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice) && !is_device_range(dst, dext)) {
    return report(cudaErrorInvalidValue);
  }
  if ((kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice) && !is_device_range(src, sext)) {
    return report(cudaErrorInvalidValue);
  }
  for (size_t r = 0; r < height; ++r) {
    std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  }
  return cudaSuccess;
}

cudaError_t memset_now(void* ptr, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!is_device_range(ptr, bytes)) return report(cudaErrorInvalidValue);
  std::memset(ptr, value, bytes);
  return cudaSuccess;
}

cudaError_t malloc_now(void** ptr, size_t bytes, const std::source_location& where) {
  if (!ptr) return report(cudaErrorInvalidValue);
  if (bytes == 0) {
    *ptr = nullptr;
    return cudaSuccess;
  }
  if (bytes > physical_memory()) return report(cudaErrorMemoryAllocation);
  *ptr = device_alloc(bytes, where);
  return *ptr ? cudaSuccess : report(cudaErrorMemoryAllocation);
}

cudaError_t free_now(void* ptr) {
  if (!ptr) return cudaSuccess;
  return device_free(ptr) ? cudaSuccess : report(cudaErrorInvalidValue);
}

// A device-to-device copy (the only kind a graph may hold here: host memory in graph nodes is
// not emulated) is checked at capture time and recorded.
bool device_to_device(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return kind == cudaMemcpyDeviceToDevice ||
         (kind == cudaMemcpyDefault && (bytes == 0 || (is_device_pointer(dst) && is_device_pointer(src))));
}

}  // namespace

void set_last_error(cudaError_t e) { report(e); }

bool stream_is_valid(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.m);
  return h.streams.count(s) != 0;
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() { return t_last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidSymbol: return "cudaErrorInvalidSymbol";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
    case cudaErrorUnknown: return "cudaErrorUnknown";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return cudaGetErrorName(e);
  }
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return report(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return report(cudaErrorInvalidDevice);
  t_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (!device) return report(cudaErrorInvalidValue);
  *device = t_device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!prop) return report(cudaErrorInvalidValue);
  if (device != 0) return report(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  const DeviceProfile& profile = device_profile();
  std::strncpy(prop->name, profile.name, sizeof prop->name - 1);
  prop->totalGlobalMem = physical_memory();
  prop->sharedMemPerBlock = 48 * 1024;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->memPitch = 0x7fffffff;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->totalConstMem = 65536;
  prop->major = profile.sm / 10;
  prop->minor = profile.sm % 10;
  prop->multiProcessorCount = static_cast<int>(emu_settings().worker_threads);
  prop->concurrentKernels = 1;
  prop->unifiedAddressing = 1;
  prop->memoryBusWidth = profile.bus_width_bits;
  prop->l2CacheSize = profile.l2_bytes;
  prop->maxThreadsPerMultiProcessor = profile.threads_per_sm;
  prop->sharedMemPerMultiprocessor = static_cast<size_t>(profile.smem_per_sm);
  prop->regsPerMultiprocessor = 65536;
  prop->sharedMemPerBlockOptin = static_cast<size_t>(profile.smem_optin_per_block);
  prop->maxBlocksPerMultiProcessor = profile.blocks_per_sm;
  prop->reservedSharedMemPerBlock = static_cast<size_t>(profile.reserved_smem);
  prop->memoryPoolsSupported = 1;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (!value) return report(cudaErrorInvalidValue);
  cudaDeviceProp p;
  if (const cudaError_t e = cudaGetDeviceProperties(&p, device); e != cudaSuccess) return e;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(p.sharedMemPerBlock); break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrClockRate: *value = device_profile().clock_khz; break;  // kHz, the boost clock
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrL2CacheSize: *value = p.l2CacheSize; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = p.maxThreadsPerMultiProcessor; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(p.sharedMemPerBlockOptin); break;
    default: return report(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

int max_active_blocks_per_sm(int block_size, size_t dynamic_smem) {
  const DeviceProfile& p = device_profile();
  int n = p.threads_per_sm / block_size;
  if (dynamic_smem > 0) {
    const size_t per_block = dynamic_smem + static_cast<size_t>(p.reserved_smem);
    n = std::min<int>(n, static_cast<int>(static_cast<size_t>(p.smem_per_sm) / per_block));
  }
  return std::min(n, p.blocks_per_sm);
}

cudaError_t cudaDeviceSynchronize() { return capture_check_unsafe_call(); }
cudaError_t cudaDeviceReset() { return cudaSuccess; }

cudaError_t cudaDriverGetVersion(int* version) {
  if (!version) return report(cudaErrorInvalidValue);
  *version = 12010;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) {
  if (!version) return report(cudaErrorInvalidValue);
  *version = 12010;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (!free_bytes || !total_bytes) return report(cudaErrorInvalidValue);
  *total_bytes = physical_memory();
  const size_t used = device_bytes_in_use();
  *free_bytes = used < *total_bytes ? *total_bytes - used : 0;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t bytes, std::source_location where) {
  if (const cudaError_t e = capture_check_unsafe_call(); e != cudaSuccess) return e;
  return malloc_now(ptr, bytes, where);
}

cudaError_t cudaFree(void* ptr) {
  if (const cudaError_t e = capture_check_unsafe_call(); e != cudaSuccess) return e;
  return free_now(ptr);
}

cudaError_t cudaMallocAsync(void** ptr, size_t bytes, cudaStream_t stream, std::source_location where) {
  if (!stream_is_valid(stream)) return report(cudaErrorInvalidResourceHandle);
  if (stream_capturing(stream)) return capture_refuse(stream);  // memory nodes are not emulated
  return malloc_now(ptr, bytes, where);
}

cudaError_t cudaFreeAsync(void* ptr, cudaStream_t stream) {
  if (!stream_is_valid(stream)) return report(cudaErrorInvalidResourceHandle);
  if (stream_capturing(stream)) return capture_refuse(stream);
  return free_now(ptr);
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  if (!ptr) return report(cudaErrorInvalidValue);
  if (const cudaError_t e = capture_check_unsafe_call(); e != cudaSuccess) return e;
  *ptr = pinned_alloc(bytes);
  return *ptr ? cudaSuccess : report(cudaErrorMemoryAllocation);
}

cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned int flags) {
  (void)flags;
  return cudaMallocHost(ptr, bytes);
}

cudaError_t cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  if (const cudaError_t e = capture_check_unsafe_call(); e != cudaSuccess) return e;
  return pinned_free(ptr) ? cudaSuccess : report(cudaErrorInvalidValue);
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (const cudaError_t e = capture_check_unsafe_call(); e != cudaSuccess) return e;
  return copy_now(dst, src, bytes, kind);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (!stream_is_valid(stream)) return report(cudaErrorInvalidResourceHandle);
  if (stream_capturing(stream)) {
    if (!device_to_device(dst, src, bytes, kind)) return capture_refuse(stream);
    if (const cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return report(e);
    capture_work(stream, [=](cudaStream_t) { copy_now(dst, src, bytes, kind); });
    return cudaSuccess;
  }
  return copy_now(dst, src, bytes, kind);
}

cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
  if (const cudaError_t e = capture_check_unsafe_call(); e != cudaSuccess) return e;
  return copy2d_now(dst, dpitch, src, spitch, width, height, kind);
}

cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream) {
  if (!stream_is_valid(stream)) return report(cudaErrorInvalidResourceHandle);
  if (stream_capturing(stream)) {
    if (!device_to_device(dst, src, width, kind)) return capture_refuse(stream);
    capture_work(stream, [=](cudaStream_t) { copy2d_now(dst, dpitch, src, spitch, width, height, kind); });
    return cudaSuccess;
  }
  return copy2d_now(dst, dpitch, src, spitch, width, height, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  if (const cudaError_t e = capture_check_unsafe_call(); e != cudaSuccess) return e;
  return memset_now(ptr, value, bytes);
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  if (!stream_is_valid(stream)) return report(cudaErrorInvalidResourceHandle);
  if (stream_capturing(stream)) {
    if (bytes > 0 && !is_device_range(ptr, bytes)) return report(cudaErrorInvalidValue);
    capture_work(stream, [=](cudaStream_t) { memset_now(ptr, value, bytes); });
    return cudaSuccess;
  }
  return memset_now(ptr, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, cudaStreamDefault); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (!stream) return report(cudaErrorInvalidValue);
  auto* s = new CUstream_st{flags};
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.m);
  h.streams.insert(s);
  *stream = s;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream_capturing(stream)) return capture_refuse(stream);  // end the capture first
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.m);
  if (h.streams.erase(stream) == 0) return report(cudaErrorInvalidResourceHandle);
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (!stream_is_valid(stream)) return report(cudaErrorInvalidResourceHandle);
  return stream_capturing(stream) ? capture_refuse(stream) : cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) { return cudaStreamSynchronize(stream); }

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  (void)flags;
  if (!stream_is_valid(stream) || !event_is_valid(event)) return report(cudaErrorInvalidResourceHandle);
  return stream_capturing(stream) ? capture_refuse(stream) : cudaSuccess;  // cross-stream capture: not emulated
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (!event) return report(cudaErrorInvalidValue);
  auto* e = new CUevent_st{};
  e->flags = flags;
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.m);
  h.events.insert(e);
  *event = e;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Handles& h = handles();
  std::lock_guard<std::mutex> lock(h.m);
  if (h.events.erase(event) == 0) return report(cudaErrorInvalidResourceHandle);
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event_is_valid(event) || !stream_is_valid(stream)) return report(cudaErrorInvalidResourceHandle);
  if (stream_capturing(stream)) return capture_refuse(stream);  // event nodes are not emulated
  event->recorded = true;
  event->when = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event_is_valid(event) ? cudaSuccess : report(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return report(cudaErrorInvalidValue);
  if (!event_is_valid(start) || !event_is_valid(end) || !start->recorded || !end->recorded ||
      (start->flags & cudaEventDisableTiming) || (end->flags & cudaEventDisableTiming)) {
    return report(cudaErrorInvalidResourceHandle);
  }
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

}  // namespace llm::emu
