// embedding_forward / embedding_backward on the CUDA backend (kernels/embedding.cu).
//
// Ids live on the device, so the range check is a kernel (the lowest bad position, by atomicMin)
// whose result is read back before anything is written: one small device-to-host copy and a
// stream synchronisation per call. The trainer and the decoder upload the ids right before
// (upload synchronises), so the wait is for that kernel alone; a bad id then fails exactly as on
// the CPU, naming the id and its position, with out / dtable untouched.
#include <climits>

#include "backend/cuda/cuda_backend.h"
#include "embedding.cuh"

namespace llm::LLM_CUDA_NS {

namespace {

// Scratch bytes kept before other uses of the workspace for the validation flag (alignment).
constexpr size_t kFlagBytes = 256;

// Every id must index a row of the table (ids, of checked dtype and layout, live on the device).
void check_id_range(CudaBackend& be, const Tensor& ids, int64_t vocab, const char* op) {
  const int64_t N = ids.size(0);
  if (N == 0) return;
  LLM_CHECK(N < INT_MAX, op, ": ", N, " ids exceed the ", INT_MAX, " the check handles");
  // A recorded op cannot wait for the check (and the ids are not there yet): the caller of a
  // graph validates the ids on the host before each replay (InferenceModel does).
  if (be.capturing()) return;
  int* flag = static_cast<int*>(be.workspace(kFlagBytes));
  // 0x7f7f7f7f: larger than any position, and a byte pattern memset can write.
  LLM_CUDA_CHECK(cudaMemsetAsync(flag, 0x7f, sizeof(int), be.stream()));
  embedding_validate(ids.ptr<int32_t>(), N, vocab, flag, be.stream());
  int bad = 0;
  LLM_CUDA_CHECK(cudaMemcpyAsync(&bad, flag, sizeof bad, cudaMemcpyDeviceToHost, be.stream()));
  LLM_CUDA_CHECK(cudaStreamSynchronize(be.stream()));
  if (bad == 0x7f7f7f7f) return;
  int32_t id = 0;
  LLM_CUDA_CHECK(cudaMemcpyAsync(&id, ids.ptr<int32_t>() + bad, sizeof id, cudaMemcpyDeviceToHost, be.stream()));
  LLM_CUDA_CHECK(cudaStreamSynchronize(be.stream()));
  fail(op, ": token id ", id, " at position ", bad, " is outside the vocabulary [0, ", vocab, ")");
}

int64_t ld(const Tensor& t) { return t.size(0) > 1 ? t.stride(0) : t.size(1); }

}  // namespace

void CudaBackend::do_embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) {
  const int64_t N = ids.size(0), C = table.size(1);
  check_id_range(*this, ids, table.size(0), "embedding_forward");
  embedding_gather(ids.ptr<int32_t>(), N, table.data(), table.dtype(), ld(table), out.data(), out.dtype(), ld(out), C,
                   stream_);
}

void CudaBackend::do_embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable, int64_t row0,
                                        int64_t vocab) {
  const int64_t N = ids.size(0), C = dtable.size(1);
  check_id_range(*this, ids, vocab, "embedding_backward");
  if (N == 0 || C == 0) return;
  void* scratch = workspace(embedding_scatter_scratch(N));
  embedding_scatter_add(ids.ptr<int32_t>(), N, dout.data(), dout.dtype(), ld(dout), dtable.ptr<float>(), row0,
                        dtable.size(0), C, scratch, stream_);
}

}  // namespace llm::LLM_CUDA_NS
