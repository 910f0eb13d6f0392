// The Backend ops' argument checks, once for every backend (see op_checks.h).
#include "backend/op_checks.h"

#include <utility>

namespace llm {

namespace {

const char* device_name(DeviceKind d) { return d == DeviceKind::CUDA ? "CUDA" : "CPU"; }

void check_ids(const Tensor& ids, const char* op) {
  check_dtype(ids, DType::I32, op, "ids");
  LLM_CHECK(ids.ndim() == 1 && ids.is_contiguous(), op, ": ids must be a dense [N] vector, got ", ids.shape_str());
}

// x [N, C] float rows, w [C], rstd [N] f32: the part every RMSNorm op shares.
void check_norm(const Tensor& x, const Tensor& w, const Tensor& rstd, const char* op) {
  check_rows(x, op, "x");
  LLM_CHECK(x.ndim() == 2, op, ": x must be [N, C], got ", x.shape_str());
  check_rows(w, op, "w");
  check_shape(w, {x.size(1)}, op, "w");
  check_dtype(rstd, DType::F32, op, "rstd");
  check_shape(rstd, {x.size(0)}, op, "rstd");
}

// Causal GQA shapes: q, out [B, Tq, Hq, D], k, v [B, Tk, Hkv, D], Hq a multiple of Hkv, Tq <= Tk.
void check_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const char* op) {
  check_heads(q, op, "q");
  check_heads(k, op, "k");
  check_heads(v, op, "v");
  check_heads(out, op, "out");
  const int64_t B = q.size(0), Tq = q.size(1), Tk = k.size(1), Hq = q.size(2), Hkv = k.size(2), D = q.size(3);
  check_shape(v, {B, Tk, Hkv, D}, op, "v");
  check_shape(k, {B, Tk, Hkv, D}, op, "k");
  check_shape(out, {B, Tq, Hq, D}, op, "out");
  LLM_CHECK(Hkv > 0 && Hq % Hkv == 0, op, ": ", Hq, " query heads are not a multiple of ", Hkv, " kv heads");
  LLM_CHECK(Tq <= Tk, op, ": ", Tq, " queries but only ", Tk, " keys");
}

// gate_up [N, 2I] and out (or dout) [N, I], float rows.
void check_swiglu(const Tensor& gate_up, const Tensor& out, const char* op, const char* out_name) {
  check_rows(gate_up, op, "gate_up");
  check_rows(out, op, out_name);
  LLM_CHECK(gate_up.ndim() == 2 && gate_up.size(1) % 2 == 0, op, ": gate_up must be [N, 2I], got ",
            gate_up.shape_str());
  check_shape(out, {gate_up.size(0), gate_up.size(1) / 2}, op, out_name);
}

}  // namespace

// ---- helpers --------------------------------------------------------------------------------------

void check_rows(const Tensor& t, const char* op, const char* what) {
  LLM_CHECK(!t.empty() || t.numel() == 0, op, ": ", what, " has no data");
  LLM_CHECK(t.rows_contiguous(), op, ": ", what, " ", t.shape_str(), " must have dense rows");
  LLM_CHECK(is_float(t.dtype()), op, ": ", what, " is ", dtype_name(t.dtype()), ", expected f32, f16 or bf16");
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* op, const char* an, const char* bn) {
  bool same = a.ndim() == b.ndim();
  for (int d = 0; same && d < a.ndim(); ++d) same = a.size(d) == b.size(d);
  LLM_CHECK(same, op, ": ", an, " ", a.shape_str(), " and ", bn, " ", b.shape_str(), " differ in shape");
}

void check_device(const Tensor& t, DeviceKind device, const char* op, const char* what) {
  LLM_CHECK(t.empty() || t.device() == device, op, ": ", what, " ", t.shape_str(), " is a ", device_name(t.device()),
            " tensor handed to the ", device_name(device), " backend");
}

void check_heads(const Tensor& t, const char* op, const char* what) {
  LLM_CHECK(t.ndim() == 4, op, ": ", what, " must be [B, T, H, D], got ", t.shape_str());
  LLM_CHECK(is_float(t.dtype()) && t.stride(3) == 1, op, ": ", what, " ", t.shape_str(),
            " must be a float tensor with dense heads");
}

void check_quantized(const QuantizedMatrix& w, const char* op) {
  if (w.kind == QuantKind::Ggml) return check_ggml_quantized(w, op);
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
  LLM_CHECK((!w.data.empty() && !w.scales.empty()) || w.rows * w.cols == 0, op, ": the quantized matrix has no data");
}

void check_ggml_quantized(const QuantizedMatrix& w, const char* op) {
  const auto name = ggml_type_name(w.ggml);
  LLM_CHECK(name != "?", op, ": ggml type ", static_cast<uint32_t>(w.ggml),
            " is not one of the supported block formats");
  LLM_CHECK(w.rows >= 0 && w.cols >= 0, op, ": the ", name, " matrix is [", w.rows, ", ", w.cols, "]");
  LLM_CHECK(w.group == ggml_block_elems(w.ggml) && w.cols % w.group == 0, op, ": a ", name, " matrix needs group ",
            ggml_block_elems(w.ggml), " dividing cols ", w.cols, ", got group ", w.group);
  check_dtype(w.data, DType::U8, op, "the ggml blocks");
  check_shape(w.data, {w.rows, static_cast<int64_t>(ggml_row_bytes(w.ggml, w.cols))}, op, "the ggml blocks");
  LLM_CHECK(w.data.rows_contiguous(), op, ": the ggml blocks must have dense rows");
  LLM_CHECK(w.scales.empty(), op, ": a ", name, " matrix keeps its scales in its blocks; scales must be empty");
  LLM_CHECK(!w.data.empty() || w.rows * w.cols == 0, op, ": the ", name, " matrix has no data");
}

// ---- memory -----------------------------------------------------------------------------------------

void check_upload(const Tensor& dst) {
  LLM_CHECK(dst.is_contiguous(), "upload: destination ", dst.shape_str(), " is not contiguous");
}

void check_download(const Tensor& src) {
  LLM_CHECK(src.is_contiguous(), "download: source ", src.shape_str(), " is not contiguous");
}

void check_copy(const Tensor& src, const Tensor& dst) {
  check_same_shape(src, dst, "copy", "src", "dst");
  if (src.numel() == 0) return;  // nothing is read or written
  LLM_CHECK(src.stride(-1) == 1 && dst.stride(-1) == 1, "copy: the last dimension must be dense (src ", src.shape_str(),
            ", dst ", dst.shape_str(), ")");
  LLM_CHECK(src.dtype() == dst.dtype() || (is_float(src.dtype()) && is_float(dst.dtype())), "copy: cannot convert ",
            dtype_name(src.dtype()), " to ", dtype_name(dst.dtype()));
}

void check_zero(const Tensor& t) { LLM_CHECK(t.is_contiguous(), "zero: ", t.shape_str(), " is not contiguous"); }

void check_fill(const Tensor& t) {
  LLM_CHECK(t.is_contiguous(), "fill: ", t.shape_str(), " is not contiguous");
  LLM_CHECK(t.dtype() == DType::I32 || is_float(t.dtype()), "fill: expected a float dtype (f32, f16, bf16), got ",
            dtype_name(t.dtype()));
}

// ---- embedding -------------------------------------------------------------------------------------

void check_embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) {
  const char* op = "embedding_forward";
  check_rows(table, op, "table");
  check_rows(out, op, "out");
  LLM_CHECK(table.ndim() == 2, op, ": table must be [V, C], got ", table.shape_str());
  check_ids(ids, op);
  check_shape(out, {ids.size(0), table.size(1)}, op, "out");
}

void check_embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable, int64_t row0,
                              int64_t vocab) {
  const char* op = "embedding_backward";
  check_rows(dout, op, "dout");
  check_dtype(dtable, DType::F32, op, "dtable");
  LLM_CHECK(dtable.is_contiguous() && dtable.ndim() == 2, op, ": dtable must be a dense [V, C] f32 matrix, got ",
            dtable.shape_str());
  LLM_CHECK(row0 >= 0 && row0 + dtable.size(0) <= vocab, op, ": rows [", row0, ", ", row0 + dtable.size(0),
            ") are not rows of a table of ", vocab);
  check_ids(ids, op);
  check_shape(dout, {ids.size(0), dtable.size(1)}, op, "dout");
}

// ---- RMSNorm ----------------------------------------------------------------------------------------

void check_rmsnorm_forward(const Tensor& x, const Tensor& w, const Tensor& y, const Tensor& rstd) {
  const char* op = "rmsnorm_forward";
  check_norm(x, w, rstd, op);
  check_rows(y, op, "y");
  check_same_shape(x, y, op, "x", "y");
}

void check_add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, const Tensor& s, const Tensor& y,
                               const Tensor& rstd) {
  const char* op = "add_rmsnorm_forward";
  check_norm(a, w, rstd, op);
  check_rows(b, op, "b");
  check_rows(s, op, "s");
  check_rows(y, op, "y");
  check_same_shape(a, b, op, "a", "b");
  check_same_shape(a, s, op, "a", "s");
  check_same_shape(a, y, op, "a", "y");
}

void check_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx,
                            const Tensor& dw) {
  const char* op = "rmsnorm_backward";
  check_norm(x, w, rstd, op);
  check_rows(dy, op, "dy");
  check_rows(dx, op, "dx");
  check_same_shape(x, dy, op, "x", "dy");
  check_same_shape(x, dx, op, "x", "dx");
  check_dtype(dw, DType::F32, op, "dw");
  check_shape(dw, {x.size(1)}, op, "dw");
}

// ---- linear algebra ---------------------------------------------------------------------------------

void check_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, const Tensor* bias) {
  const char* op = "matmul";
  LLM_CHECK(a.ndim() == 2 && b.ndim() == 2 && c.ndim() == 2, op, ": a, b, c must be 2-D, got ", a.shape_str(), ", ",
            b.shape_str(), ", ", c.shape_str());
  const int64_t M = trans_a ? a.size(1) : a.size(0);
  const int64_t K = trans_a ? a.size(0) : a.size(1);
  const int64_t Kb = trans_b ? b.size(1) : b.size(0);
  const int64_t N = trans_b ? b.size(0) : b.size(1);
  LLM_CHECK(K == Kb, op, ": inner dimensions differ: op(a) is [", M, ", ", K, "], op(b) is [", Kb, ", ", N, "]");
  check_shape(c, {M, N}, op, "c");
  check_rows(c, op, "c");
  if (bias != nullptr) {
    check_rows(*bias, op, "bias");
    check_shape(*bias, {N}, op, "bias");
  }
  if (M == 0 || N == 0) return;  // the operands are not read
  check_rows(a, op, "a");
  check_rows(b, op, "b");
}

void check_bias_backward(const Tensor& dy, const Tensor& db) {
  const char* op = "bias_backward";
  check_rows(dy, op, "dy");
  LLM_CHECK(dy.ndim() == 2, op, ": dy must be [N, C], got ", dy.shape_str());
  check_dtype(db, DType::F32, op, "db");
  check_shape(db, {dy.size(1)}, op, "db");
}

// ---- rope -------------------------------------------------------------------------------------------

void check_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0) {
  const char* op = "rope";
  LLM_CHECK(x.ndim() == 4, op, ": x must be [B, T, H, D], got ", x.shape_str());
  LLM_CHECK(is_float(x.dtype()) && x.stride(3) == 1, op, ": x ", x.shape_str(),
            " must be a float tensor with dense heads");
  const int64_t T = x.size(1), D = x.size(3), half = D / 2;
  LLM_CHECK(D % 2 == 0, op, ": head_dim ", D, " must be even");
  check_dtype(cos, DType::F32, op, "cos");
  check_dtype(sin, DType::F32, op, "sin");
  LLM_CHECK(cos.ndim() == 2 && cos.size(1) == half && cos.is_contiguous(), op, ": cos must be [P, ", half, "], got ",
            cos.shape_str());
  check_shape(sin, {cos.size(0), half}, op, "sin");
  LLM_CHECK(pos0 >= 0 && pos0 + T <= cos.size(0), op, ": positions [", pos0, ", ", pos0 + T,
            ") exceed the rotary table of ", cos.size(0), " positions");
  LLM_CHECK(sin.is_contiguous(), op, ": sin ", sin.shape_str(), " must be contiguous");
}

void check_positions(const Tensor& positions, int64_t B, int64_t T, const char* op) {
  if (positions.empty()) return;
  check_dtype(positions, DType::I32, op, "positions");
  check_shape(positions, {B, T}, op, "positions");
  LLM_CHECK(positions.is_contiguous(), op, ": positions must be contiguous");
}

// ---- attention --------------------------------------------------------------------------------------

void check_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse) {
  const char* op = "attention_forward";
  check_attention(q, k, v, out, op);
  if (!lse.empty()) {
    check_dtype(lse, DType::F32, op, "lse");
    check_shape(lse, {q.size(0), q.size(2), q.size(1)}, op, "lse");
    LLM_CHECK(lse.is_contiguous(), op, ": lse must be contiguous");
  }
}

void check_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& dq, const Tensor& dk, const Tensor& dv) {
  const char* op = "attention_backward";
  check_attention(q, k, v, out, op);
  const int64_t B = q.size(0), T = q.size(1), Tk = k.size(1), Hq = q.size(2), Hkv = k.size(2), D = q.size(3);
  LLM_CHECK(T == Tk, op, ": the backward needs as many queries as keys (", T, " vs ", Tk, ")");
  check_heads(dout, op, "dout");
  check_heads(dq, op, "dq");
  check_heads(dk, op, "dk");
  check_heads(dv, op, "dv");
  check_shape(dout, {B, T, Hq, D}, op, "dout");
  check_shape(dq, {B, T, Hq, D}, op, "dq");
  check_shape(dk, {B, T, Hkv, D}, op, "dk");
  check_shape(dv, {B, T, Hkv, D}, op, "dv");
  check_dtype(lse, DType::F32, op, "lse");
  check_shape(lse, {B, Hq, T}, op, "lse");
  LLM_CHECK(lse.is_contiguous(), op, ": lse must be contiguous");
}

// ---- SwiGLU, elementwise ------------------------------------------------------------------------------

void check_swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  check_swiglu(gate_up, out, "swiglu_forward", "out");
}

void check_swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  const char* op = "swiglu_backward";
  check_swiglu(gate_up, dout, op, "dout");
  check_rows(dgate_up, op, "dgate_up");
  check_same_shape(gate_up, dgate_up, op, "gate_up", "dgate_up");
}

void check_add(const Tensor& a, const Tensor& b, const Tensor& out) {
  const char* op = "add";
  check_same_shape(a, b, op, "a", "b");
  check_same_shape(a, out, op, "a", "out");
  for (const Tensor* t : {&a, &b, &out}) {
    LLM_CHECK(t->is_contiguous() && is_float(t->dtype()), op, ": ", t->shape_str(),
              " must be a contiguous float tensor");
  }
}

void check_scale(const Tensor& x) {
  LLM_CHECK(x.is_contiguous() && is_float(x.dtype()), "scale: ", x.shape_str(), " must be a contiguous float tensor");
}

// ---- output layer and loss ------------------------------------------------------------------------------

namespace {

// What both output-layer ops take: h [N, C], w [rows, C], targets [N] i32, the f32 gradient g
// [rows, C] (when given), stats [N, 2] f32 (when given), chunk_tokens and row_block.
void check_output_layer(const char* op, const Tensor& h, const Tensor& w, const char* w_name, const char* rows,
                        const Tensor& targets, const Tensor& g, const char* g_name, const Tensor& stats,
                        int64_t chunk_tokens, int64_t row_block) {
  check_rows(h, op, "h");
  check_rows(w, op, w_name);
  LLM_CHECK(h.ndim() == 2 && w.ndim() == 2 && h.size(1) == w.size(1), op, ": h ", h.shape_str(), " and ", w_name, " ",
            w.shape_str(), " must be [N, C] and [", rows, ", C]");
  const int64_t N = h.size(0), C = h.size(1);
  check_dtype(targets, DType::I32, op, "targets");
  check_shape(targets, {N}, op, "targets");
  if (!g.empty()) {
    check_dtype(g, DType::F32, op, g_name);
    check_shape(g, {w.size(0), C}, op, g_name);
    LLM_CHECK(g.is_contiguous(), op, ": ", g_name, " must be contiguous");
  }
  if (!stats.empty()) {
    check_dtype(stats, DType::F32, op, "stats");
    check_shape(stats, {N, 2}, op, "stats");
    LLM_CHECK(stats.is_contiguous(), op, ": stats must be contiguous");
  }
  LLM_CHECK(chunk_tokens >= 0, op, ": chunk_tokens must be >= 0 (0: the backend's default), got ", chunk_tokens);
  LLM_CHECK(row_block >= 0, op, ": row_block must be >= 0 (0: all rows), got ", row_block);
}

}  // namespace

void check_cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses,
                         const Tensor& dh, const Tensor& dw, int64_t chunk_tokens, const Tensor& stats,
                         int64_t row_block) {
  const char* op = "cross_entropy";
  check_output_layer(op, h, w, "w", "V", targets, dw, "dw", stats, chunk_tokens, row_block);
  const int64_t N = h.size(0), C = h.size(1);
  check_dtype(losses, DType::F32, op, "losses");
  check_shape(losses, {N}, op, "losses");
  if (!dh.empty()) {
    check_rows(dh, op, "dh");
    check_shape(dh, {N, C}, op, "dh");
  }
}

void check_cross_entropy_dw(const Tensor& h, const Tensor& w_rows, int64_t row0, const Tensor& targets,
                            const Tensor& stats, const Tensor& dw_rows, int64_t chunk_tokens, int64_t row_block) {
  const char* op = "cross_entropy_dw";
  LLM_CHECK(!stats.empty() && !dw_rows.empty(), op, ": stats and dw_rows are required");
  check_output_layer(op, h, w_rows, "w_rows", "R", targets, dw_rows, "dw_rows", stats, chunk_tokens, row_block);
  LLM_CHECK(row0 >= 0, op, ": row0 must be >= 0, got ", row0);
  LLM_CHECK(row_block == 0 || row0 % row_block == 0, op, ": row0 ", row0, " does not start a block of ", row_block,
            " rows");
}

// ---- quantization -----------------------------------------------------------------------------------------

void check_quantize(const Tensor& w, const QuantizedMatrix& out) {
  const char* op = "quantize";
  LLM_CHECK(out.kind != QuantKind::Ggml, op, ": writes int8 or int4 matrices, not ggml ", ggml_type_name(out.ggml),
            " blocks");
  check_quantized(out, op);
  check_rows(w, op, "w");
  check_shape(w, {out.rows, out.cols}, op, "w");
}

void check_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias) {
  const char* op = "quant_matmul";
  check_quantized(w, op);
  check_rows(x, op, "x");
  check_rows(y, op, "y");
  LLM_CHECK(x.ndim() == 2, op, ": x must be [N, ", w.cols, "], got ", x.shape_str());
  LLM_CHECK(x.size(1) == w.cols, op, ": x is ", x.shape_str(), ", expected [N, ", w.cols,
            "] (the quantized matrix has ", w.cols, " columns)");
  check_shape(y, {x.size(0), w.rows}, op, "y");
  if (bias != nullptr) {
    check_rows(*bias, op, "bias");
    check_shape(*bias, {w.rows}, op, "bias");
  }
}

void check_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) {
  const char* op = "quant_embedding";
  check_quantized(table, op);
  check_ids(ids, op);
  check_rows(out, op, "out");
  check_shape(out, {ids.size(0), table.cols}, op, "out");
}

// ---- optimizer and reductions -------------------------------------------------------------------------------

void check_adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& compute,
                 std::span<const AdamWSegment> segments, const AdamWHyper& hyper) {
  const char* op = "adamw";
  for (const auto& [t, what] : {std::pair{&param, "param"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}}) {
    check_dtype(*t, DType::F32, op, what);
    LLM_CHECK(t->is_contiguous() && t->numel() == param.numel(), op, ": ", what, " ", t->shape_str(),
              " must be a contiguous buffer of ", param.numel(), " elements");
  }
  if (adamw_writes_compute(param, compute)) {
    LLM_CHECK(compute.is_contiguous() && compute.numel() == param.numel() && is_float(compute.dtype()), op,
              ": compute ", compute.shape_str(), " must be a contiguous float buffer of ", param.numel(), " elements");
  }
  LLM_CHECK(hyper.step >= 1, op, ": step must be >= 1, got ", hyper.step);
  const int64_t P = param.numel();
  for (const AdamWSegment& s : segments) {
    LLM_CHECK(s.offset >= 0 && s.count >= 0 && s.offset + s.count <= P, op, ": segment [", s.offset, ", ",
              s.offset + s.count, ") is outside the ", P, " parameters");
  }
}

void check_reduce(const Tensor& x, const char* op) {
  LLM_CHECK(x.is_contiguous() && is_float(x.dtype()), op, ": ", x.shape_str(), " must be a contiguous float tensor");
}

// ---- one decode step -------------------------------------------------------------------------------------

void check_decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                            const Tensor& v_cache, const Tensor& pos_dev, int64_t pos, const Tensor& out) {
  const char* op = "decode_attention";
  check_heads(qkv, op, "qkv");
  check_heads(k_cache, op, "k_cache");
  const int64_t Hkv = k_cache.size(2), P = k_cache.size(1), D = k_cache.size(3), Hq = qkv.size(2) - 2 * Hkv;
  LLM_CHECK(Hkv > 0 && Hq > 0 && Hq % Hkv == 0, op, ": qkv ", qkv.shape_str(), " does not hold Hq + 2 Hkv heads for ",
            Hkv, " kv heads");
  check_shape(qkv, {1, 1, Hq + 2 * Hkv, D}, op, "qkv");
  check_shape(k_cache, {1, P, Hkv, D}, op, "k_cache");
  LLM_CHECK(v_cache.ndim() == 4 && v_cache.stride(1) == k_cache.stride(1) && v_cache.stride(2) == k_cache.stride(2), op,
            ": v_cache ", v_cache.shape_str(), " must be laid out as k_cache ", k_cache.shape_str());
  check_attention(qkv.slice(2, 0, Hq), k_cache, v_cache, out, op);
  for (const Tensor* t : {&cos, &sin}) {
    check_dtype(*t, DType::F32, op, "cos/sin");
    LLM_CHECK(t->ndim() == 2 && t->size(0) >= P && t->size(1) == D / 2 && t->is_contiguous(), op,
              ": cos and sin must be [P >= ", P, ", ", D / 2, "], got ", t->shape_str());
  }
  check_dtype(pos_dev, DType::I32, op, "pos_dev");
  LLM_CHECK(pos_dev.numel() == 1 && pos_dev.is_contiguous(), op, ": pos_dev must hold one i32, got ",
            pos_dev.shape_str());
  LLM_CHECK(pos >= 0 && pos < P, op, ": position ", pos, " is outside the cache of ", P, " positions");
}

}  // namespace llm
