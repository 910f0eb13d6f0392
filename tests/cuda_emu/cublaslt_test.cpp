// cuBLASLt calls against a plain loop written from cuBLASLt's documented semantics: column-major
// layouts with leading dimensions, op(A)/op(B), strided batches, alpha/beta, bias epilogues.
// Under the emulator in CI (checking the CPU implementation); on a GPU when present (checking
// that the emulator and the real library agree, and that these tests mean what they say).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "cuda_test_util.h"
#include "llm/dtype.h"
#include "test_util.h"

namespace llm::test {
namespace {

struct Case {
  int64_t m = 1, n = 1, k = 1;
  bool ta = false, tb = false;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0, pad_d = 0;  // ld = rows + pad
  int batch = 1;
  int64_t stride_pad = 0;  // batch stride = ld * cols + stride_pad
  cudaDataType_t ab = CUDA_R_32F, cd = CUDA_R_32F;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  float alpha = 1.0f, beta = 0.0f;
  bool in_place = false;  // C and D are the same buffer
};

size_t bytes_of(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

// Host values rounded to the storage type, and their bytes.
struct HostMatrix {
  cudaDataType_t type;
  std::vector<float> values;  // what the device holds, as floats
  std::vector<unsigned char> bytes;
};

HostMatrix make_matrix(std::mt19937_64& g, cudaDataType_t type, size_t count) {
  HostMatrix h{type, uniform(g, count, -1.0f, 1.0f), std::vector<unsigned char>(count * bytes_of(type))};
  for (size_t i = 0; i < count; ++i) {
    float& v = h.values[i];
    if (type == CUDA_R_16F) {
      const uint16_t b = f32_to_f16_bits(v);
      v = f16_bits_to_f32(b);
      std::memcpy(&h.bytes[2 * i], &b, 2);
    } else if (type == CUDA_R_16BF) {
      const uint16_t b = f32_to_bf16_bits(v);
      v = bf16_bits_to_f32(b);
      std::memcpy(&h.bytes[2 * i], &b, 2);
    } else {
      std::memcpy(&h.bytes[4 * i], &v, 4);
    }
  }
  return h;
}

float value_at(const std::vector<unsigned char>& bytes, cudaDataType_t type, size_t i) {
  if (type == CUDA_R_32F) {
    float v;
    std::memcpy(&v, &bytes[4 * i], 4);
    return v;
  }
  uint16_t b;
  std::memcpy(&b, &bytes[2 * i], 2);
  return type == CUDA_R_16F ? f16_bits_to_f32(b) : bf16_bits_to_f32(b);
}

struct Layout {
  int64_t rows, cols, ld, stride;
  size_t elements(int batch) const { return static_cast<size_t>(stride * (batch - 1) + ld * (cols - 1) + rows); }
};

Layout layout(int64_t rows, int64_t cols, int64_t pad, const Case& c) {
  const int64_t ld = rows + pad;
  return Layout{rows, cols, ld, ld * cols + c.stride_pad};
}

cublasLtMatrixLayout_t make_layout(const Layout& l, cudaDataType_t type, int batch) {
  cublasLtMatrixLayout_t desc = nullptr;
  LLM_CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&desc, type, static_cast<uint64_t>(l.rows), static_cast<uint64_t>(l.cols), l.ld));
  const int32_t count = batch;
  LLM_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
  const int64_t stride = l.stride;
  LLM_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(desc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
  return desc;
}

bool has_bias(cublasLtEpilogue_t e) { return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS; }

void run_case(const Case& c) {
  SCOPED_TRACE(cat("m=", c.m, " n=", c.n, " k=", c.k, " ta=", c.ta, " tb=", c.tb, " batch=", c.batch,
                   " ab=", static_cast<int>(c.ab), " cd=", static_cast<int>(c.cd), " epilogue=",
                   static_cast<unsigned>(c.epilogue), " alpha=", c.alpha, " beta=", c.beta, " in_place=", c.in_place));
  auto g = rng();
  const Layout la = layout(c.ta ? c.k : c.m, c.ta ? c.m : c.k, c.pad_a, c);
  const Layout lb = layout(c.tb ? c.n : c.k, c.tb ? c.k : c.n, c.pad_b, c);
  const Layout lc = layout(c.m, c.n, c.in_place ? c.pad_d : c.pad_c, c);
  const Layout ld = layout(c.m, c.n, c.pad_d, c);
  const HostMatrix a = make_matrix(g, c.ab, la.elements(c.batch));
  const HostMatrix b = make_matrix(g, c.ab, lb.elements(c.batch));
  const HostMatrix cm = make_matrix(g, c.cd, lc.elements(c.batch));
  const HostMatrix d0 = c.in_place ? cm : make_matrix(g, c.cd, ld.elements(c.batch));
  const bool bgrad_a = c.epilogue == CUBLASLT_EPILOGUE_BGRADA, bgrad_b = c.epilogue == CUBLASLT_EPILOGUE_BGRADB;
  const int64_t bias_len = bgrad_b ? c.n : c.m;
  const HostMatrix bias = make_matrix(g, c.cd, static_cast<size_t>(bias_len));

  DeviceBuffer<unsigned char> da(a.bytes), db(b.bytes), dc(cm.bytes), dd(d0.bytes), dbias(bias.bytes);
  unsigned char* c_ptr = dc.get();
  unsigned char* d_ptr = c.in_place ? dc.get() : dd.get();

  cublasLtHandle_t handle = nullptr;
  LLM_CUBLAS_CHECK(cublasLtCreate(&handle));
  cublasLtMatmulDesc_t op = nullptr;
  LLM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const int32_t ta = c.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = c.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  const uint32_t epilogue = c.epilogue;
  LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  if (epilogue != CUBLASLT_EPILOGUE_DEFAULT && epilogue != CUBLASLT_EPILOGUE_RELU) {
    const void* bias_ptr = dbias.get();
    LLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias_ptr, sizeof bias_ptr));
  }
  cublasLtMatrixLayout_t ad = make_layout(la, c.ab, c.batch), bd = make_layout(lb, c.ab, c.batch);
  cublasLtMatrixLayout_t cdsc = make_layout(lc, c.cd, c.batch), dds = make_layout(ld, c.cd, c.batch);
  cublasLtMatmulPreference_t pref = nullptr;
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  LLM_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle, op, ad, bd, cdsc, dds, pref, 1, &result, &found));
  ASSERT_EQ(found, 1);
  LLM_CUBLAS_CHECK(cublasLtMatmul(handle, op, &c.alpha, da.get(), ad, db.get(), bd, &c.beta, c_ptr, cdsc, d_ptr, dds,
                                  &result.algo, nullptr, 0, nullptr));
  LLM_CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<unsigned char> out = c.in_place ? dc.download() : dd.download();
  const std::vector<unsigned char> bias_out = dbias.download();

  // The reference, in double: element (r, col) of a column-major matrix is at r + col * ld.
  const double tol = c.cd == CUDA_R_32F ? 1e-5 : 1e-2;
  for (int bt = 0; bt < c.batch; ++bt) {
    for (int64_t col = 0; col < c.n; ++col) {
      for (int64_t r = 0; r < c.m; ++r) {
        double acc = 0, mass = 0;
        for (int64_t l = 0; l < c.k; ++l) {
          const double av = a.values[static_cast<size_t>(bt * la.stride + (c.ta ? l + r * la.ld : r + l * la.ld))];
          const double bv = b.values[static_cast<size_t>(bt * lb.stride + (c.tb ? col + l * lb.ld : l + col * lb.ld))];
          acc += av * bv;
          mass += std::abs(av * bv);
        }
        const double cv = cm.values[static_cast<size_t>(bt * lc.stride + r + col * lc.ld)];
        double want = c.alpha * acc + c.beta * cv;
        mass = std::abs(c.alpha) * mass + std::abs(c.beta * cv);
        if (has_bias(c.epilogue)) {
          want += bias.values[static_cast<size_t>(r)];
          mass += std::abs(bias.values[static_cast<size_t>(r)]);
        }
        if (c.epilogue == CUBLASLT_EPILOGUE_RELU || c.epilogue == CUBLASLT_EPILOGUE_RELU_BIAS)
          want = std::max(want, 0.0);
        const double got = value_at(out, c.cd, static_cast<size_t>(bt * ld.stride + r + col * ld.ld));
        ASSERT_LE(std::abs(got - want), tol * std::max(mass, 1e-3))
            << "batch " << bt << " (" << r << ", " << col << ")";
      }
    }
    // Elements between columns (ld > rows) and between batches must be untouched.
    for (size_t i = 0; i < ld.elements(c.batch); ++i) {
      const int64_t within = static_cast<int64_t>(i) % ld.stride;
      const bool inside = static_cast<int64_t>(i) / ld.stride < c.batch && within % ld.ld < c.m && within / ld.ld < c.n;
      if (!inside) {
        ASSERT_EQ(value_at(out, c.cd, i), d0.values[i]) << "padding element " << i << " was written";
      }
    }
  }
  if (bgrad_a || bgrad_b) {  // one batch: the sum over k of op(A)'s rows or op(B)'s columns
    for (int64_t j = 0; j < bias_len; ++j) {
      double want = 0, mass = 0;
      for (int64_t l = 0; l < c.k; ++l) {
        const double v = bgrad_a ? a.values[static_cast<size_t>(c.ta ? l + j * la.ld : j + l * la.ld)]
                                 : b.values[static_cast<size_t>(c.tb ? j + l * lb.ld : l + j * lb.ld)];
        want += v;
        mass += std::abs(v);
      }
      ASSERT_LE(std::abs(value_at(bias_out, c.cd, static_cast<size_t>(j)) - want), tol * std::max(mass, 1e-3))
          << "bias gradient " << j;
    }
  }
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  for (auto* l : {ad, bd, cdsc, dds}) LLM_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(l));
  LLM_CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
  LLM_CUBLAS_CHECK(cublasLtDestroy(handle));
}

TEST(CudaCublasLt, TransposesAndLeadingDimensionsInEveryType) {
  LLM_REQUIRE_CUDA_DEVICE();
  const std::pair<cudaDataType_t, cudaDataType_t> types[] = {{CUDA_R_32F, CUDA_R_32F},
                                                             {CUDA_R_16F, CUDA_R_16F},
                                                             {CUDA_R_16F, CUDA_R_32F},
                                                             {CUDA_R_16BF, CUDA_R_16BF},
                                                             {CUDA_R_16BF, CUDA_R_32F}};
  for (const auto& [ab, cd] : types) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        Case c;
        c.m = 13;
        c.n = 7;
        c.k = 19;
        c.ta = ta;
        c.tb = tb;
        c.pad_a = 3;
        c.pad_b = 1;
        c.pad_c = 2;
        c.pad_d = 5;
        c.ab = ab;
        c.cd = cd;
        c.alpha = 0.75f;
        c.beta = 0.5f;
        run_case(c);
      }
    }
  }
}

TEST(CudaCublasLt, StridedBatchesAndInPlace) {
  LLM_REQUIRE_CUDA_DEVICE();
  for (const bool in_place : {false, true}) {
    Case c;
    c.m = 8;
    c.n = 5;
    c.k = 6;
    c.tb = true;
    c.pad_a = 2;
    c.pad_d = 1;
    c.batch = 3;
    c.stride_pad = 4;
    c.beta = 1.0f;
    c.in_place = in_place;
    c.ab = CUDA_R_16BF;
    c.cd = CUDA_R_16BF;
    run_case(c);
  }
}

TEST(CudaCublasLt, BiasAndReluEpilogues) {
  LLM_REQUIRE_CUDA_DEVICE();
  for (const cublasLtEpilogue_t e : {CUBLASLT_EPILOGUE_BIAS, CUBLASLT_EPILOGUE_RELU, CUBLASLT_EPILOGUE_RELU_BIAS}) {
    for (const cudaDataType_t t : {CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F}) {
      Case c;
      c.m = 24;  // the linear-layer shape: y^T [out, N] = W [out, in] . x^T [in, N]
      c.n = 10;
      c.k = 16;
      c.ta = true;
      c.ab = t;
      c.cd = t;
      c.epilogue = e;
      run_case(c);
    }
  }
}

TEST(CudaCublasLt, BiasGradientEpilogues) {
  LLM_REQUIRE_CUDA_DEVICE();
  for (const cublasLtEpilogue_t e : {CUBLASLT_EPILOGUE_BGRADA, CUBLASLT_EPILOGUE_BGRADB}) {
    Case c;
    c.m = 16;
    c.n = 24;
    c.k = 32;
    c.tb = true;
    c.ab = CUDA_R_16BF;
    c.cd = CUDA_R_16BF;
    c.epilogue = e;
    run_case(c);
  }
}

// Inconsistent descriptors are refused with cuBLASLt's status codes, before anything runs.
TEST(CudaCublasLt, BadLayoutsAreRefused) {
  LLM_REQUIRE_CUDA_DEVICE();
  cublasLtHandle_t handle = nullptr;
  LLM_CUBLAS_CHECK(cublasLtCreate(&handle));
  cublasLtMatmulDesc_t op = nullptr;
  LLM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasLtMatmulPreference_t pref = nullptr;
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  auto heuristic = [&](int64_t lda, int64_t a_cols) {
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    LLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_32F, 8, static_cast<uint64_t>(a_cols), lda));
    LLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_32F, 4, 5, 4));
    LLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c, CUDA_R_32F, 8, 5, 8));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(handle, op, a, b, c, c, pref, 1, &result, &found);
    for (auto* l : {a, b, c}) LLM_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(l));
    return s;
  };
  EXPECT_EQ(heuristic(8, 4), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(heuristic(7, 4), CUBLAS_STATUS_INVALID_VALUE);  // ld < rows
  EXPECT_EQ(heuristic(8, 3), CUBLAS_STATUS_INVALID_VALUE);  // k of A != k of B
  LLM_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  LLM_CUBLAS_CHECK(cublasLtMatmulDescDestroy(op));
  LLM_CUBLAS_CHECK(cublasLtDestroy(handle));
}

}  // namespace
}  // namespace llm::test
