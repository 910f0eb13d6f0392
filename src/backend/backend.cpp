// Backend's public ops: each checks that its tensors live on this backend's device, checks its
// arguments once (src/backend/op_checks.h), skips the work that is empty on every backend, and
// calls the backend's do_<op>.
#include "llm/backend.h"

#include "backend/op_checks.h"

namespace llm {

void Backend::check_devices(const char* op,
                            std::initializer_list<std::pair<const Tensor*, const char*>> tensors) const {
  const DeviceKind dev = device();
  for (const auto& [t, what] : tensors) check_device(*t, dev, op, what);
}

// ---- memory -----------------------------------------------------------------------------------------

void Backend::upload(const Tensor& dst, const void* host_src) {
  check_devices("upload", {{&dst, "dst"}});
  check_upload(dst);
  if (dst.nbytes() == 0) return;
  do_upload(dst, host_src);
}

void Backend::download(const Tensor& src, void* host_dst) {
  check_devices("download", {{&src, "src"}});
  check_download(src);
  if (src.nbytes() == 0) return;
  do_download(src, host_dst);
}

void Backend::copy(const Tensor& src, const Tensor& dst) {
  check_devices("copy", {{&src, "src"}, {&dst, "dst"}});
  check_copy(src, dst);
  if (src.numel() == 0) return;
  do_copy(src, dst);
}

void Backend::zero(const Tensor& t) {
  check_devices("zero", {{&t, "t"}});
  check_zero(t);
  if (t.nbytes() == 0) return;
  do_zero(t);
}

void Backend::fill(const Tensor& t, float value) {
  check_devices("fill", {{&t, "t"}});
  check_fill(t);
  if (t.numel() == 0) return;
  do_fill(t, value);
}

// ---- embedding ----------------------------------------------------------------------------------------

void Backend::embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) {
  check_devices("embedding_forward", {{&ids, "ids"}, {&table, "table"}, {&out, "out"}});
  check_embedding_forward(ids, table, out);
  do_embedding_forward(ids, table, out);
}

void Backend::embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable) {
  check_devices("embedding_backward", {{&ids, "ids"}, {&dout, "dout"}, {&dtable, "dtable"}});
  check_embedding_backward(ids, dout, dtable, 0, dtable.size(0));
  do_embedding_backward(ids, dout, dtable, 0, dtable.size(0));
}

void Backend::embedding_backward_rows(const Tensor& ids, const Tensor& dout, const Tensor& dtable_rows, int64_t row0,
                                      int64_t vocab) {
  check_devices("embedding_backward", {{&ids, "ids"}, {&dout, "dout"}, {&dtable_rows, "dtable"}});
  check_embedding_backward(ids, dout, dtable_rows, row0, vocab);
  do_embedding_backward(ids, dout, dtable_rows, row0, vocab);
}

// ---- RMSNorm --------------------------------------------------------------------------------------------

void Backend::rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) {
  check_devices("rmsnorm_forward", {{&x, "x"}, {&w, "w"}, {&y, "y"}, {&rstd, "rstd"}});
  check_rmsnorm_forward(x, w, y, rstd);
  do_rmsnorm_forward(x, w, eps, y, rstd);
}

void Backend::add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float eps, const Tensor& s,
                                  const Tensor& y, const Tensor& rstd) {
  check_devices("add_rmsnorm_forward", {{&a, "a"}, {&b, "b"}, {&w, "w"}, {&s, "s"}, {&y, "y"}, {&rstd, "rstd"}});
  check_add_rmsnorm_forward(a, b, w, s, y, rstd);
  do_add_rmsnorm_forward(a, b, w, eps, s, y, rstd);
}

void Backend::rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx,
                               const Tensor& dw, bool accumulate_dx) {
  check_devices("rmsnorm_backward", {{&dy, "dy"}, {&x, "x"}, {&w, "w"}, {&rstd, "rstd"}, {&dx, "dx"}, {&dw, "dw"}});
  check_rmsnorm_backward(dy, x, w, rstd, dx, dw);
  if (x.size(0) == 0) return;
  do_rmsnorm_backward(dy, x, w, rstd, dx, dw, accumulate_dx);
}

// ---- linear algebra -------------------------------------------------------------------------------------

void Backend::matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, float alpha,
                     float beta, const Tensor* bias) {
  check_devices("matmul", {{&a, "a"}, {&b, "b"}, {&c, "c"}});
  if (bias != nullptr) check_devices("matmul", {{bias, "bias"}});
  check_matmul(a, trans_a, b, trans_b, c, bias);
  if (c.numel() == 0) return;  // c is [M, N]
  do_matmul(a, trans_a, b, trans_b, c, alpha, beta, bias);
}

void Backend::bias_backward(const Tensor& dy, const Tensor& db) {
  check_devices("bias_backward", {{&dy, "dy"}, {&db, "db"}});
  check_bias_backward(dy, db);
  if (dy.numel() == 0) return;
  do_bias_backward(dy, db);
}

// ---- rope, attention ------------------------------------------------------------------------------------

void Backend::rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0, bool inverse,
                   const Tensor& positions) {
  check_devices("rope", {{&x, "x"}, {&cos, "cos"}, {&sin, "sin"}, {&positions, "positions"}});
  check_rope(x, cos, sin, pos0);
  check_positions(positions, x.size(0), x.size(1), "rope");
  LLM_CHECK(positions.empty() || pos0 == 0, "rope: pos0 must be 0 with per-token positions, got ", pos0);
  do_rope(x, cos, sin, pos0, inverse, positions);
}

void Backend::attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                                const Tensor& positions) {
  check_devices("attention_forward",
                {{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}, {&lse, "lse"}, {&positions, "positions"}});
  check_attention_forward(q, k, v, out, lse);
  check_positions(positions, q.size(0), q.size(1), "attention_forward");
  LLM_CHECK(positions.empty() || q.size(1) == k.size(1), "attention_forward: document masking (positions) needs as ",
            "many queries as keys, got ", q.size(1), " and ", k.size(1));
  do_attention_forward(q, k, v, out, lse, positions);
}

void Backend::attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                 const Tensor& out, const Tensor& lse, const Tensor& dq, const Tensor& dk,
                                 const Tensor& dv, const Tensor& positions) {
  check_devices("attention_backward", {{&dout, "dout"},
                                       {&q, "q"},
                                       {&k, "k"},
                                       {&v, "v"},
                                       {&out, "out"},
                                       {&lse, "lse"},
                                       {&dq, "dq"},
                                       {&dk, "dk"},
                                       {&dv, "dv"},
                                       {&positions, "positions"}});
  check_attention_backward(dout, q, k, v, out, lse, dq, dk, dv);
  check_positions(positions, q.size(0), q.size(1), "attention_backward");
  do_attention_backward(dout, q, k, v, out, lse, dq, dk, dv, positions);
}

void Backend::decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                               const Tensor& v_cache, const Tensor& pos_dev, int64_t pos, const Tensor& out) {
  check_devices("decode_attention", {{&qkv, "qkv"},
                                     {&cos, "cos"},
                                     {&sin, "sin"},
                                     {&k_cache, "k_cache"},
                                     {&v_cache, "v_cache"},
                                     {&pos_dev, "pos_dev"},
                                     {&out, "out"}});
  check_decode_attention(qkv, cos, sin, k_cache, v_cache, pos_dev, pos, out);
  do_decode_attention(qkv, cos, sin, k_cache, v_cache, pos_dev, pos, out);
}

// ---- SwiGLU, elementwise --------------------------------------------------------------------------------

void Backend::swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  check_devices("swiglu_forward", {{&gate_up, "gate_up"}, {&out, "out"}});
  check_swiglu_forward(gate_up, out);
  do_swiglu_forward(gate_up, out);
}

void Backend::swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  check_devices("swiglu_backward", {{&dout, "dout"}, {&gate_up, "gate_up"}, {&dgate_up, "dgate_up"}});
  check_swiglu_backward(dout, gate_up, dgate_up);
  do_swiglu_backward(dout, gate_up, dgate_up);
}

void Backend::add(const Tensor& a, const Tensor& b, const Tensor& out) {
  check_devices("add", {{&a, "a"}, {&b, "b"}, {&out, "out"}});
  check_add(a, b, out);
  do_add(a, b, out);
}

void Backend::scale(const Tensor& x, float s) {
  check_devices("scale", {{&x, "x"}});
  check_scale(x);
  do_scale(x, s);
}

void Backend::dropout(const Tensor& x, float p, uint64_t seed) {
  check_devices("dropout", {{&x, "x"}});
  LLM_CHECK(x.is_contiguous() && is_float(x.dtype()), "dropout: ", x.shape_str(), " must be a contiguous float tensor");
  LLM_CHECK(p >= 0.0f && p < 1.0f, "dropout: p must be in [0, 1), got ", p);
  do_dropout(x, p, seed);
}

// ---- output layer and loss ------------------------------------------------------------------------------

void Backend::cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses,
                            const Tensor& dh, const Tensor& dw, float grad_scale, int64_t chunk_tokens,
                            const Tensor& stats, int64_t row_block) {
  check_devices(
      "cross_entropy",
      {{&h, "h"}, {&w, "w"}, {&targets, "targets"}, {&losses, "losses"}, {&dh, "dh"}, {&dw, "dw"}, {&stats, "stats"}});
  check_cross_entropy(h, w, targets, losses, dh, dw, chunk_tokens, stats, row_block);
  if (h.size(0) == 0) return;
  do_cross_entropy(h, w, targets, losses, dh, dw, grad_scale, chunk_tokens, stats, row_block);
}

void Backend::cross_entropy_dw(const Tensor& h, const Tensor& w_rows, int64_t row0, const Tensor& targets,
                               const Tensor& stats, const Tensor& dw_rows, float grad_scale, int64_t chunk_tokens,
                               int64_t row_block) {
  check_devices("cross_entropy_dw",
                {{&h, "h"}, {&w_rows, "w_rows"}, {&targets, "targets"}, {&stats, "stats"}, {&dw_rows, "dw_rows"}});
  check_cross_entropy_dw(h, w_rows, row0, targets, stats, dw_rows, chunk_tokens, row_block);
  if (h.size(0) == 0 || w_rows.size(0) == 0) return;
  do_cross_entropy_dw(h, w_rows, row0, targets, stats, dw_rows, grad_scale, chunk_tokens, row_block);
}

// ---- quantization ----------------------------------------------------------------------------------------

void Backend::quantize(const Tensor& w, const QuantizedMatrix& out) {
  check_devices("quantize", {{&w, "w"}, {&out.data, "the quantized data"}, {&out.scales, "the scales"}});
  check_quantize(w, out);
  if (out.rows == 0 || out.cols == 0) return;
  do_quantize(w, out);
}

void Backend::quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias) {
  check_devices("quant_matmul", {{&x, "x"}, {&w.data, "the quantized data"}, {&w.scales, "the scales"}, {&y, "y"}});
  if (bias != nullptr) check_devices("quant_matmul", {{bias, "bias"}});
  check_quant_matmul(x, w, y, bias);
  if (x.size(0) == 0 || w.rows == 0) return;
  do_quant_matmul(x, w, y, bias);
}

void Backend::quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) {
  check_devices("quant_embedding",
                {{&ids, "ids"}, {&table.data, "the quantized data"}, {&table.scales, "the scales"}, {&out, "out"}});
  check_quant_embedding(ids, table, out);
  if (ids.size(0) == 0) return;
  do_quant_embedding(ids, table, out);
}

// ---- optimizer and reductions ------------------------------------------------------------------------------

void Backend::adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& compute,
                    std::span<const AdamWSegment> segments, const AdamWHyper& hyper) {
  check_devices("adamw", {{&param, "param"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}, {&compute, "compute"}});
  check_adamw(param, grad, m, v, compute, segments, hyper);
  do_adamw(param, grad, m, v, compute, segments, hyper);
}

double Backend::sum(const Tensor& x) {
  check_devices("sum", {{&x, "x"}});
  check_reduce(x, "sum");
  if (x.numel() == 0) return 0.0;
  return do_sum(x);
}

double Backend::sum_squares(const Tensor& x) {
  check_devices("sum_squares", {{&x, "x"}});
  check_reduce(x, "sum_squares");
  if (x.numel() == 0) return 0.0;
  return do_sum_squares(x);
}

}  // namespace llm
