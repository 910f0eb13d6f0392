// Backend: the op interface. The model, trainer, optimizer and generation loop are written once
// against it; CpuBackend and CudaBackend differ only in how each op is computed.
//
// Conventions for every op:
//  - Tensors are views: an op writes through the data of the views it is handed as outputs.
//  - Activations are row-major [N, C] (N = B*T) or [B, T, H, D]. Weights are HF's [out, in].
//  - Float inputs may be stored as f32, f16 or bf16; the op computes in fp32 and rounds once
//    when it stores. Reductions (norms, softmax, loss, sums) run in fp32 or wider.
//  - "+=" outputs accumulate into what is there (gradients); other outputs are overwritten.
//  - Errors are llm::Error with a message that starts with the op's name.
//
// Each op is a non-virtual member that checks its arguments once, the same way on every backend
// (src/backend/op_checks.h; every tensor must live on this backend's device), skips work that is
// empty on every backend, and then calls the backend's protected do_<op>. A backend's do_<op>
// holds only the checks its own implementation needs (a kernel's size limits, ids read on the
// device) and the computation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "llm/error.h"
#include "llm/ggml_quant.h"
#include "llm/tensor.h"

namespace llm {

// One run of parameters that share a weight decay, as element offsets in the flat buffers.
struct AdamWSegment {
  int64_t offset = 0;
  int64_t count = 0;
  float weight_decay = 0.0f;
};

struct AdamWHyper {
  float lr = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  int64_t step = 1;         // 1-based, for bias correction
  float grad_scale = 1.0f;  // multiplies each gradient first: 1/loss_scale times the clip factor
};

// A recorded sequence of ops (on CUDA, an instantiated CUDA graph) that replays on the backend
// that recorded it, with the same tensors (pointers, shapes) every time; what differs between
// replays must be in device memory (Backend::decode_attention reads the position from there).
class OpGraph {
 public:
  virtual ~OpGraph() = default;
  virtual void replay() = 0;  // queued on the backend's stream, like any op
};

// Records a sequence of a backend's ops once, to replay it cheaply (Backend::recorder()).
// Between begin() and end() the backend's ops are recorded, not run: they must not read results
// on the host (upload, download, sum, ... are errors then) and must not allocate.
class OpRecorder {
 public:
  virtual ~OpRecorder() = default;
  virtual void begin() = 0;
  // The recorded ops; throws (and leaves recording mode) when the recording failed.
  virtual std::unique_ptr<OpGraph> end() = 0;
  // Leaves recording mode after an error, dropping what was recorded; never throws.
  virtual void abort() noexcept = 0;
};

// A weight-only quantized matrix [rows, cols] (rows = output features), symmetric, one fp32
// scale per `group` consecutive columns of a row: w[r, c] ~= scales[r, c / group] * q[r, c].
//   Int8: data i8 [rows, cols], q in [-127, 127].
//   Int4: data u8 [rows, cols / 2], q in [-8, 7] stored as q + 8; column 2j in the low nibble
//         of byte j, column 2j+1 in the high nibble. cols and group are even.
//   Ggml: ggml's block formats as GGUF files store them (include/llm/ggml_quant.h), computed on
//         as they are: data u8 [rows, row_bytes] with row_bytes = ggml_row_bytes(ggml, cols), the
//         blocks of each row in order; group = the type's block size (1 for f32/f16/bf16, 32 for
//         q8_0/q4_0/q5_0, 256 for q4_K/q6_K), which divides cols; scales empty (they live in the
//         blocks). Only quant_matmul and quant_embedding take it (quantize writes int8/int4).
enum class QuantKind : uint8_t { Int8, Int4, Ggml };
struct QuantizedMatrix {
  QuantKind kind = QuantKind::Int8;
  int64_t rows = 0, cols = 0, group = 0;  // group divides cols
  Tensor data;                            // see above
  Tensor scales;                          // f32 [rows, cols / group]; empty for Ggml
  GgmlType ggml = GgmlType::F32;          // the block format of a Ggml matrix
  // Int8/Int4 with group % 32 == 0, on the CPU: from 4 tokens (prompts, batched decode) multiply
  // by the activations quantized to int8 blocks of 32 on the fly, on integer dot products, as
  // Ggml blocks always are and as llama.cpp does. Faster, but the result then carries the
  // activations' rounding and a prompt's logits no longer equal one-token decode's bit for bit.
  // Off: the weights alone are quantized (exact fp32 products of the dequantized weights).
  bool int8_activations = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual DeviceKind device() const = 0;
  virtual std::string name() const = 0;  // "cpu (2 threads)", "cuda:0 (NVIDIA A10)"
  // The compute dtype precision "auto" picks: f32 on the CPU (its math is fp32 whatever the
  // storage), bf16 on GPUs with native bf16, f16 on older ones.
  virtual DType auto_compute_dtype() const = 0;
  // Dense peak FLOP/s of the device in the given compute dtype, for the MFU estimate (0: unknown).
  virtual double peak_flops(DType /*compute*/) const { return 0.0; }
  // Records ops as a replayable graph (CUDA graphs); nullptr when the backend cannot (the CPU,
  // which runs every op at once and has nothing to gain).
  virtual OpRecorder* recorder() { return nullptr; }

  // ---- memory ---------------------------------------------------------------------------------
  // nullptr when the device is out of memory; Arena turns that into an error.
  virtual void* raw_alloc(size_t bytes) = 0;
  virtual void raw_free(void* ptr, size_t bytes) noexcept = 0;
  // dst (contiguous, on this device) <- host bytes of the same dtype and size.
  void upload(const Tensor& dst, const void* host_src);
  // host bytes <- src (contiguous, on this device).
  void download(const Tensor& src, void* host_dst);
  // dst = src elementwise, converting the dtype; same shape; both may be strided (last dim dense).
  void copy(const Tensor& src, const Tensor& dst);
  void zero(const Tensor& t);
  void fill(const Tensor& t, float value);  // float or i32 t
  virtual void synchronize() = 0;

  // ---- embedding --------------------------------------------------------------------------------
  // out[n, :] = table[ids[n], :]            ids [N] i32, table [V, C], out [N, C]
  void embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out);
  // dtable[ids[n], :] += dout[n, :]         dtable [V, C] f32; each row sums its tokens in order
  void embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable);
  // The same for rows [row0, row0 + R) of a [vocab, C] table (ZeRO-2's gradient buckets):
  // dtable_rows [R, C] f32 is those rows; tokens of other ids are skipped, but every id must be in
  // [0, vocab) as above.
  void embedding_backward_rows(const Tensor& ids, const Tensor& dout, const Tensor& dtable_rows, int64_t row0,
                               int64_t vocab);

  // ---- RMSNorm ----------------------------------------------------------------------------------
  // y = w * x * rstd, rstd = 1/sqrt(mean(x^2) + eps)      x, y [N, C], w [C], rstd [N] f32
  void rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd);
  // s = a + b, y = rmsnorm(s): the residual add fused in   a, b, s, y [N, C]; s may alias a
  void add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float eps, const Tensor& s,
                           const Tensor& y, const Tensor& rstd);
  // dx = (accumulate ? dx : 0) + d/dx, dw += d/dw          dy, x, dx [N, C], w [C], rstd [N], dw [C] f32
  void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dx,
                        const Tensor& dw, bool accumulate_dx);

  // ---- linear algebra ---------------------------------------------------------------------------
  // c = alpha * op(a) @ op(b) + beta * c + bias         op(a) [M, K], op(b) [K, N], c [M, N], bias [N]
  // op(x) = x^T when trans_x. Rows may be strided (a column block of a fused buffer).
  void matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, float alpha, float beta,
              const Tensor* bias);
  // db[c] += sum_n dy[n, c]                              dy [N, C], db [C] f32
  void bias_backward(const Tensor& dy, const Tensor& db);

  // ---- rotary embedding (NeoX rotate-half) --------------------------------------------------------
  // In place on x [B, T, H, D]: pairs (i, i + D/2) of token t rotate by angle (pos0 + t) * inv_freq[i],
  // read from cos, sin [P, D/2] f32. inverse rotates by minus the angle (the backward pass).
  // positions i32 [B, T] (packed documents; pos0 must be 0): token (b, t) rotates by
  // positions[b, t] * inv_freq[i] instead; each must be in [0, t] (not checked on the device).
  void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0, bool inverse,
            const Tensor& positions = Tensor());

  // ---- attention ------------------------------------------------------------------------------
  // Causal GQA: query head h reads kv head h / (Hq / Hkv); query t (of Tq) sees keys
  // 0 .. Tk - Tq + t; scale 1/sqrt(D).
  // q, out [B, Tq, Hq, D], k, v [B, Tk, Hkv, D], lse [B, Hq, Tq] f32 (empty: not kept)
  // Document masking (packed sequences, as flash-attention's varlen): with positions i32 [B, T]
  // (Tq == Tk == T), each token's index within its document, query t sees only the keys
  // t - positions[b, t] .. t of its own document. positions[b, t] must be in [0, t] and each 0 or
  // one more than the one before (the model checks this on the host).
  void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const Tensor& lse,
                         const Tensor& positions = Tensor());
  // dq [B, T, Hq, D], dk, dv [B, T, Hkv, D], overwritten; out and lse from the forward (Tq == Tk),
  // positions as the forward had them.
  void attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                          const Tensor& lse, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                          const Tensor& positions = Tensor());

  // ---- SwiGLU ---------------------------------------------------------------------------------
  // out = silu(g) * u where gate_up [N, 2I] holds g in columns [0, I) and u in [I, 2I); out [N, I]
  void swiglu_forward(const Tensor& gate_up, const Tensor& out);
  // dgate_up [N, 2I] from dout [N, I]
  void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up);

  // ---- elementwise ------------------------------------------------------------------------------
  // out = a + b, same shapes; out may alias a or b
  void add(const Tensor& a, const Tensor& b, const Tensor& out);
  // x *= s in place (float tensors)
  void scale(const Tensor& x, float s);
  // Inverted dropout in place (contiguous float x): x[i] = keep(seed, i) ? x[i] / (1 - p) : 0,
  // keep(seed, i) = (splitmix64(seed ^ i * 0x9e3779b97f4a7c15) >> 40) >= p * 2^24. The mask is a
  // function of (seed, i) alone: the same call on the gradient is the backward.
  void dropout(const Tensor& x, float p, uint64_t seed);

  // ---- output layer and loss ----------------------------------------------------------------------
  // Fused over chunks of tokens so [N, V] logits never exist at once:
  //   logits = h @ w^T;  losses[n] = logsumexp(logits[n]) - logits[n, targets[n]]  (0 where target < 0)
  // when dh is not empty, also:
  //   dlogits = (softmax(logits) - onehot(target)) * grad_scale  (0 rows where target < 0)
  //   dh = dlogits @ w (overwritten);  dw += dlogits^T @ h  (f32)
  // h, dh [N, C], w [V, C], targets [N] i32, losses [N] f32, dw [V, C] f32
  // chunk_tokens: tokens per chunk (0: the backend's default, default_ce_chunk_tokens).
  // stats [N, 2] f32, when not empty: each row's softmax statistics (max, sum of exp(logit - max))
  // exactly as the op used them, for cross_entropy_dw.
  // row_block (0: all V): the CPU forms the logits and dw in GEMMs of row_block rows of w, so that
  // cross_entropy_dw over whole blocks repeats its arithmetic exactly (ZeRO-2 trains as ZeRO-1).
  void cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses, const Tensor& dh,
                     const Tensor& dw, float grad_scale, int64_t chunk_tokens, const Tensor& stats = Tensor(),
                     int64_t row_block = 0);
  // The dw of cross_entropy for the rows [row0, row0 + R) of w alone, later (ZeRO-2 reduces the
  // output layer's gradient bucket by bucket, after the layers' backward):
  //   logits = h @ w_rows^T;  dlogits = exp(logits - max) * (grad_scale / sum) - grad_scale * onehot
  //   dw_rows += dlogits^T @ h           (0 rows where target < 0; max, sum from stats)
  // h [N, C], w_rows [R, C], targets [N] i32, stats [N, 2] f32 (cross_entropy's), dw_rows [R, C] f32.
  // With the chunk_tokens and row_block cross_entropy used (row0 a multiple of row_block, R one
  // too unless the range ends the vocabulary), each row of dw_rows is that row of its dw bitwise on
  // the CPU; other backends agree within rounding.
  void cross_entropy_dw(const Tensor& h, const Tensor& w_rows, int64_t row0, const Tensor& targets, const Tensor& stats,
                        const Tensor& dw_rows, float grad_scale, int64_t chunk_tokens, int64_t row_block = 0);

  // ---- weight-only quantization (inference) ------------------------------------------------------
  // out = quantize(w): per row and group, scale = max|w| / qmax, q = round-half-even(w / scale)
  // clamped to the range (qmax 127 for int8, 7 for int4; a zero group has scale 0).
  // w [rows, cols] float; out's data and scales are allocated by the caller with the shapes above.
  void quantize(const Tensor& w, const QuantizedMatrix& out);
  // y [N, rows] = x [N, cols] @ dequant(w)^T (+ bias [rows]); x, y float; fp32 accumulation.
  void quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias);
  // out [N, cols] = dequant(table)[ids[n], :]  (the input embedding of a quantized tied table)
  void quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out);

  // ---- optimizer and reductions ---------------------------------------------------------------------
  // AdamW over flat f32 buffers param, grad, m, v [P]; for each segment, with g = grad * grad_scale:
  //   m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd p)
  // and, when compute is not empty, compute [P] (any float dtype) = p rounded to its dtype.
  void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const Tensor& compute,
             std::span<const AdamWSegment> segments, const AdamWHyper& hyper);
  // Sum of x (float tensor, any dtype), accumulated in double; non-finite if any element is.
  double sum(const Tensor& x);
  // Sum of squares of x, accumulated in double; non-finite if any element is.
  double sum_squares(const Tensor& x);

  // ---- one decode step's attention (inference) ----------------------------------------------------
  // For one token at cache position p: rope its q and k heads in place at position p, write its k
  // and v heads to row p of the caches, then attend over rows [0, p]:
  //   qkv [1, 1, Hq + 2 Hkv, D] (q heads, k heads, v heads), cos, sin [P', D/2] f32 with P' >= P,
  //   k_cache, v_cache [1, P, Hkv, D] (laid out alike), out [1, 1, Hq, D]; pos_dev i32 [1] on this
  //   device holding p, and pos == p as the host knows it.
  // A backend that records ops (recorder()) must take p from pos_dev, so that one recorded step
  // serves every position.
  void decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                        const Tensor& v_cache, const Tensor& pos_dev, int64_t pos, const Tensor& out);

 protected:
  // The backend's ops, called by the public ones above once the arguments are checked (shapes,
  // dtypes, layouts, devices) and the work is known not to be empty where every backend skips it.
  virtual void do_upload(const Tensor& dst, const void* host_src) = 0;
  virtual void do_download(const Tensor& src, void* host_dst) = 0;
  virtual void do_copy(const Tensor& src, const Tensor& dst) = 0;
  virtual void do_zero(const Tensor& t) = 0;
  virtual void do_fill(const Tensor& t, float value) = 0;
  virtual void do_embedding_forward(const Tensor& ids, const Tensor& table, const Tensor& out) = 0;
  // dtable holds rows [row0, row0 + dtable.size(0)) of a [vocab, C] table (row0 0, vocab its rows: all of it).
  virtual void do_embedding_backward(const Tensor& ids, const Tensor& dout, const Tensor& dtable, int64_t row0,
                                     int64_t vocab) = 0;
  virtual void do_rmsnorm_forward(const Tensor& x, const Tensor& w, float eps, const Tensor& y, const Tensor& rstd) = 0;
  virtual void do_add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float eps, const Tensor& s,
                                      const Tensor& y, const Tensor& rstd) = 0;
  virtual void do_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& rstd,
                                   const Tensor& dx, const Tensor& dw, bool accumulate_dx) = 0;
  virtual void do_matmul(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c, float alpha,
                         float beta, const Tensor* bias) = 0;
  virtual void do_bias_backward(const Tensor& dy, const Tensor& db) = 0;
  virtual void do_rope(const Tensor& x, const Tensor& cos, const Tensor& sin, int64_t pos0, bool inverse,
                       const Tensor& positions) = 0;
  virtual void do_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                                    const Tensor& lse, const Tensor& positions) = 0;
  virtual void do_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& out, const Tensor& lse, const Tensor& dq, const Tensor& dk,
                                     const Tensor& dv, const Tensor& positions) = 0;
  virtual void do_swiglu_forward(const Tensor& gate_up, const Tensor& out) = 0;
  virtual void do_swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) = 0;
  virtual void do_add(const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  virtual void do_scale(const Tensor& x, float s) = 0;
  virtual void do_dropout(const Tensor& x, float p, uint64_t seed) = 0;
  virtual void do_cross_entropy(const Tensor& h, const Tensor& w, const Tensor& targets, const Tensor& losses,
                                const Tensor& dh, const Tensor& dw, float grad_scale, int64_t chunk_tokens,
                                const Tensor& stats, int64_t row_block) = 0;
  virtual void do_cross_entropy_dw(const Tensor& h, const Tensor& w_rows, int64_t row0, const Tensor& targets,
                                   const Tensor& stats, const Tensor& dw_rows, float grad_scale, int64_t chunk_tokens,
                                   int64_t row_block) = 0;
  virtual void do_quantize(const Tensor& w, const QuantizedMatrix& out) = 0;
  virtual void do_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* bias) = 0;
  virtual void do_quant_embedding(const Tensor& ids, const QuantizedMatrix& table, const Tensor& out) = 0;
  virtual void do_adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                        const Tensor& compute, std::span<const AdamWSegment> segments, const AdamWHyper& hyper) = 0;
  virtual double do_sum(const Tensor& x) = 0;
  virtual double do_sum_squares(const Tensor& x) = 0;
  virtual void do_decode_attention(const Tensor& qkv, const Tensor& cos, const Tensor& sin, const Tensor& k_cache,
                                   const Tensor& v_cache, const Tensor& pos_dev, int64_t pos, const Tensor& out) = 0;

 private:
  // Throws unless every non-empty tensor lives on this backend's device.
  void check_devices(const char* op, std::initializer_list<std::pair<const Tensor*, const char*>> tensors) const;
};

// "cpu", "cuda", "cuda:N" or "auto" (CUDA when a device is present, else the CPU, saying which).
// threads: CPU threads for the CPU backend (0: all cores). local_rank: the GPU that "cuda" and
// "auto" mean for this process (each rank of a data-parallel job binds to its own).
std::unique_ptr<Backend> make_backend(std::string_view device, int threads = 0, int local_rank = 0);

}  // namespace llm
