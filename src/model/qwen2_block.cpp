// One Qwen2 decoder block: block_forward / block_backward, the selective recompute between them,
// and the training attention (CausalAttention). See qwen2_block.h for what is injected.
#include "model/qwen2_block.h"

namespace llm {

void LinearWeight::forward(Backend& be, const Tensor& x, const Tensor& y, const Tensor* bias) const {
  if (quant != nullptr && parts == 1) {
    be.quant_matmul(x, *quant, y, bias);  // y [N, out], fp32 accumulation
  } else if (quant != nullptr) {
    // Parts stacked along the output: each writes its column block of y (a strided view).
    int64_t r0 = 0;
    for (int i = 0; i < parts; ++i) {
      const QuantizedMatrix& q = quant[i];
      const Tensor b = bias != nullptr ? bias->range(r0, q.rows) : Tensor();
      be.quant_matmul(x, q, y.slice(1, r0, r0 + q.rows), bias != nullptr ? &b : nullptr);  // y[:, r0:r0+rows]
      r0 += q.rows;
    }
  } else {
    be.matmul(x, false, dense, true, y, 1.0f, 0.0f, bias);  // y [N, out] = x @ W^T
  }
}

namespace {
// q, k, v of a fused [N, (Hq + 2 Hkv) D] buffer as [B, T, H, D] views; qk = q and k together.
struct HeadViews {
  Tensor q, k, v, qk;
};
HeadViews split_heads(const Tensor& qkv, const BlockShape& s, int64_t B, int64_t T) {
  const Tensor all = qkv.view({B, T, s.Hq + 2 * s.Hkv, s.D});  // [B, T, Hq + 2Hkv, D]
  return {all.slice(2, 0, s.Hq), all.slice(2, s.Hq, s.Hq + s.Hkv), all.slice(2, s.Hq + s.Hkv, s.Hq + 2 * s.Hkv),
          all.slice(2, 0, s.Hq + s.Hkv)};
}
}  // namespace

void CausalAttention::forward(Backend& be, const Tensor& qkv, const Tensor& att) const {
  const HeadViews hv = split_heads(qkv, s_, B_, T_);
  be.rope(hv.qk, cos_, sin_, 0, false, positions_);                                           // q, k [B, T, H, D]
  be.attention_forward(hv.q, hv.k, hv.v, att.view({B_, T_, s_.Hq, s_.D}), lse_, positions_);  // att [B, T, Hq, D]
}

void CausalAttention::backward(Backend& be, const Tensor& qkv, const Tensor& att, const Tensor& datt,
                               const Tensor& dqkv) const {
  const HeadViews hv = split_heads(qkv, s_, B_, T_);
  const HeadViews dv = split_heads(dqkv, s_, B_, T_);
  const Tensor att4 = att.view({B_, T_, s_.Hq, s_.D});  // [B, T, Hq, D]
  be.attention_backward(datt.view({B_, T_, s_.Hq, s_.D}), hv.q, hv.k, hv.v, att4, lse_, dv.q, dv.k, dv.v, positions_);
  be.rope(dv.qk, cos_, sin_, 0, true, positions_);  // undo the rotation
}

void block_forward(Backend& be, const BlockShape& s, const BlockWeights& w, const BlockAttention& attn,
                   const Tensor& x_in, const Tensor& x_out, const BlockActs& a) {
  be.rmsnorm_forward(x_in, w.ln1, s.eps, a.ln1, a.rstd1);                    // ln1 [N, C]
  w.qkv.forward(be, a.ln1, a.qkv, &w.qkv_b);                                 // qkv [N, Q]
  attn.forward(be, a.qkv, a.att);                                            // att [N, Hq D]
  w.o.forward(be, a.att, a.proj, nullptr);                                   // proj [N, C]
  be.add_rmsnorm_forward(x_in, a.proj, w.ln2, s.eps, a.h2, a.ln2, a.rstd2);  // h2 = x + proj, ln2 [N, C]
  w.gate_up.forward(be, a.ln2, a.gate_up, nullptr);                          // gate_up [N, 2I]
  be.swiglu_forward(a.gate_up, a.act);                                       // act [N, I]
  w.down.forward(be, a.act, a.proj, nullptr);                                // proj [N, C]
  be.add(a.h2, a.proj, x_out);                                               // x_out [N, C]
}

void block_recompute_selective(Backend& be, const BlockShape& s, const BlockWeights& w, const Tensor& x_in,
                               const BlockActs& a) {
  be.rmsnorm_forward(x_in, w.ln1, s.eps, a.ln1, a.rstd1);  // ln1 [N, C]
  be.rmsnorm_forward(a.h2, w.ln2, s.eps, a.ln2, a.rstd2);  // ln2 [N, C]
  be.swiglu_forward(a.gate_up, a.act);                     // act [N, I]
}

void block_backward(Backend& be, const BlockWeights& w, const BlockGrads& g, const CausalAttention& attn,
                    const Tensor& x_in, const BlockActs& a, const Tensor& dres, const BlockBackwardScratch& d) {
  LLM_CHECK(w.qkv.quant == nullptr && w.o.quant == nullptr && w.gate_up.quant == nullptr && w.down.quant == nullptr,
            "block_backward: quantized weights have no backward");
  // MLP: x_out = h2 + act @ down^T
  be.matmul(dres, false, w.down.dense, false, d.dact, 1.0f, 0.0f, nullptr);          // dact [N, I]
  be.matmul(dres, true, a.act, false, g.down, 1.0f, 1.0f, nullptr);                  // d_down [C, I]
  be.swiglu_backward(d.dact, a.gate_up, d.dgate_up);                                 // dgate_up [N, 2I]
  be.matmul(d.dgate_up, false, w.gate_up.dense, false, d.dln, 1.0f, 0.0f, nullptr);  // dln2 [N, C]
  be.matmul(d.dgate_up, true, a.ln2, false, g.gate_up, 1.0f, 1.0f, nullptr);         // d_gate_up [2I, C]
  be.rmsnorm_backward(d.dln, a.h2, w.ln2, a.rstd2, dres, g.ln2, true);               // dres = d h2

  // attention: h2 = x_in + att @ o^T
  be.matmul(dres, false, w.o.dense, false, d.datt, 1.0f, 0.0f, nullptr);     // datt [N, Hq D]
  be.matmul(dres, true, a.att, false, g.o, 1.0f, 1.0f, nullptr);             // d_o [C, Hq D]
  attn.backward(be, a.qkv, a.att, d.datt, d.dqkv);                           // dqkv [N, Q]
  be.bias_backward(d.dqkv, g.qkv_b);                                         // d_qkv_b [Q]
  be.matmul(d.dqkv, false, w.qkv.dense, false, d.dln, 1.0f, 0.0f, nullptr);  // dln1 [N, C]
  be.matmul(d.dqkv, true, a.ln1, false, g.qkv, 1.0f, 1.0f, nullptr);         // d_qkv [Q, C]
  be.rmsnorm_backward(d.dln, x_in, w.ln1, a.rstd1, dres, g.ln1, true);       // dres = d x_in
}

}  // namespace llm
