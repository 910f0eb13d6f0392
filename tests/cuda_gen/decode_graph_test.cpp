// The decode step as a CUDA graph (under the emulator): InferenceModel's replayed steps give
// bitwise the logits of steps run op by op; Backend::decode_attention (position in device
// memory) matches the CPU's composition of rope, copy and attention at any position, eagerly and
// replayed; and the capture rules (no host reads, no allocation, recording does not run) hold.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/cuda_backend.h"
#include "cuda_ops/cuda_op_test.h"
#include "host_tensor.h"
#include "llm/arena.h"
#include "test_util.h"
#include "trained_model.h"

namespace llm::test {
namespace {

// Greedy tokens with the logits of every step, stop ids ignored.
std::vector<std::vector<float>> greedy_logits(InferenceModel& m, const std::vector<int32_t>& prompt, int n,
                                              std::vector<int32_t>* tokens) {
  std::vector<std::vector<float>> all;
  m.reset();
  std::vector<float> logits = m.forward(prompt);
  for (int i = 0; i < n; ++i) {
    const auto best = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    tokens->push_back(best);
    all.push_back(logits);
    if (i + 1 < n) logits = m.forward(std::vector<int32_t>{best});
  }
  return all;
}

class DecodeGraph : public ::testing::TestWithParam<std::pair<DType, QuantMode>> {};

// Same tokens, same bits: a replayed step runs exactly the kernels of an eager one.
TEST_P(DecodeGraph, ReplayEqualsEager) {
  const auto dir = trained_tiny_model();
  ASSERT_FALSE(dir.empty());
  InferenceOptions io;
  io.context = 96;
  io.dtype = GetParam().first;
  io.quant = GetParam().second;
  cuda_emu::CudaBackend be_graph(0), be_eager(0);
  const auto graph = InferenceModel::load(dir, be_graph, io);
  io.graphs = false;
  const auto eager = InferenceModel::load(dir, be_eager, io);
  // Two prompts: the second starts over at position 0, so the one recorded step replays at
  // positions it has already passed.
  for (const char* prompt : {"\"There are things", "\"IBM uses"}) {
    const std::vector<int32_t> ids = graph->tokenizer()->encode(prompt);
    std::vector<int32_t> tg, te;
    const auto lg = greedy_logits(*graph, ids, 24, &tg);
    const auto le = greedy_logits(*eager, ids, 24, &te);
    EXPECT_EQ(tg, te) << prompt;
    for (size_t i = 0; i < lg.size(); ++i) {
      ASSERT_EQ(0, std::memcmp(lg[i].data(), le[i].data(), lg[i].size() * sizeof(float))) << prompt << " step " << i;
    }
  }
  EXPECT_EQ(graph->graph_error(), "");
  EXPECT_GE(graph->graph_replays(), 2 * 23 - 1);  // every decode step but the very first (eager) one
  EXPECT_EQ(eager->graph_replays(), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, DecodeGraph,
                         ::testing::Values(std::pair{DType::F32, QuantMode::None},
                                           std::pair{DType::BF16, QuantMode::None},
                                           std::pair{DType::F32, QuantMode::Int4}),
                         [](const auto& i) {
                           if (i.param.second == QuantMode::Int4) return std::string("int4");
                           return std::string(dtype_name(i.param.first));
                         });

// ---- decode_attention against the CPU ---------------------------------------------------------------

struct AttnCase {
  DType dt;
  int64_t Hq, Hkv, D, P;
};

void PrintTo(const AttnCase& c, std::ostream* os) {
  *os << dtype_name(c.dt) << " Hq " << c.Hq << " Hkv " << c.Hkv << " D " << c.D << " P " << c.P;
}

class DecodeAttention : public ::testing::TestWithParam<AttnCase> {};

std::vector<float> download(cuda_emu::CudaBackend& be, const Tensor& t) {
  HostTensor h(t.dtype(), {t.numel()});
  be.download(t, h.t().data());
  return h.values();
}

// The CPU op (Backend's default: rope, copies and attention_forward at the host position) against
// the CUDA one (position read on the device, grid for the whole cache) at positions that leave
// later key splits empty; and the CUDA op recorded once, replayed at every position, bitwise
// equal to the eager one. Each call also writes row pos of the caches, as a decode step does.
TEST_P(DecodeAttention, MatchesCpuEagerAndReplayed) {
  const AttnCase c = GetParam();
  auto g = rng();
  CpuBackend cpu(2);
  cuda_emu::CudaBackend cuda(0);
  Arena dev(cuda, "test");
  const int64_t H = c.Hq + 2 * c.Hkv, half = c.D / 2;
  std::vector<float> cs(size_t(c.P * half)), sn(size_t(c.P * half));
  for (int64_t p = 0; p < c.P; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double a = double(p) * std::pow(10000.0, -2.0 * double(i) / double(c.D));
      cs[size_t(p * half + i)] = float(std::cos(a));
      sn[size_t(p * half + i)] = float(std::sin(a));
    }
  }
  const size_t cache_n = size_t(c.P * c.Hkv * c.D);
  HostTensor cos_h(DType::F32, {c.P, half}, cs), sin_h(DType::F32, {c.P, half}, sn);
  HostTensor kc_h(c.dt, {1, c.P, c.Hkv, c.D}, randn(g, cache_n)), vc_h(c.dt, {1, c.P, c.Hkv, c.D}, randn(g, cache_n));
  auto to_dev = [&](const HostTensor& h) {
    const Tensor& t = h.t();
    OwnedTensor d = t.ndim() == 2 ? dev.tensor(t.dtype(), {t.size(0), t.size(1)})
                                  : dev.tensor(t.dtype(), {t.size(0), t.size(1), t.size(2), t.size(3)});
    cuda.upload(d.t(), t.data());
    return d;
  };
  OwnedTensor cos_d = to_dev(cos_h), sin_d = to_dev(sin_h);
  OwnedTensor kc_d = to_dev(kc_h), vc_d = to_dev(vc_h);  // eager
  OwnedTensor kc_r = to_dev(kc_h), vc_r = to_dev(vc_h);  // replayed
  OwnedTensor qkv_d = dev.tensor(c.dt, {1, 1, H, c.D}), qkv_r = dev.tensor(c.dt, {1, 1, H, c.D});
  OwnedTensor out_d = dev.tensor(c.dt, {1, 1, c.Hq, c.D}), out_r = dev.tensor(c.dt, {1, 1, c.Hq, c.D});
  OwnedTensor pos_d = dev.tensor(DType::I32, {1});

  // Warm-up (sizes the workspace; its writes to row 0 are overwritten at position 0 below), then
  // the recording, which must not run anything.
  const int32_t zero = 0;
  cuda.upload(pos_d.t(), &zero);
  cuda.upload(qkv_d.t(), HostTensor(c.dt, {1, 1, H, c.D}, randn(g, size_t(H * c.D))).t().data());
  cuda.decode_attention(qkv_d.t(), cos_d.t(), sin_d.t(), kc_d.t(), vc_d.t(), pos_d.t(), 0, out_d.t());
  const std::vector<float> kc_before = download(cuda, kc_r.t());
  cuda.recorder()->begin();
  cuda.decode_attention(qkv_r.t(), cos_d.t(), sin_d.t(), kc_r.t(), vc_r.t(), pos_d.t(), 0, out_r.t());
  const std::unique_ptr<OpGraph> step = cuda.recorder()->end();
  EXPECT_EQ(download(cuda, kc_r.t()), kc_before) << "recording ran the op";
  // The backend replaces its workspace with a larger one (as a long prefill would): the graph keeps
  // the one it was recorded with (its split partials live there), and eager ops use the new one.
  (void)cuda.workspace(size_t(8) << 20);

  const double tol = c.dt == DType::F32 ? 1e-5 : 1e-2;
  for (const int64_t pos : {int64_t(0), int64_t(3), int64_t(130), c.P / 2 + 1, c.P - 1}) {
    SCOPED_TRACE(cat("position ", pos));
    const std::vector<float> q = randn(g, size_t(H * c.D));
    HostTensor qkv_h(c.dt, {1, 1, H, c.D}, q), out_h(c.dt, {1, 1, c.Hq, c.D});
    const auto p32 = static_cast<int32_t>(pos);
    HostTensor pos_h(DType::I32, {1}, std::vector<int32_t>{p32});
    cpu.decode_attention(qkv_h.t(), cos_h.t(), sin_h.t(), kc_h.t(), vc_h.t(), pos_h.t(), pos, out_h.t());
    cuda.upload(pos_d.t(), &p32);
    cuda.upload(qkv_d.t(), HostTensor(c.dt, {1, 1, H, c.D}, q).t().data());
    cuda.upload(qkv_r.t(), HostTensor(c.dt, {1, 1, H, c.D}, q).t().data());
    cuda.decode_attention(qkv_d.t(), cos_d.t(), sin_d.t(), kc_d.t(), vc_d.t(), pos_d.t(), pos, out_d.t());
    step->replay();
    const std::vector<float> out_e = download(cuda, out_d.t()), kc_e = download(cuda, kc_d.t());
    expect_near_rel(out_e, out_h.values(), tol, "out");
    expect_near_rel(download(cuda, qkv_d.t()), qkv_h.values(), tol, "qkv (roped in place)");
    expect_near_rel(kc_e, kc_h.values(), tol, "k_cache");
    expect_near_rel(download(cuda, vc_d.t()), vc_h.values(), tol, "v_cache");
    EXPECT_EQ(download(cuda, out_r.t()), out_e) << "replayed step differs from the eager one";
    EXPECT_EQ(download(cuda, kc_r.t()), kc_e);
    EXPECT_EQ(download(cuda, vc_r.t()), download(cuda, vc_d.t()));
  }
}

// Key splits of 128+ keys: the caches of 300 / 600 positions give several splits on any core
// count, so the positions above leave some of them empty.
INSTANTIATE_TEST_SUITE_P(Shapes, DecodeAttention,
                         ::testing::Values(AttnCase{DType::F32, 4, 2, 16, 300}, AttnCase{DType::BF16, 8, 1, 64, 600},
                                           AttnCase{DType::F16, 6, 2, 128, 300}),
                         [](const auto& i) { return cat(dtype_name(i.param.dt), "_D", i.param.D, "_P", i.param.P); });

// ---- capture rules ------------------------------------------------------------------------------------

// Recording runs nothing; each replay runs the recorded ops on the current memory.
TEST(CudaGraphCapture, RecordsWithoutRunningAndReplaysOnCurrentMemory) {
  cuda_emu::CudaBackend cuda(0);
  Arena dev(cuda, "test");
  OwnedTensor t = dev.tensor(DType::F32, {37});
  cuda.zero(t.t());
  cuda.recorder()->begin();
  cuda.scale(t.t(), 2.0f);
  cuda.add(t.t(), t.t(), t.t());  // t *= 4 in all
  const auto graph = cuda.recorder()->end();
  EXPECT_EQ(download(cuda, t.t()), std::vector<float>(37, 0.0f));
  cuda.fill(t.t(), 1.5f);
  graph->replay();
  EXPECT_EQ(download(cuda, t.t()), std::vector<float>(37, 6.0f));
  graph->replay();
  EXPECT_EQ(download(cuda, t.t()), std::vector<float>(37, 24.0f));
}

// Reading results on the host, allocating and nesting are refused while recording; afterwards
// the backend works as before.
TEST(CudaGraphCapture, HostReadsAndAllocationsAreRefused) {
  cuda_emu::CudaBackend cuda(0);
  Arena dev(cuda, "test");
  OwnedTensor t = dev.tensor(DType::F32, {16});
  cuda.fill(t.t(), 2.0f);
  std::vector<float> host(16);
  OpRecorder& rec = *cuda.recorder();
  rec.begin();
  EXPECT_THROW(rec.begin(), Error);
  EXPECT_THROW(cuda.upload(t.t(), host.data()), Error);
  EXPECT_THROW(cuda.download(t.t(), host.data()), Error);
  EXPECT_THROW(cuda.synchronize(), Error);
  EXPECT_THROW((void)cuda.sum(t.t()), Error);
  EXPECT_THROW((void)dev.tensor(DType::F32, {8}), Error);
  rec.abort();
  EXPECT_THROW((void)rec.end(), Error);  // nothing is being recorded
  EXPECT_EQ(cuda.sum(t.t()), 32.0);
  // A recording that the runtime invalidated ends in an error, not a graph.
  rec.begin();
  EXPECT_EQ(cudaStreamSynchronize(cuda.stream()), cudaErrorStreamCaptureUnsupported);
  EXPECT_THROW((void)rec.end(), Error);
  EXPECT_EQ(cuda.sum(t.t()), 32.0);
}

// The emulated runtime's capture rules, as a GPU applies them.
TEST(CudaGraphCapture, EmulatedRuntimeRules) {
  cudaStream_t s = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
  unsigned char* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 256), cudaSuccess);
  ASSERT_EQ(cudaMemset(p, 0, 256), cudaSuccess);
  auto byte0 = [&] {
    unsigned char b = 0xee;
    EXPECT_EQ(cudaMemcpy(&b, p, 1, cudaMemcpyDeviceToHost), cudaSuccess);
    return int(b);
  };
  cudaStreamCaptureStatus st{};
  EXPECT_EQ(cudaStreamBeginCapture(cudaStreamLegacy, cudaStreamCaptureModeGlobal), cudaErrorStreamCaptureUnsupported);

  // ThreadLocal: this thread's cudaMalloc is refused and invalidates; another thread's is fine.
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaErrorIllegalState);
  EXPECT_EQ(cudaMemsetAsync(p, 7, 256, s), cudaSuccess);
  std::thread([] {
    void* q = nullptr;
    EXPECT_EQ(cudaMalloc(&q, 64), cudaSuccess);
    EXPECT_EQ(cudaFree(q), cudaSuccess);
  }).join();
  EXPECT_EQ(cudaStreamIsCapturing(s, &st), cudaSuccess);
  EXPECT_EQ(st, cudaStreamCaptureStatusActive);
  void* q = nullptr;
  EXPECT_EQ(cudaMalloc(&q, 64), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamIsCapturing(s, &st), cudaSuccess);
  EXPECT_EQ(st, cudaStreamCaptureStatusInvalidated);
  cudaGraph_t graph = reinterpret_cast<cudaGraph_t>(1);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  EXPECT_EQ(cudaStreamIsCapturing(s, &st), cudaSuccess);
  EXPECT_EQ(st, cudaStreamCaptureStatusNone);
  EXPECT_EQ(byte0(), 0) << "the captured memset ran";

  // A host copy on the capturing stream is refused (Global mode); so is synchronising it.
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal), cudaSuccess);
  unsigned char b = 0;
  EXPECT_EQ(cudaMemcpyAsync(&b, p, 1, cudaMemcpyDeviceToHost, s), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamEndCapture(s, &graph), cudaErrorStreamCaptureInvalidated);

  // A valid capture: memset, then a device copy, replayed by each launch.
  ASSERT_EQ(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  EXPECT_EQ(cudaMemsetAsync(p, 7, 128, s), cudaSuccess);
  EXPECT_EQ(cudaMemcpyAsync(p + 128, p, 128, cudaMemcpyDeviceToDevice, s), cudaSuccess);
  // Ending from another thread is refused for a ThreadLocal capture.
  std::thread([&] {
    cudaGraph_t g2 = nullptr;
    EXPECT_EQ(cudaStreamEndCapture(s, &g2), cudaErrorStreamCaptureWrongThread);
  }).join();
  ASSERT_EQ(cudaStreamEndCapture(s, &graph), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  EXPECT_EQ(cudaGraphInstantiate(&exec, graph, 1), cudaErrorInvalidValue);
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);  // the executable graph does not need it
  EXPECT_EQ(byte0(), 0);
  ASSERT_EQ(cudaGraphLaunch(exec, s), cudaSuccess);
  std::vector<unsigned char> all(256);
  ASSERT_EQ(cudaMemcpy(all.data(), p, 256, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(all, std::vector<unsigned char>(256, 7));
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaErrorInvalidValue);
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  EXPECT_EQ(cudaStreamDestroy(s), cudaSuccess);
  cudaGetLastError();
}

}  // namespace
}  // namespace llm::test
