#include "cublaslt.h"

#include <cstring>
#include <memory>
#include <vector>

#include "graph.h"
#include "half.h"
#include "launch_info.h"
#include "memory.h"

namespace llm::emu {
namespace {

size_t type_size(uint32_t t) {
  switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16F:
    case CUDA_R_16BF: return 2;
    default: return 0;
  }
}

const char* type_name(uint32_t t) {
  switch (t) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16F: return "CUDA_R_16F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
    default: return "an unsupported type";
  }
}

float load(const void* p, uint32_t type, int64_t i) {
  switch (type) {
    case CUDA_R_16F: return float(static_cast<const __half*>(p)[i]);
    case CUDA_R_16BF: return float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

void store(void* p, uint32_t type, int64_t i, float v) {
  switch (type) {
    case CUDA_R_16F: static_cast<__half*>(p)[i] = __half(v); break;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __nv_bfloat16(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

// Element offset of (r, c) in a layout.
int64_t offset(const cublasLtMatrixLayoutOpaque_t& l, int64_t r, int64_t c) {
  return l.order == CUBLASLT_ORDER_ROW ? r * l.ld + c : r + c * l.ld;
}

// Elements spanned by all batches of a layout (for the bounds check against allocations).
int64_t extent(const cublasLtMatrixLayoutOpaque_t& l) {
  if (l.rows == 0 || l.cols == 0) return 0;
  const int64_t last = offset(l, static_cast<int64_t>(l.rows) - 1, static_cast<int64_t>(l.cols) - 1);
  return (l.batch_count - 1) * l.batch_stride + last + 1;
}

bool has_bias(uint32_t e) { return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS; }
bool has_relu(uint32_t e) { return e == CUBLASLT_EPILOGUE_RELU || e == CUBLASLT_EPILOGUE_RELU_BIAS; }
bool is_bgrad(uint32_t e) { return e == CUBLASLT_EPILOGUE_BGRADA || e == CUBLASLT_EPILOGUE_BGRADB; }

struct Problem {
  int64_t m = 0, n = 0, k = 0;
  int batch = 1;
  bool ta = false, tb = false;
  uint32_t bias_type = CUDA_R_32F;
};

// cuBLASLt's checks on the descriptors, in the order that decides the status code.
cublasStatus_t plan(const cublasLtMatmulDescOpaque_t* desc, const cublasLtMatrixLayoutOpaque_t* a,
                    const cublasLtMatrixLayoutOpaque_t* b, const cublasLtMatrixLayoutOpaque_t* c,
                    const cublasLtMatrixLayoutOpaque_t* d, Problem* p) {
  if (!desc || !a || !b || !c || !d) return CUBLAS_STATUS_INVALID_VALUE;
  for (const auto* l : {a, b, c, d}) {
    if (l->order != CUBLASLT_ORDER_COL && l->order != CUBLASLT_ORDER_ROW) return CUBLAS_STATUS_NOT_SUPPORTED;
    const uint64_t inner = l->order == CUBLASLT_ORDER_COL ? l->rows : l->cols;
    if (l->ld < 0 || static_cast<uint64_t>(l->ld) < (inner > 0 ? inner : 1)) return CUBLAS_STATUS_INVALID_VALUE;
    if (l->batch_count < 1 || l->batch_stride < 0) return CUBLAS_STATUS_INVALID_VALUE;
  }
  const auto op_ok = [](int32_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; };
  if (!op_ok(desc->transa) || !op_ok(desc->transb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (desc->transc != CUBLAS_OP_N) return CUBLAS_STATUS_NOT_SUPPORTED;
  p->ta = desc->transa != CUBLAS_OP_N;
  p->tb = desc->transb != CUBLAS_OP_N;
  p->m = static_cast<int64_t>(d->rows);
  p->n = static_cast<int64_t>(d->cols);
  p->k = static_cast<int64_t>(p->ta ? a->rows : a->cols);
  const int64_t a_m = static_cast<int64_t>(p->ta ? a->cols : a->rows);
  const int64_t b_k = static_cast<int64_t>(p->tb ? b->cols : b->rows);
  const int64_t b_n = static_cast<int64_t>(p->tb ? b->rows : b->cols);
  if (a_m != p->m || b_k != p->k || b_n != p->n || static_cast<int64_t>(c->rows) != p->m ||
      static_cast<int64_t>(c->cols) != p->n) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  p->batch = d->batch_count;
  if (a->batch_count != p->batch || b->batch_count != p->batch || c->batch_count != p->batch) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  // Type combinations of cuBLASLt's table that the emulator implements (fp32 compute).
  if (desc->compute != CUBLAS_COMPUTE_32F && desc->compute != CUBLAS_COMPUTE_32F_PEDANTIC) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (desc->scale != CUDA_R_32F || a->type != b->type || c->type != d->type || type_size(a->type) == 0) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (d->type != CUDA_R_32F && d->type != a->type) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t e = desc->epilogue;
  if (e != CUBLASLT_EPILOGUE_DEFAULT && !has_bias(e) && !has_relu(e) && !is_bgrad(e)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  p->bias_type = desc->bias_type < 0 ? d->type : static_cast<uint32_t>(desc->bias_type);
  if (type_size(p->bias_type) == 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (desc->pointer_mode != CUBLASLT_POINTER_MODE_HOST && desc->pointer_mode != CUBLASLT_POINTER_MODE_DEVICE) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

// A GPU would read or write outside the buffer (or fault on a host pointer): say so loudly.
void check_extent(const char* what, const void* ptr, const cublasLtMatrixLayoutOpaque_t& l) {
  const int64_t elems = extent(l);
  if (elems == 0) return;
  const size_t bytes = static_cast<size_t>(elems) * type_size(l.type);
  if (!is_device_range(ptr, bytes)) {
    throw KernelError(cat("cuda emulator: cublasLtMatmul: matrix ", what, " (", l.rows, " x ", l.cols, " ",
                          type_name(l.type), ", ", l.order == CUBLASLT_ORDER_ROW ? "row" : "column", "-major, ld ",
                          l.ld, ", batch ", l.batch_count, " stride ", l.batch_stride, ") spans ", bytes,
                          " bytes from ", ptr, ", which is not inside one device allocation"));
  }
}

template <class T>
cublasStatus_t set_value(T* field, const void* buf, size_t size) {
  if (!buf || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(field, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

template <class T>
cublasStatus_t get_value(const T& field, void* buf, size_t size, size_t* written) {
  if (written) *written = sizeof(T);
  if (size == 0 && written) return CUBLAS_STATUS_SUCCESS;  // a size query
  if (!buf || size < sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(buf, &field, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasLtContext{};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute, cudaDataType_t scale) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  *desc = new cublasLtMatmulDescOpaque_t{};
  (*desc)->compute = compute;
  (*desc)->scale = scale;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return set_value(&desc->compute, buf, size);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return set_value(&desc->scale, buf, size);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return set_value(&desc->pointer_mode, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSA: return set_value(&desc->transa, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSB: return set_value(&desc->transb, buf, size);
    case CUBLASLT_MATMUL_DESC_TRANSC: return set_value(&desc->transc, buf, size);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return set_value(&desc->epilogue, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return set_value(&desc->bias, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: return set_value(&desc->bias_batch_stride, buf, size);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return set_value(&desc->bias_type, buf, size);
  }
  // Attributes cuBLASLt has but the emulator does not implement would change the result.
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, void* buf,
                                              size_t size, size_t* written) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return get_value(desc->compute, buf, size, written);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return get_value(desc->scale, buf, size, written);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return get_value(desc->pointer_mode, buf, size, written);
    case CUBLASLT_MATMUL_DESC_TRANSA: return get_value(desc->transa, buf, size, written);
    case CUBLASLT_MATMUL_DESC_TRANSB: return get_value(desc->transb, buf, size, written);
    case CUBLASLT_MATMUL_DESC_TRANSC: return get_value(desc->transc, buf, size, written);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return get_value(desc->epilogue, buf, size, written);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return get_value(desc->bias, buf, size, written);
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: return get_value(desc->bias_batch_stride, buf, size, written);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return get_value(desc->bias_type, buf, size, written);
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = new cublasLtMatrixLayoutOpaque_t{};
  (*layout)->type = static_cast<uint32_t>(type);
  (*layout)->rows = rows;
  (*layout)->cols = cols;
  (*layout)->ld = ld;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: return set_value(&layout->type, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return set_value(&layout->order, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return set_value(&layout->rows, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return set_value(&layout->cols, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_LD: return set_value(&layout->ld, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return set_value(&layout->batch_count, buf, size);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return set_value(&layout->batch_stride, buf, size);
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                void* buf, size_t size, size_t* written) {
  if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: return get_value(layout->type, buf, size, written);
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return get_value(layout->order, buf, size, written);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return get_value(layout->rows, buf, size, written);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return get_value(layout->cols, buf, size, written);
    case CUBLASLT_MATRIX_LAYOUT_LD: return get_value(layout->ld, buf, size, written);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return get_value(layout->batch_count, buf, size, written);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return get_value(layout->batch_stride, buf, size, written);
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  *pref = new cublasLtMatmulPreferenceOpaque_t{};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE: return set_value(&pref->search_mode, buf, size);
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return set_value(&pref->max_workspace, buf, size);
  }
  return CUBLAS_STATUS_SUCCESS;  // other preferences only narrow the algorithm choice
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!pref || requested < 1 || !results || !returned) return CUBLAS_STATUS_INVALID_VALUE;
  *returned = 0;
  Problem p;
  if (const cublasStatus_t s = plan(desc, a, b, c, d, &p); s != CUBLAS_STATUS_SUCCESS) return s;
  std::memset(&results[0], 0, sizeof results[0]);
  results[0].algo.data[0] = 0x6c6c6d656d75;  // any constant: the emulator has one algorithm
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.0f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* a,
                              cublasLtMatrixLayout_t adesc, const void* b, cublasLtMatrixLayout_t bdesc,
                              const void* beta, const void* c, cublasLtMatrixLayout_t cdesc, void* d,
                              cublasLtMatrixLayout_t ddesc, const cublasLtMatmulAlgo_t* algo, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  (void)algo;
  (void)workspace;
  (void)workspace_bytes;
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  Problem p;
  if (const cublasStatus_t s = plan(desc, adesc, bdesc, cdesc, ddesc, &p); s != CUBLAS_STATUS_SUCCESS) return s;
  if (!alpha || !beta) return CUBLAS_STATUS_INVALID_VALUE;
  const uint32_t epi = desc->epilogue;
  if ((has_bias(epi) || is_bgrad(epi)) && !desc->bias) return CUBLAS_STATUS_INVALID_VALUE;
  // In place (C == D) needs identical layouts, as cuBLASLt requires.
  if (c == d && (cdesc->ld != ddesc->ld || cdesc->order != ddesc->order || cdesc->type != ddesc->type ||
                 cdesc->batch_stride != ddesc->batch_stride)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const float alpha_v = *static_cast<const float*>(alpha);
  const float beta_v = *static_cast<const float*>(beta);
  check_extent("A", a, *adesc);
  check_extent("B", b, *bdesc);
  if (beta_v != 0.0f) check_extent("C", c, *cdesc);
  check_extent("D", d, *ddesc);
  const int64_t bias_len = epi == CUBLASLT_EPILOGUE_BGRADB ? p.n : p.m;
  if (has_bias(epi) || is_bgrad(epi)) {
    const int64_t span = (p.batch - 1) * desc->bias_batch_stride + bias_len;
    if (!is_device_range(desc->bias, static_cast<size_t>(span) * type_size(p.bias_type))) {
      throw KernelError(cat("cuda emulator: cublasLtMatmul: the bias vector (", bias_len, " x ", type_name(p.bias_type),
                            ", batch stride ", desc->bias_batch_stride, ") at ", desc->bias,
                            " is not inside one device allocation"));
    }
  }

  if (stream_capturing(stream)) {
    // A captured matmul keeps the descriptors and scalars as they are now (the caller may change
    // or destroy them afterwards, as cuBLASLt allows) and runs at every replay.
    struct Snapshot {
      cublasLtContext ctx;
      cublasLtMatmulDescOpaque_t desc;
      cublasLtMatrixLayoutOpaque_t a, b, c, d;
      float alpha, beta;
    };
    auto s =
        std::make_shared<Snapshot>(Snapshot{cublasLtContext{}, *desc, *adesc, *bdesc, *cdesc, *ddesc, alpha_v, beta_v});
    capture_work(stream, [s, a, b, c, d](cudaStream_t on) {
      Snapshot& w = *s;
      const cublasStatus_t st = cublasLtMatmul(&w.ctx, &w.desc, &w.alpha, a, &w.a, b, &w.b, &w.beta, c, &w.c, d, &w.d,
                                               nullptr, nullptr, 0, on);
      if (st != CUBLAS_STATUS_SUCCESS) {
        throw KernelError(cat("cuda emulator: cublasLtMatmul replayed from a graph failed: ", cublasGetStatusName(st)));
      }
    });
    return CUBLAS_STATUS_SUCCESS;
  }

  const int64_t m = p.m, n = p.n, k = p.k;
  std::vector<float> opa(static_cast<size_t>(m * k)), opbt(static_cast<size_t>(n * k));
  for (int batch = 0; batch < p.batch; ++batch) {
    const int64_t ab = batch * adesc->batch_stride, bb = batch * bdesc->batch_stride;
    const int64_t cb = batch * cdesc->batch_stride, db = batch * ddesc->batch_stride;
    // op(A) as m x k and op(B)^T as n x k, row-major floats, so every dot product is contiguous.
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t l = 0; l < k; ++l) {
        opa[static_cast<size_t>(i * k + l)] =
            load(a, adesc->type, ab + (p.ta ? offset(*adesc, l, i) : offset(*adesc, i, l)));
      }
    }
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t l = 0; l < k; ++l) {
        opbt[static_cast<size_t>(j * k + l)] =
            load(b, bdesc->type, bb + (p.tb ? offset(*bdesc, j, l) : offset(*bdesc, l, j)));
      }
    }
    const int64_t bias_base = batch * desc->bias_batch_stride;
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t i = 0; i < m; ++i) {
        const float* ar = &opa[static_cast<size_t>(i * k)];
        const float* br = &opbt[static_cast<size_t>(j * k)];
        float acc = 0.0f;
        for (int64_t l = 0; l < k; ++l) acc += ar[l] * br[l];
        float v = alpha_v * acc;
        if (beta_v != 0.0f) v += beta_v * load(c, cdesc->type, cb + offset(*cdesc, i, j));
        if (has_bias(epi)) v += load(desc->bias, p.bias_type, bias_base + i);
        if (has_relu(epi)) v = v > 0.0f ? v : 0.0f;
        store(d, ddesc->type, db + offset(*ddesc, i, j), v);
      }
    }
    // Bias gradients: sums over the k dimension of op(A) (per row of D) or op(B) (per column).
    if (epi == CUBLASLT_EPILOGUE_BGRADA) {
      for (int64_t i = 0; i < m; ++i) {
        float s = 0.0f;
        for (int64_t l = 0; l < k; ++l) s += opa[static_cast<size_t>(i * k + l)];
        store(const_cast<void*>(desc->bias), p.bias_type, bias_base + i, s);
      }
    } else if (epi == CUBLASLT_EPILOGUE_BGRADB) {
      for (int64_t j = 0; j < n; ++j) {
        float s = 0.0f;
        for (int64_t l = 0; l < k; ++l) s += opbt[static_cast<size_t>(j * k + l)];
        store(const_cast<void*>(desc->bias), p.bias_type, bias_base + j, s);
      }
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) { return cublasGetStatusName(status); }

}  // namespace llm::emu
