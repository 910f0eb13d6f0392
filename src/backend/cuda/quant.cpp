// quantize / quant_matmul / quant_embedding on the GPU: the kernels of kernels/quant.cu and
// kernels/quant_matmul.cu (the arguments are checked by the Backend's ops). Checks that need the
// device's data (non-finite weights, token ids) set a flag on the device that is read back once
// per call.
#include <climits>

#include "backend/cuda/cuda_backend.h"
#include "quant.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

// The flag's preset (memset bytes 0x7f): larger than any row or position the ops accept.
constexpr int kNoFlag = 0x7f7f7f7f;

int64_t ld_of(const Tensor& t, int64_t dense) { return t.size(0) > 1 ? t.stride(0) : dense; }

// The kernels index a checked QuantizedMatrix with ints.
void check_index_range(const QuantizedMatrix& w, const char* op) {
  LLM_CHECK(w.rows < kNoFlag && w.cols < kNoFlag, op, ": a ", w.rows, " x ", w.cols,
            " matrix is larger than the CUDA kernels index");
}

// ggml's block formats have no CUDA kernels yet: a clear error, before anything runs.
void reject_ggml(const QuantizedMatrix& w, const char* op) {
  LLM_CHECK(w.kind != QuantKind::Ggml, op, ": ", ggml_type_name(w.ggml),
            " (a ggml block format, from a GGUF file) is not supported on CUDA; use --device cpu");
}

QuantDev device_view(const QuantizedMatrix& w) {
  QuantDev q;
  q.int4 = w.kind == QuantKind::Int4;
  q.rows = w.rows;
  q.cols = w.cols;
  q.group = w.group;
  q.data = w.data.ptr<uint8_t>();
  q.data_ld = ld_of(w.data, w.data.size(1));
  q.scales = w.scales.ptr<float>();
  q.scales_ld = ld_of(w.scales, w.scales.size(1));
  return q;
}

// The device flag of one call: preset to kNoFlag, lowered by atomicMin, read back after the kernel.
int* preset_flag(CudaBackend& be) {
  int* flag = static_cast<int*>(be.workspace(sizeof(int)));
  LLM_CUDA_CHECK(cudaMemsetAsync(flag, 0x7f, sizeof(int), be.stream()));
  return flag;
}

int read_flag(CudaBackend& be, const int* flag) {
  int v = kNoFlag;
  LLM_CUDA_CHECK(cudaMemcpyAsync(&v, flag, sizeof v, cudaMemcpyDeviceToHost, be.stream()));
  LLM_CUDA_CHECK(cudaStreamSynchronize(be.stream()));
  return v;
}

}  // namespace

void CudaBackend::do_quantize(const Tensor& w, const QuantizedMatrix& out) {
  const char* op = "quantize";
  check_index_range(out, op);
  int* flag = preset_flag(*this);
  quant_quantize({w.data(), w.dtype(), ld_of(w, out.cols)}, device_view(out), flag, stream_);
  // A non-finite weight has no scale; the first one found (lowest row) is reported.
  const int bad_row = read_flag(*this, flag);
  LLM_CHECK(bad_row == kNoFlag, op, ": row ", bad_row, " of w holds a non-finite value (inf or nan)");
}

void CudaBackend::do_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) {
  const char* op = "quant_embedding";
  reject_ggml(table, op);
  check_index_range(table, op);
  const int64_t N = ids.size(0), C = table.cols;
  LLM_CHECK(N < kNoFlag, op, ": ", N, " ids are more than the CUDA op handles in one call");
  // The ids are checked in the same kernel: a bad id's row of out is left alone, the others are
  // written, and the lowest bad position is reported (the CPU op writes nothing then).
  int* flag = preset_flag(*this);
  const int32_t* id = ids.ptr<int32_t>();
  quant_embedding_rows(id, N, device_view(table), out.data(), out.dtype(), ld_of(out, C), flag, stream_);
  // Recorded in a graph, the flag cannot be read back: the kernel still leaves bad rows alone,
  // and the caller validates the ids on the host before each replay (InferenceModel does).
  if (capturing_) return;
  const int bad = read_flag(*this, flag);
  if (bad != kNoFlag) {
    int32_t value = 0;
    LLM_CUDA_CHECK(cudaMemcpyAsync(&value, id + bad, sizeof value, cudaMemcpyDeviceToHost, stream_));
    LLM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    fail(op, ": token id ", value, " at position ", bad, " is outside the vocabulary [0, ", table.rows, ")");
  }
}

void CudaBackend::do_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias) {
  reject_ggml(w, "quant_matmul");
  check_index_range(w, "quant_matmul");
  const int64_t N = x.size(0), rows = w.rows;
  quant_matmul_rows(device_view(w), {x.data(), x.dtype(), ld_of(x, w.cols)}, N, y.data(), y.dtype(), ld_of(y, rows),
                    bias != nullptr ? bias->data() : nullptr, bias != nullptr ? bias->dtype() : DType::F32, stream_);
}

}  // namespace llm::LLM_CUDA_NS
