#include "graph.h"

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "runtime.h"

namespace llm::emu {

// A graph is its recorded work, in stream order (a captured single stream is a chain of nodes).
struct CUgraph_st {
  std::vector<StreamWork> nodes;
};
// Instantiation copies the nodes: the executable graph does not depend on its source graph.
struct CUgraphExec_st {
  std::shared_ptr<const std::vector<StreamWork>> nodes;
};

namespace {

struct Capture {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id thread;
  bool invalidated = false;
  std::unique_ptr<CUgraph_st> graph;
};

struct Registry {
  std::mutex m;
  std::map<cudaStream_t, Capture> captures;
  std::set<const CUgraph_st*> graphs;
  std::set<const CUgraphExec_st*> execs;
};

Registry& registry() {
  static Registry r;
  return r;
}

// Number of captures in progress: launches check it without taking the lock.
std::atomic<int> g_captures{0};

cudaError_t fail(cudaError_t e) {
  set_last_error(e);
  return e;
}

}  // namespace

bool stream_capturing(cudaStream_t stream) {
  if (g_captures.load(std::memory_order_acquire) == 0) return false;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  return r.captures.count(stream) != 0;
}

bool capture_work(cudaStream_t stream, StreamWork work) {
  if (g_captures.load(std::memory_order_acquire) == 0) return false;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  const auto it = r.captures.find(stream);
  if (it == r.captures.end()) return false;
  if (it->second.invalidated) {
    set_last_error(cudaErrorStreamCaptureInvalidated);
  } else {
    it->second.graph->nodes.push_back(std::move(work));
  }
  return true;
}

cudaError_t capture_refuse(cudaStream_t stream) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  if (const auto it = r.captures.find(stream); it != r.captures.end()) it->second.invalidated = true;
  return fail(cudaErrorStreamCaptureUnsupported);
}

cudaError_t capture_check_unsafe_call() {
  if (g_captures.load(std::memory_order_acquire) == 0) return cudaSuccess;
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  const std::thread::id self = std::this_thread::get_id();
  bool forbidden = false;
  for (auto& [stream, c] : r.captures) {
    // cudaThreadExchangeStreamCaptureMode's rule: this thread's own non-relaxed captures, and
    // every thread's global ones, forbid unsafe calls here.
    const bool concerned =
        c.mode == cudaStreamCaptureModeGlobal || (c.mode == cudaStreamCaptureModeThreadLocal && c.thread == self);
    if (concerned) {
      c.invalidated = true;
      forbidden = true;
    }
  }
  return forbidden ? fail(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  // The legacy default stream cannot be captured.
  if (stream == nullptr || stream == cudaStreamLegacy) return fail(cudaErrorStreamCaptureUnsupported);
  if (!stream_is_valid(stream)) return fail(cudaErrorInvalidResourceHandle);
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed) {
    return fail(cudaErrorInvalidValue);
  }
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  if (r.captures.count(stream) != 0) return fail(cudaErrorIllegalState);
  Capture c;
  c.mode = mode;
  c.thread = std::this_thread::get_id();
  c.graph = std::make_unique<CUgraph_st>();
  r.captures.emplace(stream, std::move(c));
  g_captures.fetch_add(1, std::memory_order_release);
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (!graph) return fail(cudaErrorInvalidValue);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  const auto it = r.captures.find(stream);
  if (it == r.captures.end()) return fail(cudaErrorIllegalState);
  if (it->second.mode != cudaStreamCaptureModeRelaxed && it->second.thread != std::this_thread::get_id()) {
    return fail(cudaErrorStreamCaptureWrongThread);
  }
  Capture c = std::move(it->second);
  r.captures.erase(it);
  g_captures.fetch_sub(1, std::memory_order_release);
  if (c.invalidated) {
    *graph = nullptr;
    return fail(cudaErrorStreamCaptureInvalidated);
  }
  *graph = c.graph.release();
  r.graphs.insert(*graph);
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (!status) return fail(cudaErrorInvalidValue);
  if (!stream_is_valid(stream)) return fail(cudaErrorInvalidResourceHandle);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  const auto it = r.captures.find(stream);
  *status = it == r.captures.end()   ? cudaStreamCaptureStatusNone
            : it->second.invalidated ? cudaStreamCaptureStatusInvalidated
                                     : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags) {
  if (!exec || flags != 0) return fail(cudaErrorInvalidValue);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  if (r.graphs.count(graph) == 0) return fail(cudaErrorInvalidValue);
  auto* e = new CUgraphExec_st{std::make_shared<const std::vector<StreamWork>>(graph->nodes)};
  r.execs.insert(e);
  *exec = e;
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!stream_is_valid(stream)) return fail(cudaErrorInvalidResourceHandle);
  std::shared_ptr<const std::vector<StreamWork>> nodes;
  {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.m);
    if (r.execs.count(exec) == 0) return fail(cudaErrorInvalidValue);
    nodes = exec->nodes;
  }
  // Launched into a capturing stream, the graph becomes one node of the new graph.
  const auto replay = [nodes](cudaStream_t s) {
    for (const StreamWork& w : *nodes) w(s);
  };
  if (!capture_work(stream, replay)) replay(stream);
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  if (r.execs.erase(exec) == 0) return fail(cudaErrorInvalidValue);
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.m);
  if (r.graphs.erase(graph) == 0) return fail(cudaErrorInvalidValue);
  delete graph;
  return cudaSuccess;
}

}  // namespace llm::emu
