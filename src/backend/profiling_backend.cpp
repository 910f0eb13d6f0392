// ProfilingBackend: per-op wall time around an inner backend. It overrides every do_<op>, so every
// op is timed (decode_attention as one op); recorded graphs are timed per replay ("graph_replay").
#include "llm/profiling_backend.h"

#include <chrono>

namespace llm {

namespace {

// Adds one call, started at t0 and finished now, to the row `key`; returns the row.
OpTime& add_call(std::map<std::string, OpTime>& times, const std::string& key,
                 std::chrono::steady_clock::time_point t0) {
  OpTime& slot = times[key];
  slot.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++slot.calls;
  return slot;
}

// A recorded graph of the inner backend; each replay is timed as the op "graph_replay".
class ProfiledGraph final : public OpGraph {
 public:
  ProfiledGraph(std::unique_ptr<OpGraph> inner, Backend& backend, std::map<std::string, OpTime>* times)
      : in_(std::move(inner)), backend_(backend), times_(times) {}
  void replay() override {
    const auto t0 = std::chrono::steady_clock::now();
    in_->replay();
    backend_.synchronize();
    add_call(*times_, "graph_replay", t0);
  }

 private:
  std::unique_ptr<OpGraph> in_;
  Backend& backend_;
  std::map<std::string, OpTime>* times_;
};

class ProfilingBackend final : public Backend {
 public:
  ProfilingBackend(std::unique_ptr<Backend> inner, std::map<std::string, OpTime>* times)
      : in_(std::move(inner)), times_(times) {}

  DeviceKind device() const override { return in_->device(); }
  std::string name() const override { return in_->name() + " [profiled]"; }
  DType auto_compute_dtype() const override { return in_->auto_compute_dtype(); }
  double peak_flops(DType d) const override { return in_->peak_flops(d); }
  OpRecorder* recorder() override {
    OpRecorder* inner = in_->recorder();
    if (inner == nullptr) return nullptr;
    if (recorder_.inner != inner) recorder_ = Recorder(*this, inner);
    return &recorder_;
  }
  void* raw_alloc(size_t b) override { return in_->raw_alloc(b); }
  void raw_free(void* p, size_t b) noexcept override { in_->raw_free(p, b); }
  void synchronize() override { in_->synchronize(); }

 protected:
  // Each op runs on the inner backend (whose public op checks the arguments again) and is timed,
  // synchronising after it; while ops are being recorded nothing runs, so nothing is timed.
#define LLM_TIMED(op, ...)                            \
  do {                                                \
    if (recording_) return in_->op(__VA_ARGS__);      \
    const auto t0 = std::chrono::steady_clock::now(); \
    in_->op(__VA_ARGS__);                             \
    in_->synchronize();                               \
    add_call(*times_, #op, t0);                       \
  } while (0)

  void do_upload(const Tensor& d, const void* s) override { LLM_TIMED(upload, d, s); }
  void do_download(const Tensor& s, void* d) override { LLM_TIMED(download, s, d); }
  void do_copy(const Tensor& s, const Tensor& d) override { LLM_TIMED(copy, s, d); }
  void do_zero(const Tensor& t) override { LLM_TIMED(zero, t); }
  void do_fill(const Tensor& t, float v) override { LLM_TIMED(fill, t, v); }
  void do_embedding_forward(const Tensor& i, const Tensor& t, const Tensor& o) override {
    LLM_TIMED(embedding_forward, i, t, o);
  }
  void do_embedding_backward(const Tensor& i, const Tensor& d, const Tensor& t, int64_t row0, int64_t vocab) override {
    if (row0 == 0 && vocab == t.size(0)) {
      LLM_TIMED(embedding_backward, i, d, t);
    } else {
      LLM_TIMED(embedding_backward_rows, i, d, t, row0, vocab);
    }
  }
  void do_rmsnorm_forward(const Tensor& x, const Tensor& w, float e, const Tensor& y, const Tensor& r) override {
    LLM_TIMED(rmsnorm_forward, x, w, e, y, r);
  }
  void do_add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float e, const Tensor& s,
                              const Tensor& y, const Tensor& r) override {
    LLM_TIMED(add_rmsnorm_forward, a, b, w, e, s, y, r);
  }
  void do_rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& r, const Tensor& dx,
                           const Tensor& dw, bool acc) override {
    LLM_TIMED(rmsnorm_backward, dy, x, w, r, dx, dw, acc);
  }
  void do_matmul(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float al, float be,
                 const Tensor* bias) override {
    if (recording_) return in_->matmul(a, ta, b, tb, c, al, be, bias);
    const auto t0 = std::chrono::steady_clock::now();
    in_->matmul(a, ta, b, tb, c, al, be, bias);
    in_->synchronize();
    // One row per kind of product ("matmul NT bf16>bf16": a @ b^T, bf16 operands, bf16 out), so that
    // the forward products, the input gradients and the weight gradients show their own speeds.
    const std::string kind = std::string("matmul ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " " +
                             std::string(dtype_name(a.dtype())) + ">" + std::string(dtype_name(c.dtype()));
    add_call(*times_, kind, t0).flops +=
        2.0 * double(c.size(0)) * double(c.size(1)) * double(ta ? a.size(0) : a.size(1));
  }
  void do_bias_backward(const Tensor& dy, const Tensor& db) override { LLM_TIMED(bias_backward, dy, db); }
  void do_rope(const Tensor& x, const Tensor& c, const Tensor& s, int64_t p, bool inv, const Tensor& pos) override {
    LLM_TIMED(rope, x, c, s, p, inv, pos);
  }
  void do_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& l,
                            const Tensor& pos) override {
    LLM_TIMED(attention_forward, q, k, v, o, l, pos);
  }
  void do_attention_backward(const Tensor& d, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                             const Tensor& l, const Tensor& dq, const Tensor& dk, const Tensor& dv,
                             const Tensor& pos) override {
    LLM_TIMED(attention_backward, d, q, k, v, o, l, dq, dk, dv, pos);
  }
  void do_decode_attention(const Tensor& qkv, const Tensor& c, const Tensor& s, const Tensor& kc, const Tensor& vc,
                           const Tensor& pd, int64_t p, const Tensor& o) override {
    LLM_TIMED(decode_attention, qkv, c, s, kc, vc, pd, p, o);
  }
  void do_swiglu_forward(const Tensor& g, const Tensor& o) override { LLM_TIMED(swiglu_forward, g, o); }
  void do_swiglu_backward(const Tensor& d, const Tensor& g, const Tensor& dg) override {
    LLM_TIMED(swiglu_backward, d, g, dg);
  }
  void do_add(const Tensor& a, const Tensor& b, const Tensor& o) override { LLM_TIMED(add, a, b, o); }
  void do_scale(const Tensor& x, float s) override { LLM_TIMED(scale, x, s); }
  void do_dropout(const Tensor& x, float p, uint64_t seed) override { LLM_TIMED(dropout, x, p, seed); }
  void do_cross_entropy(const Tensor& h, const Tensor& w, const Tensor& t, const Tensor& l, const Tensor& dh,
                        const Tensor& dw, float gs, int64_t chunk, const Tensor& st, int64_t rb) override {
    LLM_TIMED(cross_entropy, h, w, t, l, dh, dw, gs, chunk, st, rb);
  }
  void do_cross_entropy_dw(const Tensor& h, const Tensor& w, int64_t row0, const Tensor& t, const Tensor& st,
                           const Tensor& dw, float gs, int64_t chunk, int64_t rb) override {
    LLM_TIMED(cross_entropy_dw, h, w, row0, t, st, dw, gs, chunk, rb);
  }
  void do_adamw(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& c,
                std::span<const AdamWSegment> s, const AdamWHyper& h) override {
    LLM_TIMED(adamw, p, g, m, v, c, s, h);
  }
  void do_quantize(const Tensor& w, const QuantizedMatrix& o) override { LLM_TIMED(quantize, w, o); }
  void do_quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* b) override {
    LLM_TIMED(quant_matmul, x, w, y, b);
  }
  void do_quant_embedding(const Tensor& i, const QuantizedMatrix& t, const Tensor& o) override {
    LLM_TIMED(quant_embedding, i, t, o);
  }
  double do_sum(const Tensor& x) override { return timed_reduce("sum", x, false); }
  double do_sum_squares(const Tensor& x) override { return timed_reduce("sum_squares", x, true); }
#undef LLM_TIMED

 private:
  // The inner backend's recorder; while it records, ops are passed through untimed.
  struct Recorder final : OpRecorder {
    Recorder() = default;
    Recorder(ProfilingBackend& b, OpRecorder* r) : be(&b), inner(r) {}
    void begin() override {
      inner->begin();
      be->recording_ = true;
    }
    std::unique_ptr<OpGraph> end() override {
      be->recording_ = false;  // the inner recorder leaves recording mode however end() ends
      return std::make_unique<ProfiledGraph>(inner->end(), *be->in_, be->times_);
    }
    void abort() noexcept override {
      be->recording_ = false;
      inner->abort();
    }
    ProfilingBackend* be = nullptr;
    OpRecorder* inner = nullptr;
  };

  double timed_reduce(const char* op, const Tensor& x, bool squares) {
    if (recording_) return squares ? in_->sum_squares(x) : in_->sum(x);
    const auto t0 = std::chrono::steady_clock::now();
    const double r = squares ? in_->sum_squares(x) : in_->sum(x);
    OpTime& slot = (*times_)[op];
    slot.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++slot.calls;
    return r;
  }

  std::unique_ptr<Backend> in_;
  std::map<std::string, OpTime>* times_;
  Recorder recorder_;
  bool recording_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_profiling_backend(std::unique_ptr<Backend> inner, std::map<std::string, OpTime>* times) {
  return std::make_unique<ProfilingBackend>(std::move(inner), times);
}

}  // namespace llm
