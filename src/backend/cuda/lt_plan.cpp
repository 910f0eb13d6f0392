// The cuBLASLt plan cache (lt_plan.h): matmul and cross_entropy run every GEMM through it.
#include "backend/cuda/lt_plan.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>

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

// What decides the algorithm of one GEMM: everything but the pointers (their alignment counts).
struct OperandKey {
  DType type = DType::F32;
  int64_t rows = 0, cols = 0, ld = 0;
  uint32_t align = 0;
  bool operator==(const OperandKey&) const = default;
};
OperandKey key_of(const LtOperand& o) { return {o.type, o.rows, o.cols, o.ld, alignment(o.ptr)}; }

struct PlanKey {
  int sm = 0;
  bool trans_a = false, trans_b = false, bias = false;
  OperandKey a, b, d;
  bool operator==(const PlanKey&) const = default;
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    uint64_t h = 1469598103934665603ull;
    const auto mix = [&h](uint64_t v) { h = (h ^ v) * 1099511628211ull; };
    mix(static_cast<uint64_t>(k.sm) << 3 | uint64_t(k.trans_a) << 2 | uint64_t(k.trans_b) << 1 | uint64_t(k.bias));
    for (const OperandKey* o : {&k.a, &k.b, &k.d}) {
      for (int64_t v : {o->rows, o->cols, o->ld}) mix(static_cast<uint64_t>(v));
      mix(static_cast<uint64_t>(o->type) << 32 | o->align);
    }
    return static_cast<size_t>(h);
  }
};

// A descriptor, its three layouts (C and D share one) and the heuristic's algorithm.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool bias_epilogue = false;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (d) cublasLtMatrixLayoutDestroy(d);
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

cublasLtMatrixLayout_t make_layout(const OperandKey& o) {
  cublasLtMatrixLayout_t l = nullptr;
  LLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&l, cuda_type(o.type), static_cast<uint64_t>(o.rows),
                                              static_cast<uint64_t>(o.cols), o.ld));
  return l;
}

// The plan for key; with_bias asks for the bias epilogue. nullptr when the heuristic finds no
// algorithm (*status says why, if it failed).
std::unique_ptr<Plan> build_plan(const CudaBackend& be, const PlanKey& k, bool with_bias, cublasStatus_t* status) {
  auto plan = std::make_unique<Plan>();
  LLM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t ta = k.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int32_t tb = k.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  if (with_bias) {
    const uint32_t epi = CUBLASLT_EPILOGUE_BIAS;
    LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  }
  plan->bias_epilogue = with_bias;
  plan->a = make_layout(k.a);
  plan->b = make_layout(k.b);
  plan->d = make_layout(k.d);
  PlanPreference pref;
  const uint64_t ws = be.lt_workspace_bytes();
  LLM_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref.p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, kPrefAlignA, &k.a.align, sizeof k.a.align));
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, kPrefAlignB, &k.b.align, sizeof k.b.align));
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, kPrefAlignC, &k.d.align, sizeof k.d.align));
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref.p, kPrefAlignD, &k.d.align, sizeof k.d.align));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  *status = cublasLtMatmulAlgoGetHeuristic(be.lt(), plan->desc, plan->a, plan->b, plan->d, plan->d, pref.p, 1, &result,
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

}  // namespace

bool lt_matmul(const CudaBackend& be, const LtGemm& g, float alpha, float beta,
               const std::function<std::string()>& what) {
  PlanKey key;
  key.sm = be.sm_version();
  key.trans_a = g.trans_a;
  key.trans_b = g.trans_b;
  key.bias = g.bias != nullptr;
  key.a = key_of(g.a);
  key.b = key_of(g.b);
  key.d = key_of(g.d);

  PlanCache& cache = plan_cache();
  std::lock_guard<std::mutex> lock(cache.mu);
  auto it = cache.plans.find(key);
  if (it == cache.plans.end()) {
    cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
    std::unique_ptr<Plan> plan = build_plan(be, key, key.bias, &status);
    if (!plan && key.bias) plan = build_plan(be, key, false, &status);  // the caller adds the bias
    LLM_CHECK(plan != nullptr, what(), ": ", cuda_detail::cublas_status_name(status));
    if (cache.plans.size() >= kMaxPlans) cache.plans.clear();
    it = cache.plans.emplace(key, std::move(plan)).first;
  }
  Plan& plan = *it->second;
  if (plan.bias_epilogue) {
    LLM_CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof g.bias));
  }
  void* d = const_cast<void*>(g.d.ptr);
  LLM_CUBLAS_CHECK(cublasLtMatmul(be.lt(), plan.desc, &alpha, g.a.ptr, plan.a, g.b.ptr, plan.b, &beta, d, plan.d, d,
                                  plan.d, &plan.algo, be.lt_workspace(), be.lt_workspace_bytes(), be.stream()));
  return plan.bias_epilogue;
}

}  // namespace llm::LLM_CUDA_NS
