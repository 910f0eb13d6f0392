// matmul through cuBLASLt, and bias_backward (kernels/matmul.cu), on the CUDA backend.
//
// Row-major onto column-major: a row-major X [r, c] with row stride ld is, to cuBLASLt, the
// column-major X^T [c, r] with the same ld. So c = op(a) op(b) [M, N] is computed as
//   C^T [N, M] = op(b)^T [N, K] . op(a)^T [K, M]
// i.e. cuBLASLt's A is our b (TRANSA = trans_b, layout b.size(1) x b.size(0), ld b.stride(0)),
// its B is our a (TRANSB = trans_a), its C/D is c (N x M, ld c.stride(0)), m = N, n = M, k = K.
// Rows strided by stride(0) (a column block of a fused buffer) are just a larger ld. cuBLASLt's
// bias epilogue adds a vector of length rows(D) = N to every column of D: per column of our
// row-major c, as the contract says. The bias must have D's type (cublasLt.h,
// CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE) and is staged when it has not.
//
// Types: compute CUBLAS_COMPUTE_32F (true fp32 accumulation, no TF32), scale fp32; A/B f32 with
// C/D f32, or A/B f16 (bf16) with C/D f16 (bf16) or f32 (the weight-gradient GEMMs accumulate
// bf16 x bf16 into f32 grads with beta = 1). Anything else goes through the workspace first:
// operands of two different dtypes are widened to f32 (exact, as the CPU computes), and an output
// cuBLASLt cannot write (f32 operands into an f16/bf16 c, or bf16 operands into f16 c) is
// computed into an f32 scratch and rounded into c once.
//
// Plans (descriptor, layouts, algorithm) are cached by shape, strides, types, pointer alignment
// and GPU architecture (lt_plan.h), so a training step runs the heuristic once per distinct GEMM.
#include "matmul.cuh"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/lt_plan.h"
#include "copy.cuh"

namespace llm::LLM_CUDA_NS {

namespace {

// Row stride of a 2-D tensor with dense rows (any value >= cols serves a single row).
int64_t ld_of(const Tensor& t) { return t.size(0) > 1 ? t.stride(0) : t.size(1); }

// One staged operand: a dense copy in the workspace.
struct Staged {
  void* p = nullptr;
  int64_t ld = 0;
};

// dst [rows, cols] dense in dtype `to` <- src rows at stride ld.
void stage(const void* src, DType from, int64_t rows, int64_t cols, int64_t ld, void* dst, DType to, int64_t ld_dst,
           cudaStream_t stream) {
  CopyShape s;
  s.size[2] = rows;
  s.src_stride[2] = rows > 1 ? ld : 0;
  s.dst_stride[2] = rows > 1 ? ld_dst : 0;
  s.cols = cols;
  copy_strided(src, from, dst, to, s, stream);
}
void stage_rows(const Tensor& t, DType to, void* dst, cudaStream_t stream) {
  stage(t.data(), t.dtype(), t.size(0), t.size(1), ld_of(t), dst, to, t.size(1), stream);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

size_t round256(size_t n) { return (n + 255) / 256 * 256; }

}  // namespace

void CudaBackend::do_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, float alpha,
                            float beta, const Tensor* bias) {
  const char* op = "matmul";
  const int64_t M = trans_a ? a.size(1) : a.size(0);
  const int64_t K = trans_a ? a.size(0) : a.size(1);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  const int64_t ldc = ld_of(c);
  if (K == 0) {  // no product: c = beta c + bias
    matmul_scale_bias(c.data(), c.dtype(), ldc, M, N, beta, bias ? bias->data() : nullptr,
                      bias ? bias->dtype() : DType::F32, stream_);
    return;
  }

  // Operand type: the common dtype, or f32 for two different ones. D: c's dtype where cuBLASLt
  // can write it, else an f32 scratch.
  const DType ab = a.dtype() == b.dtype() ? a.dtype() : DType::F32;
  const DType dt = c.dtype() == DType::F32 || (c.dtype() == ab) ? c.dtype() : DType::F32;
  const bool stage_a = a.dtype() != ab, stage_b = b.dtype() != ab, stage_c = c.dtype() != dt;
  const bool stage_bias = bias != nullptr && (bias->dtype() != dt || !aligned16(bias->data()));
  const size_t bytes_a = stage_a ? round256(static_cast<size_t>(a.numel()) * 4) : 0;
  const size_t bytes_b = stage_b ? round256(static_cast<size_t>(b.numel()) * 4) : 0;
  const size_t bytes_c = stage_c ? round256(static_cast<size_t>(M * N) * 4) : 0;
  const size_t bytes_bias = stage_bias ? round256(static_cast<size_t>(N) * dtype_size(dt)) : 0;
  char* ws = nullptr;
  if (bytes_a + bytes_b + bytes_c + bytes_bias > 0)
    ws = static_cast<char*>(workspace(bytes_a + bytes_b + bytes_c + bytes_bias));
  Staged A{a.data(), ld_of(a)}, B{b.data(), ld_of(b)}, D{c.data(), ldc};
  const void* bias_p = bias ? bias->data() : nullptr;
  size_t at = 0;
  if (stage_a) {
    A = {ws + at, a.size(1)};
    stage_rows(a, ab, A.p, stream_);
    at += bytes_a;
  }
  if (stage_b) {
    B = {ws + at, b.size(1)};
    stage_rows(b, ab, B.p, stream_);
    at += bytes_b;
  }
  if (stage_c) {
    D = {ws + at, N};
    if (beta != 0.0f) stage_rows(c, dt, D.p, stream_);
    at += bytes_c;
  }
  if (stage_bias) {
    stage(bias->data(), bias->dtype(), 1, N, N, ws + at, dt, N, stream_);  // dense, as the CPU reads it
    bias_p = ws + at;
  }

  // cuBLASLt's A is our b (as stored: b.size(1) x b.size(0)), its B is our a, its D is c^T [N, M].
  LtGemm g;
  g.trans_a = trans_b;
  g.trans_b = trans_a;
  g.a = {B.p, ab, b.size(1), b.size(0), B.ld};
  g.b = {A.p, ab, a.size(1), a.size(0), A.ld};
  g.d = {D.p, dt, N, M, D.ld};
  g.bias = bias_p;
  const bool bias_added = lt_matmul(*this, g, alpha, beta, [&] {
    return cat(op, ": cuBLASLt has no algorithm for op(a) [", M, ", ", K, "] ", dtype_name(ab), " x op(b) [", K, ", ",
               N, "] into ", dtype_name(dt), " (trans_a ", trans_a, ", trans_b ", trans_b, ", ld ", A.ld, "/", B.ld,
               "/", D.ld, ")");
  });
  if (bias != nullptr && !bias_added) {
    matmul_scale_bias(D.p, dt, D.ld, M, N, 1.0f, bias_p, dt, stream_);
  }
  if (stage_c) {  // round the f32 result into c once
    stage(D.p, DType::F32, M, N, N, c.data(), c.dtype(), ldc, stream_);
  }
}

void CudaBackend::do_bias_backward(const Tensor& dy, const Tensor& db) {
  const int64_t N = dy.size(0), C = dy.size(1);
  auto* partial = static_cast<float*>(workspace(static_cast<size_t>(bias_backward_scratch(N, C)) * sizeof(float)));
  bias_backward_rows(dy.data(), dy.dtype(), ld_of(dy), N, C, db.ptr<float>(), partial, stream_);
}

}  // namespace llm::LLM_CUDA_NS
