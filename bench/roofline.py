#!/usr/bin/python3
"""Roofline of one training step of a Qwen2 config on T4, V100, A10 and H100 (docs/roofline.md).

  python3 bench/roofline.py [--config configs/qwen05b.json] [--seq 2048] [--micro-batch 8]
                            [--recompute none|selective|full] [--markdown] [--json]

The same model runs inside llmtrain (src/model/roofline.cpp, `llmtrain --dry-run --gpu ID`, which
adds the memory plan and the other cards); tests/train/planner_test.cpp checks the two agree.
--json prints {gpu id: {step_s, tokens_per_s, mfu}} instead of the tables.

For every kernel of the step: FLOPs and the minimum bytes it must move (each input read once,
each output written once, in the kernels as this engine fuses them), the time bound
max(FLOPs / peak, bytes / bandwidth) on each GPU, and the predicted step time and MFU. Achieved
fractions of peak are assumptions stated below (GEMM_EFF, BW_EFF), not measurements;
bench/gpu_step.sh measures the real step when a GPU is available and prints it beside this.
"""
import argparse
import json

# Dense tensor-core peak (FLOP/s) in the training dtype, and memory bandwidth (B/s).
# sustained: what GEMMs reach at the card's clocks (T4 is power-capped at 70 W: ~45-50 TFLOP/s of
# the 65 in the spec); attn: the peak attention runs at (V100, sm_70, has no tensor-core attention
# kernel here: the fp32 FMA tiles run). MFU is against the spec peak.
GPUS = {
    "t4": dict(name="T4 (fp16)", peak=65e12, sustained=47e12, attn=47e12, bw=320e9, act=2),
    "v100-16": dict(name="V100 (fp16, fp32 SIMT attention)", peak=125e12, sustained=125e12 * 0.9, attn=15.7e12,
                    bw=900e9, act=2),
    "a10": dict(name="A10 (bf16)", peak=125e12, sustained=125e12, attn=125e12, bw=600e9, act=2),
    "h100": dict(name="H100 SXM (bf16)", peak=989e12, sustained=989e12, attn=989e12, bw=3.35e12, act=2),
}
GEMM_EFF = 0.80   # cuBLASLt on large bf16/fp16 GEMMs reaches 75-85% of the dense peak
ATTN_EFF = 0.60   # tiled attention with mma.sync (FlashAttention-2 reaches 50-70% on A100)
BW_EFF = 0.85     # streaming kernels reach ~85% of the spec bandwidth


def kernels(cfg, B, T, recompute, act):
    """(name, flops, bytes, kind) for one optimizer step of one micro-batch, all layers."""
    C, I, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    Hq, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // Hq
    Q = (Hq + 2 * Hkv) * D
    N = B * T
    w = act  # bytes per weight/activation element (bf16/fp16)
    ks = []

    def gemm(name, M, K, Nn, passes):  # passes: 1 forward, 2 backward (dX and dW)
        flops = 2 * M * K * Nn * passes
        byts = passes * (M * K + K * Nn) * w + M * Nn * (w if passes == 1 else 4)  # dW accumulates in f32
        ks.append((name, flops, byts, "gemm"))

    def stream(name, elems_rw):
        ks.append((name, 0, elems_rw * w, "memory"))

    def layer_forward(gemms):
        stream("rmsnorm x2 (fwd)", 2 * 2 * N * C)
        if gemms:
            gemm("qkv projection (fwd)", N, C, Q, 1)
        stream("rope (fwd)", 2 * N * (Hq + Hkv) * D)
        # causal: half of the T x T scores; q.k and p.v, 2 FLOPs per multiply-add
        ks.append(("attention (fwd)", 2 * 2 * B * Hq * T * T * D // 2, (N * Q + N * Hq * D) * w, "attention"))
        if gemms:
            gemm("o projection (fwd)", N, Hq * D, C, 1)
            gemm("gate/up projection (fwd)", N, C, 2 * I, 1)
        stream("swiglu (fwd)", N * 3 * I)
        if gemms:
            gemm("down projection (fwd)", N, I, C, 1)
            stream("residual adds", 3 * N * C)

    for _ in range(L):
        layer_forward(True)
    # backward replays: full recompute the whole layer forward, selective its non-matmul parts
    if recompute != "none":
        for _ in range(L):
            layer_forward(recompute == "full")
    for _ in range(L):
        gemm("qkv projection (bwd)", N, C, Q, 2)
        ks.append(("attention (bwd)", int(2.5 * 2 * 2 * B * Hq * T * T * D // 2), 2 * (N * Q + N * Hq * D) * w,
                   "attention"))
        gemm("o projection (bwd)", N, Hq * D, C, 2)
        gemm("gate/up projection (bwd)", N, C, 2 * I, 2)
        stream("swiglu (bwd)", N * 5 * I)
        gemm("down projection (bwd)", N, I, C, 2)
        stream("rmsnorm x2 (bwd)", 2 * 4 * N * C)
    # fused output layer + loss: logits, dh, dE (3 GEMMs over the vocabulary); the logits chunk
    # is written in fp32, read by the softmax, written back as dlogits in the compute dtype
    gemm("output layer + loss (3 GEMMs)", N, C, V, 1)
    ks[-1] = (ks[-1][0], 3 * 2 * N * C * V, ks[-1][2] * 3 + N * V * (4 + 4 + w), "gemm")
    ks.append(("embedding fwd/bwd", 0, 2 * N * C * w + 2 * N * C * 4, "memory"))
    return ks


def optimizer_bytes(P, act):
    # AdamW reads master, grad, m, v (f32) and writes master, m, v (f32) and the compute copy
    return P * (4 * 4 + 3 * 4 + act)


def param_count(cfg):
    C, I, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    Hq, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // Hq
    per_layer = C * (Hq + 2 * Hkv) * D + (Hq + 2 * Hkv) * D + Hq * D * C + 3 * C * I + 2 * C
    return V * C + L * per_layer + C


def model_flops_per_token(cfg, T):
    # 6 FLOPs per weight-token product (matmul weights incl. the tied output layer) + attention
    C, I, V, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    Hq, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // Hq
    matmul = L * (C * (Hq + 2 * Hkv) * D + Hq * D * C + 3 * C * I) + V * C
    return 6 * matmul + 6 * L * T * C


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/qwen05b.json")
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=8)
    ap.add_argument("--recompute", default="none", choices=("none", "selective", "full"))
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with open(a.config) as f:
        cfg = json.load(f)["model"]
    B, T = a.micro_batch, a.seq
    P = param_count(cfg)
    tokens = B * T * a.grad_accum
    if not a.json:
        print(f"{a.config}: {P:,} parameters, seq {T}, micro-batch {B} x accumulation {a.grad_accum} = "
              f"{tokens:,} tokens/step, recompute {a.recompute}")
        print(f"model FLOPs per token {model_flops_per_token(cfg, T) / 1e9:.2f} G; assumed efficiencies: GEMM "
              f"{GEMM_EFF:.0%} of peak, attention {ATTN_EFF:.0%}, streaming {BW_EFF:.0%} of bandwidth\n")
    out = {}
    for gpu_id, g in GPUS.items():
        gpu = g["name"]
        ks = kernels(cfg, B, T, a.recompute, g["act"])
        rows = {}
        for name, flops, byts, kind in ks:
            eff = GEMM_EFF if kind == "gemm" else ATTN_EFF if kind == "attention" else 1.0
            peak = g["attn"] if kind == "attention" else g["sustained"]
            t = max(flops / (peak * eff) if flops else 0.0, byts / (g["bw"] * BW_EFF))
            r = rows.setdefault(name, [0, 0, 0.0, "compute" if flops / g["peak"] > byts / g["bw"] else "memory"])
            r[0] += flops * a.grad_accum
            r[1] += byts * a.grad_accum
            r[2] += t * a.grad_accum
        opt_t = optimizer_bytes(P, g["act"]) / (g["bw"] * BW_EFF)
        rows["AdamW (once per step)"] = [0, optimizer_bytes(P, g["act"]), opt_t, "memory"]
        step = sum(r[2] for r in rows.values())
        mfu = model_flops_per_token(cfg, T) * tokens / (step * g["peak"])
        out[gpu_id] = dict(step_s=step, tokens_per_s=tokens / step, mfu=mfu)
        if a.json:
            continue
        print(f"## {gpu}: peak {g['peak'] / 1e12:.0f} TFLOP/s, {g['bw'] / 1e9:.0f} GB/s -> predicted step "
              f"{step * 1e3:.0f} ms, {tokens / step:,.0f} tokens/s, MFU {mfu:.0%}")
        sep = "|" if a.markdown else " "
        print(f"{sep}{'kernel':34s}{sep}{'GFLOP':>10s}{sep}{'GB':>8s}{sep}{'bound':>8s}{sep}{'ms':>9s}{sep}{'share':>6s}{sep}")
        if a.markdown:
            print("|---|---:|---:|---|---:|---:|")
        top = max(rows.items(), key=lambda kv: kv[1][2])
        for name, (fl, by, t, bound) in sorted(rows.items(), key=lambda kv: -kv[1][2]):
            print(f"{sep}{name:34s}{sep}{fl / 1e9:10.1f}{sep}{by / 1e9:8.2f}{sep}{bound:>8s}{sep}{t * 1e3:9.2f}"
                  f"{sep}{t / step:6.1%}{sep}")
        print(f"bounded by: {top[0]} ({top[1][2] / step:.0%} of the step)\n")
    if a.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
