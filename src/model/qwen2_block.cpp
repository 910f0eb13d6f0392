// One Qwen2 decoder block: block_forward / block_backward, the selective recompute between them,
// and the training attention (CausalAttention). See qwen2_block.h for what is injected.
#include "model/qwen2_block.h"

#include "llm/error.h"

namespace llm {

namespace {
// dropout(x) [N, in] in the adapter's scratch when dropout is on, else x itself.
Tensor adapter_input(Backend& be, const LinearAdapter& ad, const Tensor& x) {
  if (!ad.dropping()) return x;
  const Tensor xd = ad.xd.range(0, x.numel()).view({x.size(0), x.size(1)});  // [N, in]
  be.copy(x, xd);
  be.dropout(xd, ad.dropout, ad.drop->seed ^ ad.key);
  return xd;
}
}  // namespace

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
  const int64_t N = x.size(0);
  for (const LinearAdapter& ad : lora) {
    const int64_t r = ad.A.size(0);
    const Tensor h = ad.h.range(0, N * r).view({N, r});                              // [N, r]
    be.matmul(adapter_input(be, ad, x), false, ad.A, true, h, 1.0f, 0.0f, nullptr);  // h = dropout(x) A^T
    be.matmul(h, false, ad.B, true, y.slice(1, ad.col0, ad.col0 + ad.out), ad.scale, 1.0f, nullptr);  // y_s += s h B^T
  }
}

void LinearWeight::backward_input(Backend& be, const Tensor& dy, const Tensor& x, const Tensor& dx) const {
  LLM_CHECK(quant == nullptr, "block_backward: quantized weights have no backward");
  be.matmul(dy, false, dense, false, dx, 1.0f, 0.0f, nullptr);  // dx [N, in] = dy W (W frozen or not)
  const int64_t N = x.size(0);
  for (const LinearAdapter& ad : lora) {
    const int64_t r = ad.A.size(0);
    const Tensor dys = dy.slice(1, ad.col0, ad.col0 + ad.out);        // [N, out]
    const Tensor h = ad.h.range(0, N * r).view({N, r});               // [N, r]
    const Tensor dh = ad.dh.range(0, N * r).view({N, r});             // [N, r]
    const Tensor xin = adapter_input(be, ad, x);                      // [N, in] dropout(x): the forward's mask
    be.matmul(xin, false, ad.A, true, h, 1.0f, 0.0f, nullptr);        // h = xin A^T, as in the forward
    be.matmul(dys, true, h, false, ad.dB, ad.scale, 1.0f, nullptr);   // dB [out, r] += s dy_s^T h
    be.matmul(dys, false, ad.B, false, dh, ad.scale, 0.0f, nullptr);  // dh [N, r] = s dy_s B
    be.matmul(dh, true, xin, false, ad.dA, 1.0f, 1.0f, nullptr);      // dA [r, in] += dh^T xin
    if (ad.dropping()) {
      const Tensor t = ad.xd.range(0, x.numel()).view({N, x.size(1)});  // [N, in]; xin is no longer needed
      be.matmul(dh, false, ad.A, false, t, 1.0f, 0.0f, nullptr);        // t = dh A
      be.dropout(t, ad.dropout, ad.drop->seed ^ ad.key);                // through the same mask
      be.add(dx, t, dx);                                                // dx += t
    } else {
      be.matmul(dh, false, ad.A, false, dx, 1.0f, 1.0f, nullptr);  // dx += dh A
    }
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
                   const Tensor& x_in, const Tensor& x_out, const BlockActs& a, const BlockProbe* probe) {
  auto seen = [&](const char* tensor, const Tensor& t) {
    if (probe != nullptr) (*probe)(tensor, t);
  };
  be.rmsnorm_forward(x_in, w.ln1, s.eps, a.ln1, a.rstd1);  // ln1 [N, C]
  seen("input_layernorm out", a.ln1);
  w.qkv.forward(be, a.ln1, a.qkv, &w.qkv_b);  // qkv [N, Q]
  seen("self_attn.q/k/v_proj out", a.qkv);
  attn.forward(be, a.qkv, a.att);  // att [N, Hq D]
  seen("self_attn attention out", a.att);
  w.o.forward(be, a.att, a.proj, nullptr);  // proj [N, C]
  seen("self_attn.o_proj out", a.proj);
  be.add_rmsnorm_forward(x_in, a.proj, w.ln2, s.eps, a.h2, a.ln2, a.rstd2);  // h2 = x + proj, ln2 [N, C]
  seen("residual after attention", a.h2);
  seen("post_attention_layernorm out", a.ln2);
  w.gate_up.forward(be, a.ln2, a.gate_up, nullptr);  // gate_up [N, 2I]
  seen("mlp.gate/up_proj out", a.gate_up);
  be.swiglu_forward(a.gate_up, a.act);  // act [N, I]
  seen("mlp silu(gate) * up", a.act);
  w.down.forward(be, a.act, a.proj, nullptr);  // proj [N, C]
  seen("mlp.down_proj out", a.proj);
  be.add(a.h2, a.proj, x_out);  // x_out [N, C]
  seen("layer output (residual)", x_out);
}

void block_recompute_selective(Backend& be, const BlockShape& s, const BlockWeights& w, const Tensor& x_in,
                               const BlockActs& a) {
  be.rmsnorm_forward(x_in, w.ln1, s.eps, a.ln1, a.rstd1);  // ln1 [N, C]
  be.rmsnorm_forward(a.h2, w.ln2, s.eps, a.ln2, a.rstd2);  // ln2 [N, C]
  be.swiglu_forward(a.gate_up, a.act);                     // act [N, I]
}

void block_backward(Backend& be, const BlockWeights& w, const BlockGrads& g, const CausalAttention& attn,
                    const Tensor& x_in, const BlockActs& a, const Tensor& dres, const BlockBackwardScratch& d) {
  // A weight gradient is formed only where g has a tensor (LoRA freezes the matrices).
  auto weight_grad = [&](const Tensor& dy, const Tensor& x, const Tensor& gw) {
    if (!gw.empty()) be.matmul(dy, true, x, false, gw, 1.0f, 1.0f, nullptr);  // gw [out, in] += dy^T x
  };
  // MLP: x_out = h2 + act @ down^T
  w.down.backward_input(be, dres, a.act, d.dact);                       // dact [N, I]
  weight_grad(dres, a.act, g.down);                                     // d_down [C, I]
  be.swiglu_backward(d.dact, a.gate_up, d.dgate_up);                    // dgate_up [N, 2I]
  w.gate_up.backward_input(be, d.dgate_up, a.ln2, d.dln);               // dln2 [N, C]
  weight_grad(d.dgate_up, a.ln2, g.gate_up);                            // d_gate_up [2I, C]
  be.rmsnorm_backward(d.dln, a.h2, w.ln2, a.rstd2, dres, g.ln2, true);  // dres = d h2

  // attention: h2 = x_in + att @ o^T
  w.o.backward_input(be, dres, a.att, d.datt);                          // datt [N, Hq D]
  weight_grad(dres, a.att, g.o);                                        // d_o [C, Hq D]
  attn.backward(be, a.qkv, a.att, d.datt, d.dqkv);                      // dqkv [N, Q]
  if (!g.qkv_b.empty()) be.bias_backward(d.dqkv, g.qkv_b);              // d_qkv_b [Q]
  w.qkv.backward_input(be, d.dqkv, a.ln1, d.dln);                       // dln1 [N, C]
  weight_grad(d.dqkv, a.ln1, g.qkv);                                    // d_qkv [Q, C]
  be.rmsnorm_backward(d.dln, x_in, w.ln1, a.rstd1, dres, g.ln1, true);  // dres = d x_in
}

}  // namespace llm
