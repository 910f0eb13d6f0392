// The argument checks of the Backend ops, shared by every backend: each public op
// (src/backend/backend.cpp) checks that its tensors live on the backend's device, calls its
// check_<op> here once, and then the backend's do_<op>. A check throws llm::Error with a message
// that starts with the op's name; it reads shapes, dtypes and strides, never tensor data (ids and
// targets live on the device: their range is checked by each backend's do_<op>).
//
// Where the CPU and CUDA implementations used to check differently, these are the union: every
// backend may rely on all of them.
#pragma once

#include <cstdint>
#include <span>

#include "llm/backend.h"

namespace llm {

// ---- helpers (also used by the backends' own code) ------------------------------------------------
// A float tensor whose rows are dense (the last dims contiguous) so an op can walk them.
void check_rows(const Tensor& t, const char* op, const char* what);
void check_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* an, const char* bn);
// t is empty or lives on `device` (the backend's).
void check_device(const Tensor& t, DeviceKind device, const char* op, const char* what);
// t is [B, T, H, D], float, with dense heads.
void check_heads(const Tensor& t, const char* op, const char* what);
// A QuantizedMatrix against the layout in backend.h.
void check_quantized(const QuantizedMatrix& w, const char* op);
// A QuantKind::Ggml matrix: its type, block size and byte rows.
void check_ggml_quantized(const QuantizedMatrix& w, const char* op);

// ---- one per op (arguments as the op takes them) ---------------------------------------------------
void check_upload(const Tensor& dst);
void check_download(const Tensor& src);
void check_copy(const Tensor& src, const Tensor& dst);
void check_zero(const Tensor& t);
void check_fill(const Tensor& t);
void check_embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out);
void check_embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable, int64_t row0, int64_t vocab);
void check_rmsnorm_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& rstd);
void check_add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& s, const Tensor& y,
                               const Tensor& rstd);
void check_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx,
                            const Tensor& dw);
void check_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, const Tensor* bias);
void check_bias_backward(const Tensor& dy, const Tensor& db);
void check_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0);
// positions: empty, or a contiguous i32 [B, T] (document masking, per-token RoPE positions).
void check_positions(const Tensor& positions, int64_t B, int64_t T, const char* op);
void check_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse);
void check_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& dq, const Tensor& dk, const Tensor& dv);
void check_swiglu_forward(const Tensor& gate_up, const Tensor& out);
void check_swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);
void check_add(const Tensor& a, const Tensor& b, const Tensor& out);
void check_scale(const Tensor& x);
void check_cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses,
                         const Tensor& dh, const Tensor& dw, int64_t chunk_tokens, const Tensor& stats,
                         int64_t row_block);
void check_cross_entropy_dw(const Tensor& h, const Tensor& w_rows, int64_t row0, const Tensor& targets,
                            const Tensor& stats, const Tensor& dw_rows, int64_t chunk_tokens, int64_t row_block);
void check_quantize(const Tensor& w, const QuantizedMatrix& out);
void check_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias);
void check_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out);
void check_adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& compute,
                 std::span<const AdamWSegment> segments, const AdamWHyper& hyper);
// sum and sum_squares (op names the one called).
void check_reduce(const Tensor& x, const char* op);
void check_decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                            const Tensor& v_cache, const Tensor& pos_dev, int64_t pos, const Tensor& out);

// adamw writes the compute copy unless it is empty or is param itself.
inline bool adamw_writes_compute(const Tensor& param, const Tensor& compute) {
  return !compute.empty() && compute.data() != param.data();
}

}  // namespace llm
