// CUDA graphs under the emulator: stream capture records the work pushed into a stream (kernel
// launches, device-to-device copies, memsets, cuBLASLt matmuls) instead of running it, and a
// launched graph runs the recorded work in order. Each recorded item holds copies of its
// arguments taken at capture time, as a real graph's nodes hold their parameters, and reads
// device memory only when it runs: a graph replays the same pointers and sizes every time, so
// anything that changes between replays must live in device memory.
//
// The rules a GPU enforces during capture are enforced here too, so capture mistakes fail in CI:
//   - stream synchronisation/query of a capturing stream, host<->device copies, allocations in
//     it (cudaMallocAsync: memory nodes are not emulated), events on it: cudaErrorStreamCaptureUnsupported
//     and the capture is invalidated (cudaStreamEndCapture then returns cudaErrorStreamCaptureInvalidated
//     and no graph);
//   - "potentially unsafe" calls (cudaMalloc, cudaFree, cudaMemcpy, cudaMemset, cudaDeviceSynchronize,
//     pinned allocations) from a thread with a Global or ThreadLocal capture, or from any thread
//     while a Global capture runs: the same error, and those captures are invalidated;
//   - a capture not in Relaxed mode must end on the thread that began it.
#pragma once

#include <functional>
#include <memory>

#include "types.h"

namespace llm::emu {

// ---- the runtime API --------------------------------------------------------------------------
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
// CUDA 12's signature (flags; CUDA 11's took an error node and a log buffer). Flags must be 0.
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);

// ---- hooks for the rest of the emulator ---------------------------------------------------------
// Work a stream runs, given the stream it runs on (the graph's launch stream on replay).
using StreamWork = std::function<void(cudaStream_t)>;

// Whether `stream` is being captured (also when the capture was invalidated: its work is not run).
bool stream_capturing(cudaStream_t stream);
// While `stream` is captured: records `work` (or, when the capture is invalidated, drops it and
// sets cudaErrorStreamCaptureInvalidated) and returns true. Otherwise returns false; the caller
// runs the work itself.
bool capture_work(cudaStream_t stream, StreamWork work);
// Stream work that cannot be captured, called for a capturing stream: invalidates its capture
// and returns cudaErrorStreamCaptureUnsupported (also as the last error).
cudaError_t capture_refuse(cudaStream_t stream);
// A potentially unsafe call (see above): cudaErrorStreamCaptureUnsupported when capture rules
// forbid it on this thread now (invalidating the captures concerned), else cudaSuccess.
cudaError_t capture_check_unsafe_call();

}  // namespace llm::emu
