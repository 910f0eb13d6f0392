// One cuBLASLt GEMM with its plan (descriptor, layouts, algorithm) cached, shared by matmul and
// cross_entropy, so a training step runs cuBLASLt's heuristic once per distinct GEMM and never
// per call.
//
// Stated in cuBLASLt's own terms: column-major operands as stored (rows, cols, leading
// dimension), D = alpha * op(A) @ op(B) + beta * D (+ bias [rows(D)] added to every column of D).
// Plans are keyed by the GPU architecture, the transposes, every operand's type, shape, leading
// dimension and pointer alignment (the heuristic is told each pointer's actual alignment:
// cuBLASLt assumes 256 bytes otherwise, and a column block of a fused buffer is often only
// 2-byte aligned), and whether a bias epilogue is wanted.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "backend/cuda/cuda_backend.h"

namespace llm::LLM_CUDA_NS {

// A column-major matrix as stored: rows x cols, leading dimension ld (elements).
struct LtOperand {
  const void* ptr = nullptr;
  DType type = DType::F32;
  int64_t rows = 0, cols = 0, ld = 0;
};

struct LtGemm {
  bool trans_a = false, trans_b = false;
  LtOperand a, b, d;           // d is also C (read when beta != 0)
  const void* bias = nullptr;  // of d's type, 16-byte aligned; nullptr: none
};

// Runs g on the backend's stream with fp32 compute (no TF32: results match the CPU's fp32).
// Returns whether the bias was added by cuBLASLt's epilogue; false with a bias means no algorithm
// had the epilogue and the caller must add the bias itself. `what` describes the GEMM in the
// caller's terms for the error when cuBLASLt has no algorithm at all.
bool lt_matmul(const CudaBackend& be, const LtGemm& g, float alpha, float beta,
               const std::function<std::string()>& what);

}  // namespace llm::LLM_CUDA_NS
