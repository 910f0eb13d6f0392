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
// and GPU architecture, so a training step runs the heuristic once per distinct GEMM. The
// heuristic is told each pointer's actual alignment (cuBLASLt assumes 256 bytes otherwise, and
// a column block of a fused buffer is often only 2-byte aligned).
#include <bit>
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "backend/cuda/cuda_backend.h"
#include "copy.cuh"
#include "matmul.cuh"

namespace llm::LLM_CUDA_NS {

namespace {

// The minimum-alignment preferences (cublasLt.h values 5..8). The emulator ignores preferences
// it does not model, so it is handed the same numbers.
#if LLM_CUDA_EMULATED
constexpr auto kPrefAlignA = static_cast<cublasLtMatmulPreferenceAttributes_t>(5);
constexpr auto kPrefAlignB = static_cast<cublasLtMatmulPreferenceAttributes_t>(6);
constexpr auto kPrefAlignC = static_cast<cublasLtMatmulPreferenceAttributes_t>(7);
constexpr auto kPrefAlignD = static_cast<cublasLtMatmulPreferenceAttributes_t>(8);
#else
constexpr auto kPrefAlignA = CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES;
constexpr auto kPrefAlignB = CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES;
constexpr auto kPrefAlignC = CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES;
constexpr auto kPrefAlignD = CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES;
#endif

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    default: return CUDA_R_32F;
  }
}

// The largest power of two (at most 256) dividing the address.
uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  return a == 0 ? 256u : static_cast<uint32_t>(std::min<uintptr_t>(256, a & (~a + 1)));
}

// Row stride of a 2-D tensor with dense rows (any value >= cols serves a single row).
int64_t ld_of(const Tensor& t) { return t.size(0) > 1 ? t.stride(0) : t.size(1); }

struct PlanKey {
  int sm = 0;
  bool trans_a = false, trans_b = false;  // ours (the contract's)
  int64_t M = 0, N = 0, K = 0;
  int64_t a_rows = 0, a_cols = 0, lda = 0, b_rows = 0, b_cols = 0, ldb = 0, ldc = 0;
  DType ab = DType::F32, d = DType::F32;
  bool bias = false;
  uint32_t align_a = 0, align_b = 0, align_c = 0;
  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 1469598103934665603ull;
    const auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(static_cast<uint64_t>(k.sm) << 2 | uint64_t(k.trans_a) << 1 | uint64_t(k.trans_b));
    for (int64_t v : {k.M, k.N, k.K, k.a_rows, k.a_cols, k.lda, k.b_rows, k.b_cols, k.ldb, k.ldc}) {
      mix(static_cast<uint64_t>(v));
    }
    mix(static_cast<uint64_t>(k.ab) << 16 | static_cast<uint64_t>(k.d) << 8 | uint64_t(k.bias));
    mix(uint64_t(k.align_a) << 40 | uint64_t(k.align_b) << 20 | k.align_c);
    return static_cast<size_t>(h);
  }
};

// A descriptor, its three layouts (C and D share one) and the heuristic's algorithm.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool bias_epilogue = false;  // false with a bias: the bias is added by a kernel afterwards
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

struct PlanPreference {
  cublasLtMatmulPreference_t p = nullptr;
  PlanPreference() { LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p)); }
  ~PlanPreference() { cublasLtMatmulPreferenceDestroy(p); }
  PlanPreference(const PlanPreference&) = delete;
  PlanPreference& operator=(const PlanPreference&) = delete;
};

// Builds the plan for key; with_bias asks for the bias epilogue. Returns nullptr when the
// heuristic finds no algorithm.
std::unique_ptr<Plan> build_plan(const CudaBackend& be, const PlanKey& k, bool with_bias, cublasStatus_t* status) {
  auto plan = std::make_unique<Plan>();
  LLM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t ta = k.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our b
  const int32_t tb = k.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's B is our a
  LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  if (with_bias) {
    const uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
    LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  }
  plan->bias_epilogue = with_bias;
  // Column-major views of the row-major tensors: rows = the tensor's columns.
  LLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, cuda_type(k.ab), static_cast<uint64_t>(k.b_cols),
                                              static_cast<uint64_t>(k.b_rows), k.ldb));
  LLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, cuda_type(k.ab), static_cast<uint64_t>(k.a_cols),
                                              static_cast<uint64_t>(k.a_rows), k.lda));
  LLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->c, cuda_type(k.d), static_cast<uint64_t>(k.N),
                                              static_cast<uint64_t>(k.M), k.ldc));
  PlanPreference pref;
  const uint64_t ws = be.lt_workspace_bytes();
  LLM_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, kPrefAlignA, &k.align_b, sizeof k.align_b));
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, kPrefAlignB, &k.align_a, sizeof k.align_a));
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, kPrefAlignC, &k.align_c, sizeof k.align_c));
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, kPrefAlignD, &k.align_c, sizeof k.align_c));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  *status = cublasLtMatmulAlgoGetHeuristic(be.lt(), plan->desc, plan->a, plan->b, plan->c, plan->c, pref.p, 1, &result,
                                           &returned);
  if (*status != CUBLAS_STATUS_SUCCESS || returned == 0) return nullptr;
  plan->algo = result.algo;
  return plan;
}

// Process-wide: plans depend on the GPU architecture (in the key), not on the backend object.
// Leaked on purpose, so no cuBLASLt call runs during static destruction.
struct PlanCache {
  std::mutex mu;
  std::unordered_map<PlanKey, std::unique_ptr<Plan>, PlanKeyHash> plans;
};
PlanCache& plan_cache() {
  static auto* cache = new PlanCache;
  return *cache;
}
constexpr size_t kMaxPlans = 4096;

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

  PlanKey key;
  key.sm = sm_version();
  key.trans_a = trans_a;
  key.trans_b = trans_b;
  key.M = M;
  key.N = N;
  key.K = K;
  key.a_rows = a.size(0);
  key.a_cols = a.size(1);
  key.lda = A.ld;
  key.b_rows = b.size(0);
  key.b_cols = b.size(1);
  key.ldb = B.ld;
  key.ldc = D.ld;
  key.ab = ab;
  key.d = dt;
  key.bias = bias != nullptr;
  key.align_a = alignment(A.p);
  key.align_b = alignment(B.p);
  key.align_c = alignment(D.p);

  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  auto it = cache.plans.find(key);
  if (it == cache.plans.end()) {
    cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
    std::unique_ptr<Plan> plan = build_plan(*this, key, key.bias, &status);
    if (!plan && key.bias) plan = build_plan(*this, key, false, &status);  // add the bias with a kernel
    LLM_CHECK(plan != nullptr, op, ": cuBLASLt has no algorithm for op(a) [", M, ", ", K, "] ", dtype_name(ab),
              " x op(b) [", K, ", ", N, "] into ", dtype_name(dt), " (trans_a ", trans_a, ", trans_b ", trans_b,
              ", ld ", A.ld, "/", B.ld, "/", D.ld, "): ", cuda_detail::cublas_status_name(status));
    if (cache.plans.size() >= kMaxPlans) cache.plans.clear();
    it = cache.plans.emplace(key, std::move(plan)).first;
  }
  Plan& plan = *it->second;
  if (plan.bias_epilogue) {
    LLM_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_p, sizeof bias_p));
  }
  LLM_CUBLAS_CHECK(cublasLtMatmul(lt_, plan.desc, &alpha, B.p, plan.a, A.p, plan.b, &beta, D.p, plan.c, D.p, plan.c,
                                  &plan.algo, lt_workspace_, lt_workspace_bytes_, stream_));
  if (bias != nullptr && !plan.bias_epilogue) {
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
