// quantize / quant_matmul / quant_embedding on the GPU: the CPU op's argument checks, then the
// kernels of kernels/quant.cu and kernels/quant_matmul.cu. Checks that need the device's data
// (non-finite weights, token ids) set a flag on the device that is read back once per call.
#include <climits>

#include "backend/cpu/cpu_util.h"
#include "backend/cuda/cuda_backend.h"
#include "quant.cuh"

namespace llm::LLM_CUDA_NS {
namespace {

// The flag's preset (memset bytes 0x7f): larger than any row or position the ops accept.
constexpr int kNoFlag = 0x7f7f7f7f;

int64_t ld_of(const Tensor& t, int64_t dense) { return t.size(0) > 1 ? t.stride(0) : dense; }

// The CPU op's check of a QuantizedMatrix against the layout in backend.h, same messages.
void check_quantized(const CudaBackend& be, const QuantizedMatrix& w, const char* op) {
  const bool int4 = w.kind == QuantKind::Int4;
  LLM_CHECK(w.rows >= 0 && w.cols >= 0, op, ": the quantized matrix is [", w.rows, ", ", w.cols, "]");
  LLM_CHECK(w.group > 0 && w.cols % w.group == 0, op, ": group ", w.group, " must be positive and divide cols ",
            w.cols);
  LLM_CHECK(!int4 || w.group % 2 == 0, op, ": int4 needs an even group (two columns per byte), got ", w.group);
  check_dtype(w.data, int4 ? DType::U8 : DType::I8, op, "the quantized data");
  check_shape(w.data, {w.rows, int4 ? w.cols / 2 : w.cols}, op, "the quantized data");
  check_dtype(w.scales, DType::F32, op, "the scales");
  check_shape(w.scales, {w.rows, w.cols / w.group}, op, "the scales");
  LLM_CHECK(w.data.rows_contiguous() && w.scales.rows_contiguous(), op,
            ": the quantized data and scales must have dense rows");
  LLM_CHECK((!w.data.empty() && !w.scales.empty()) || w.rows * w.cols == 0, op,
            ": the quantized matrix has no data");
  be.check_device(w.data, op, "the quantized data");
  be.check_device(w.scales, op, "the scales");
  LLM_CHECK(w.rows < kNoFlag && w.cols < kNoFlag, op, ": a ", w.rows, " x ", w.cols,
            " matrix is larger than the CUDA kernels index");
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

void CudaBackend::quantize(const Tensor& w, const QuantizedMatrix& out) {
  const char* op = "quantize";
  check_quantized(*this, out, op);
  cpu::check_rows(w, op, "w");
  check_shape(w, {out.rows, out.cols}, op, "w");
  check_device(w, op, "w");
  if (out.rows == 0 || out.cols == 0) return;
  int* flag = preset_flag(*this);
  quant_quantize({w.data(), w.dtype(), ld_of(w, out.cols)}, device_view(out), flag, stream_);
  // A non-finite weight has no scale; the first one found (lowest row) is reported.
  const int bad_row = read_flag(*this, flag);
  LLM_CHECK(bad_row == kNoFlag, op, ": row ", bad_row, " of w holds a non-finite value (inf or nan)");
}

void CudaBackend::quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) {
  const char* op = "quant_embedding";
  check_quantized(*this, table, op);
  check_dtype(ids, DType::I32, op, "ids");
  LLM_CHECK(ids.ndim() == 1 && ids.is_contiguous(), op, ": ids must be a dense [N] vector, got ", ids.shape_str());
  cpu::check_rows(out, op, "out");
  const int64_t N = ids.size(0), C = table.cols;
  check_shape(out, {N, C}, op, "out");
  check_device(ids, op, "ids");
  check_device(out, op, "out");
  LLM_CHECK(N < kNoFlag, op, ": ", N, " ids are more than the CUDA op handles in one call");
  if (N == 0) return;
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

void CudaBackend::quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias) {
  const char* op = "quant_matmul";
  check_quantized(*this, w, op);
  cpu::check_rows(x, op, "x");
  cpu::check_rows(y, op, "y");
  LLM_CHECK(x.ndim() == 2, op, ": x must be [N, ", w.cols, "], got ", x.shape_str());
  LLM_CHECK(x.size(1) == w.cols, op, ": x is ", x.shape_str(), ", expected [N, ", w.cols,
            "] (the quantized matrix has ", w.cols, " columns)");
  const int64_t N = x.size(0), rows = w.rows;
  check_shape(y, {N, rows}, op, "y");
  if (bias != nullptr) {
    cpu::check_rows(*bias, op, "bias");
    check_shape(*bias, {rows}, op, "bias");
    check_device(*bias, op, "bias");
  }
  check_device(x, op, "x");
  check_device(y, op, "y");
  if (N == 0 || rows == 0) return;
  quant_matmul_rows(device_view(w), {x.data(), x.dtype(), ld_of(x, w.cols)}, N, y.data(), y.dtype(), ld_of(y, rows),
                    bias != nullptr ? bias->data() : nullptr, bias != nullptr ? bias->dtype() : DType::F32, stream_);
}

}  // namespace llm::LLM_CUDA_NS
