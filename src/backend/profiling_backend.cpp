// ProfilingBackend: per-op wall time around an inner backend.
#include "llm/profiling_backend.h"

#include <chrono>

namespace llm {

namespace {

class ProfilingBackend final : public Backend {
 public:
  ProfilingBackend(std::unique_ptr<Backend> inner, std::map<std::string, OpTime>* times)
      : in_(std::move(inner)), times_(times) {}

  DeviceKind device() const override { return in_->device(); }
  std::string name() const override { return in_->name() + " [profiled]"; }
  DType auto_compute_dtype() const override { return in_->auto_compute_dtype(); }
  double peak_flops(DType d) const override { return in_->peak_flops(d); }
  void set_ce_chunk_tokens(int64_t n) override { in_->set_ce_chunk_tokens(n); }
  void* raw_alloc(size_t b) override { return in_->raw_alloc(b); }
  void raw_free(void* p, size_t b) noexcept override { in_->raw_free(p, b); }
  void synchronize() override { in_->synchronize(); }

#define LLM_TIMED(op, ...)                                                           \
  do {                                                                               \
    const auto t0 = std::chrono::steady_clock::now();                                \
    in_->op(__VA_ARGS__);                                                            \
    in_->synchronize();                                                              \
    OpTime& slot_ = (*times_)[#op];                                                   \
    slot_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); \
    ++slot_.calls;                                                                   \
  } while (0)

  void upload(const Tensor& d, const void* s) override { LLM_TIMED(upload, d, s); }
  void download(const Tensor& s, void* d) override { LLM_TIMED(download, s, d); }
  void copy(const Tensor& s, const Tensor& d) override { LLM_TIMED(copy, s, d); }
  void zero(const Tensor& t) override { LLM_TIMED(zero, t); }
  void fill(const Tensor& t, float v) override { LLM_TIMED(fill, t, v); }
  void embedding_forward(const Tensor& i, const Tensor& t, const Tensor& o) override { LLM_TIMED(embedding_forward, i, t, o); }
  void embedding_backward(const Tensor& i, const Tensor& d, const Tensor& t) override {
    LLM_TIMED(embedding_backward, i, d, t);
  }
  void rmsnorm_forward(const Tensor& x, const Tensor& w, float e, const Tensor& y, const Tensor& r) override {
    LLM_TIMED(rmsnorm_forward, x, w, e, y, r);
  }
  void add_rmsnorm_forward(const Tensor& a, const Tensor& b, const Tensor& w, float e, const Tensor& s, const Tensor& y,
                           const Tensor& r) override {
    LLM_TIMED(add_rmsnorm_forward, a, b, w, e, s, y, r);
  }
  void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& w, const Tensor& r, const Tensor& dx,
                        const Tensor& dw, bool acc) override {
    LLM_TIMED(rmsnorm_backward, dy, x, w, r, dx, dw, acc);
  }
  void matmul(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float al, float be,
              const Tensor* bias) override {
    LLM_TIMED(matmul, a, ta, b, tb, c, al, be, bias);
  }
  void bias_backward(const Tensor& dy, const Tensor& db) override { LLM_TIMED(bias_backward, dy, db); }
  void rope(const Tensor& x, const Tensor& c, const Tensor& s, int64_t p, bool inv) override {
    LLM_TIMED(rope, x, c, s, p, inv);
  }
  void attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o, const Tensor& l) override {
    LLM_TIMED(attention_forward, q, k, v, o, l);
  }
  void attention_backward(const Tensor& d, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                          const Tensor& l, const Tensor& dq, const Tensor& dk, const Tensor& dv) override {
    LLM_TIMED(attention_backward, d, q, k, v, o, l, dq, dk, dv);
  }
  void swiglu_forward(const Tensor& g, const Tensor& o) override { LLM_TIMED(swiglu_forward, g, o); }
  void swiglu_backward(const Tensor& d, const Tensor& g, const Tensor& dg) override { LLM_TIMED(swiglu_backward, d, g, dg); }
  void add(const Tensor& a, const Tensor& b, const Tensor& o) override { LLM_TIMED(add, a, b, o); }
  void scale(const Tensor& x, float s) override { LLM_TIMED(scale, x, s); }
  void cross_entropy(const Tensor& h, const Tensor& w, const Tensor& t, const Tensor& l, const Tensor& dh,
                     const Tensor& dw, float gs) override {
    LLM_TIMED(cross_entropy, h, w, t, l, dh, dw, gs);
  }
  void adamw(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const Tensor& c,
             std::span<const AdamWSegment> s, const AdamWHyper& h) override {
    LLM_TIMED(adamw, p, g, m, v, c, s, h);
  }
  void quantize(const Tensor& w, const QuantizedMatrix& o) override { LLM_TIMED(quantize, w, o); }
  void quant_matmul(const Tensor& x, const QuantizedMatrix& w, const Tensor& y, const Tensor* b) override {
    LLM_TIMED(quant_matmul, x, w, y, b);
  }
  void quant_embedding(const Tensor& i, const QuantizedMatrix& t, const Tensor& o) override {
    LLM_TIMED(quant_embedding, i, t, o);
  }
  double sum(const Tensor& x) override {
    double r = 0;
    const auto t0 = std::chrono::steady_clock::now();
    r = in_->sum(x);
    (*times_)["sum"].seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++(*times_)["sum"].calls;
    return r;
  }
  double sum_squares(const Tensor& x) override {
    const auto t0 = std::chrono::steady_clock::now();
    const double r = in_->sum_squares(x);
    (*times_)["sum_squares"].seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++(*times_)["sum_squares"].calls;
    return r;
  }
#undef LLM_TIMED

 private:
  std::unique_ptr<Backend> in_;
  std::map<std::string, OpTime>* times_;
};

}  // namespace

std::unique_ptr<Backend> make_profiling_backend(std::unique_ptr<Backend> inner, std::map<std::string, OpTime>* times) {
  return std::make_unique<ProfilingBackend>(std::move(inner), times);
}

}  // namespace llm
