#!/usr/bin/python3
"""Self-check of the PyTorch reference, independent of the C++ engine.

  python3 tests/reference/test_ref_selfcheck.py      exit 0 if all checks pass, 1 otherwise

Checks: safetensors round trips / bf16 rounding / corrupt-file rejection; HF parameter names and
shapes; torch.autograd.gradcheck (float64) of the loss w.r.t. several parameters (tied and untied);
the model against a second, naive numpy implementation (per-position loops for RoPE and attention,
explicit GQA head mapping); causality; float32 vs float64; the CLI end to end (outputs, exit code 2).
"""

import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_np as st  # noqa: E402
from qwen2_ref import Qwen2Config, Qwen2ForCausalLM, masked_mean_ce  # noqa: E402
from make_case import write_case  # noqa: E402

FAILS = []
RESULTS = {"passed": 0, "failed": 0}


def check(name, ok, detail=""):
    if ok:
        RESULTS["passed"] += 1
        print(f"ok    {name} {detail}")
    else:
        RESULTS["failed"] += 1
        FAILS.append(name)
        print(f"FAIL  {name} {detail}")


def rel_err(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def cfg_of(**kw):
    base = dict(vocab_size=23, hidden_size=16, intermediate_size=20, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, rope_theta=10000.0, rms_norm_eps=1e-6)
    base.update(kw)
    return Qwen2Config.from_dict(base)


def random_model(cfg, seed, std=0.3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    m = Qwen2ForCausalLM(cfg).to(dtype)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g, dtype=dtype))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g, dtype=dtype))
    return m


def random_batch(cfg, B, T, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    tg = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    tg[torch.rand((B, T), generator=g) < 0.2] = -100
    tg[0, 0] = 1
    return ids, tg


# ----------------------------------------------------------------------------- safetensors

def check_safetensors(tmp):
    rng = np.random.default_rng(0)
    tensors = {
        "f64": rng.standard_normal((3, 5)),
        "f32": rng.standard_normal((7,)).astype(np.float32),
        "f16": rng.standard_normal((2, 3, 4)).astype(np.float16),
        "i32": rng.integers(-1000, 1000, (4, 4)).astype(np.int32),
        "i64": rng.integers(-(2 ** 40), 2 ** 40, (5,)).astype(np.int64),
        "empty": np.zeros((0, 3), np.float32),
        "scalar": np.array(2.5, np.float32),
    }
    p = os.path.join(tmp, "rt.safetensors")
    st.save(p, tensors, {"k": "v"})
    back, meta = st.load(p)
    ok = meta == {"k": "v"} and set(back) == set(tensors) and all(
        back[k].dtype == tensors[k].dtype and back[k].shape == tensors[k].shape
        and np.array_equal(back[k], tensors[k]) for k in tensors)
    check("safetensors round trip F64/F32/F16/I32/I64", ok)
    with open(p, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
    check("safetensors header padded to 8", n % 8 == 0, f"(N={n})")

    # BF16 round to nearest even
    vals = np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -1 - 2 ** -8,
                     3.4028235e38, np.inf, -np.inf, 0.0, -0.0, 1e-40], dtype=np.float32)
    want = np.array([0x3F80, 0x3F80, 0x3F82, 0x3F81, 0xBF80, 0x7F80, 0x7F80, 0xFF80, 0x0000,
                     0x8000, 0x0001], dtype=np.uint16)
    got = st.f32_to_bf16_bits(vals)
    check("bf16 round-to-nearest-even", np.array_equal(got, want),
          "" if np.array_equal(got, want) else f"got {[hex(x) for x in got]}")
    nan = st.f32_to_bf16_bits(np.array([np.nan], np.float32))
    check("bf16 NaN stays NaN", bool(np.isnan(st.bf16_bits_to_f32(nan))[0]))
    x = rng.standard_normal((6, 7)).astype(np.float32)
    p2 = os.path.join(tmp, "bf.safetensors")
    st.save(p2, {"x": x}, dtypes={"x": "BF16"})
    hdr, _ = st.load_header(p2)
    xb, _ = st.load(p2)
    ok = (hdr["x"]["dtype"] == "BF16" and xb["x"].dtype == np.float32
          and np.array_equal(xb["x"], st.bf16_bits_to_f32(st.f32_to_bf16_bits(x)))
          and np.max(np.abs(xb["x"] - x) / np.abs(x)) <= 2 ** -8)
    check("bf16 write/read", ok)

    # corrupt files
    good = open(p, "rb").read()
    hlen = int.from_bytes(good[:8], "little")

    def rejects(blob, what):
        q = os.path.join(tmp, "bad.safetensors")
        with open(q, "wb") as f:
            f.write(blob)
        try:
            st.load(q)
        except st.SafetensorsError:
            check(f"safetensors rejects {what}", True)
            return
        check(f"safetensors rejects {what}", False)

    rejects(good[:5], "short file")
    rejects((hlen + 10 ** 6).to_bytes(8, "little") + good[8:], "header size past EOF")
    rejects(good[:-4], "truncated data")
    hj = good[8:8 + hlen].replace(b'"F64"', b'"F65"')
    rejects(good[:8] + hj + good[8 + hlen:], "unknown dtype")
    hj = good[8:8 + hlen].replace(b'"shape":[3,5]', b'"shape":[3,6]')
    rejects(good[:8] + hj + good[8 + hlen:], "size/shape mismatch")
    rejects(good[:8] + b"x" + good[9:], "bad JSON")


# ----------------------------------------------------------------------------- names

def check_names():
    cfg = cfg_of(num_hidden_layers=1)
    names = list(Qwen2ForCausalLM(cfg).param_shapes().items())
    C, D, Hq, Hkv, I, V = 16, 4, 4, 2, 20, 23
    want = [("model.embed_tokens.weight", (V, C)),
            ("model.layers.0.input_layernorm.weight", (C,)),
            ("model.layers.0.self_attn.q_proj.weight", (Hq * D, C)),
            ("model.layers.0.self_attn.q_proj.bias", (Hq * D,)),
            ("model.layers.0.self_attn.k_proj.weight", (Hkv * D, C)),
            ("model.layers.0.self_attn.k_proj.bias", (Hkv * D,)),
            ("model.layers.0.self_attn.v_proj.weight", (Hkv * D, C)),
            ("model.layers.0.self_attn.v_proj.bias", (Hkv * D,)),
            ("model.layers.0.self_attn.o_proj.weight", (C, Hq * D)),
            ("model.layers.0.post_attention_layernorm.weight", (C,)),
            ("model.layers.0.mlp.gate_proj.weight", (I, C)),
            ("model.layers.0.mlp.up_proj.weight", (I, C)),
            ("model.layers.0.mlp.down_proj.weight", (C, I)),
            ("model.norm.weight", (C,))]
    check("HF parameter names/shapes (tied)", names == want, "" if names == want else str(names))
    un = Qwen2ForCausalLM(cfg_of(num_hidden_layers=1, tie_word_embeddings=False)).param_shapes()
    check("untied adds lm_head.weight", list(un.items()) == want + [("lm_head.weight", (V, C))])


# ----------------------------------------------------------------------------- gradcheck

def check_gradcheck():
    from torch.nn.utils.stateless import functional_call
    for tied in (True, False):
        cfg = cfg_of(vocab_size=11, hidden_size=8, intermediate_size=6, num_attention_heads=2,
                     num_key_value_heads=1, tie_word_embeddings=tied)
        model = random_model(cfg, seed=3)
        ids, tg = random_batch(cfg, 2, 5, seed=4)
        names = ["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
                 "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.q_proj.bias",
                 "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.k_proj.bias",
                 "model.layers.0.self_attn.v_proj.bias", "model.layers.1.self_attn.o_proj.weight",
                 "model.layers.1.post_attention_layernorm.weight", "model.layers.1.mlp.gate_proj.weight",
                 "model.layers.1.mlp.down_proj.weight", "model.norm.weight"]
        if not tied:
            names.append("lm_head.weight")
        params = dict(model.named_parameters())
        inputs = tuple(params[n].detach().clone().requires_grad_(True) for n in names)

        def f(*ts):
            logits = functional_call(model, dict(zip(names, ts)), (ids,))
            return masked_mean_ce(logits, tg)[0]

        t0 = time.time()
        try:
            ok = torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
            msg = ""
        except RuntimeError as e:
            ok, msg = False, str(e).splitlines()[0]
        n_el = sum(t.numel() for t in inputs)
        check(f"gradcheck float64 ({'tied' if tied else 'untied'}, {len(names)} params, {n_el} elements)",
              ok, f"{msg}({time.time() - t0:.1f}s)")


# ----------------------------------------------------------------------------- naive numpy model

def naive_forward(params, cfg, ids, rope_f32):
    """Second implementation: numpy float64, per-position loops for RoPE and attention.
    rope_f32: build cos/sin from float32 angles (as HF / the reference) instead of float64."""
    P = {k: v.detach().double().numpy() for k, v in params.items()}
    B, T = ids.shape
    C, D = cfg.hidden_size, cfg.head_dim
    Hq, Hkv = cfg.num_attention_heads, cfg.num_key_value_heads
    eps = cfg.rms_norm_eps
    half = D // 2

    def rms(x, w):
        return np.stack([w * (r / math.sqrt(np.mean(r * r) + eps)) for r in x.reshape(-1, C)]).reshape(x.shape)

    def angle(t, i):
        if rope_f32:
            inv = np.float32(1.0) / (np.float32(cfg.rope_theta) ** (np.float32(2 * i) / np.float32(D)))
            a = np.float32(t) * inv
            return float(np.cos(a, dtype=np.float32)), float(np.sin(a, dtype=np.float32))
        a = t * cfg.rope_theta ** (-2.0 * i / D)
        return math.cos(a), math.sin(a)

    def rope(vec, t):  # vec [D]
        o = np.empty(D)
        for i in range(half):
            c, s = angle(t, i)
            o[i] = vec[i] * c - vec[i + half] * s
            o[i + half] = vec[i + half] * c + vec[i] * s
        return o

    h = P["model.embed_tokens.weight"][ids.numpy()]  # [B, T, C]
    for l in range(cfg.num_hidden_layers):
        pre = f"model.layers.{l}."
        x = rms(h, P[pre + "input_layernorm.weight"])
        q = x @ P[pre + "self_attn.q_proj.weight"].T + P[pre + "self_attn.q_proj.bias"]
        k = x @ P[pre + "self_attn.k_proj.weight"].T + P[pre + "self_attn.k_proj.bias"]
        v = x @ P[pre + "self_attn.v_proj.weight"].T + P[pre + "self_attn.v_proj.bias"]
        att = np.zeros((B, T, Hq * D))
        for b in range(B):
            for hh in range(Hq):
                kv = hh // (Hq // Hkv)
                ks = [rope(k[b, s, kv * D:(kv + 1) * D], s) for s in range(T)]
                for t in range(T):
                    qt = rope(q[b, t, hh * D:(hh + 1) * D], t)
                    sc = [float(qt @ ks[s]) / math.sqrt(D) for s in range(t + 1)]
                    m = max(sc)
                    e = [math.exp(z - m) for z in sc]
                    z = sum(e)
                    acc = np.zeros(D)
                    for s in range(t + 1):
                        acc += (e[s] / z) * v[b, s, kv * D:(kv + 1) * D]
                    att[b, t, hh * D:(hh + 1) * D] = acc
        h = h + att @ P[pre + "self_attn.o_proj.weight"].T
        x = rms(h, P[pre + "post_attention_layernorm.weight"])
        g = x @ P[pre + "mlp.gate_proj.weight"].T
        u = x @ P[pre + "mlp.up_proj.weight"].T
        h = h + ((g / (1.0 + np.exp(-g))) * u) @ P[pre + "mlp.down_proj.weight"].T
    h = rms(h, P["model.norm.weight"])
    W = P["model.embed_tokens.weight"] if cfg.tie_word_embeddings else P["lm_head.weight"]
    return h @ W.T


def naive_loss(logits, tg):
    tot, n = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            y = int(tg[b, t])
            if y < 0:
                continue
            row = logits[b, t]
            m = row.max()
            tot += m + math.log(np.exp(row - m).sum()) - row[y]
            n += 1
    return tot / n


def check_naive():
    cases = [("GQA 4/2", cfg_of(), 2, 7),
             ("GQA 6/1 untied", cfg_of(hidden_size=24, num_attention_heads=6, num_key_value_heads=1,
                                       tie_word_embeddings=False, rope_theta=1e6), 1, 9),
             ("MHA odd 3x10", cfg_of(vocab_size=31, hidden_size=30, intermediate_size=37,
                                     num_attention_heads=3, num_key_value_heads=3), 2, 5)]
    for name, cfg, B, T in cases:
        model = random_model(cfg, seed=7)
        ids, tg = random_batch(cfg, B, T, seed=8)
        params = dict(model.named_parameters())
        with torch.no_grad():
            ref32 = model(ids).numpy()
            model.model.rotary_emb.table_dtype = torch.float64
            ref64 = model(ids).numpy()
            loss64 = float(masked_mean_ce(torch.from_numpy(ref64), tg)[0])
            model.model.rotary_emb.table_dtype = torch.float32
        nv64 = naive_forward(params, cfg, ids, rope_f32=False)
        nv32 = naive_forward(params, cfg, ids, rope_f32=True)
        e1 = rel_err(ref64, nv64)
        check(f"naive vs reference, {name}, float64 rope tables", e1 < 1e-12, f"(rel {e1:.2e})")
        e2 = rel_err(ref32, nv32)
        check(f"naive vs reference, {name}, float32 rope tables (HF)", e2 < 1e-6, f"(rel {e2:.2e})")
        e3 = rel_err(ref32, ref64)
        check(f"float32 vs float64 rope tables close, {name}", e3 < 1e-5, f"(rel {e3:.2e})")
        nl = naive_loss(nv64, tg.numpy())
        check(f"naive loss, {name}", abs(nl - loss64) < 1e-12, f"({nl:.15f} vs {loss64:.15f})")


def check_causal_and_dtype():
    cfg = cfg_of()
    model = random_model(cfg, seed=11)
    ids, _ = random_batch(cfg, 2, 8, seed=12)
    ids2 = ids.clone()
    ids2[:, 5:] = (ids2[:, 5:] + 1) % cfg.vocab_size
    with torch.no_grad():
        a, b = model(ids), model(ids2)
    check("causal: future tokens do not change earlier logits",
          torch.equal(a[:, :5], b[:, :5]) and not torch.allclose(a[:, 5:], b[:, 5:]))
    m32 = Qwen2ForCausalLM(cfg).float()
    m32.load_state_dict(model.state_dict())
    with torch.no_grad():
        c = m32(ids).double()
    e = rel_err(c.numpy(), a.numpy())
    check("float32 model close to float64", e < 1e-5, f"(rel {e:.2e})")


# ----------------------------------------------------------------------------- CLI

def run_cli(model_dir, batch, out, *extra):
    cmd = [sys.executable, os.path.join(HERE, "qwen2_ref.py"), "--model", model_dir, "--batch", batch,
           "--out", out, "--threads", "1", *extra]
    return subprocess.run(cmd, capture_output=True, text=True)


def check_cli(tmp):
    d = os.path.join(tmp, "case")
    hf = dict(vocab_size=29, hidden_size=12, intermediate_size=10, num_hidden_layers=2,
              num_attention_heads=3, num_key_value_heads=1, tie_word_embeddings=False)
    cfg = write_case(d, hf, 2, 6, seed=5, weight_dtype="BF16", ignore_frac=0.3)
    batch = os.path.join(d, "batch.safetensors")
    out = os.path.join(tmp, "out.safetensors")
    r = run_cli(d, batch, out)
    check("CLI exit 0", r.returncode == 0, r.stderr.strip())
    if r.returncode != 0:
        return
    res, meta = st.load(out)
    hdr, _ = st.load_header(out)
    # in-process recomputation
    params, _ = st.load(os.path.join(d, "model.safetensors"))
    b, _ = st.load(batch)
    model = Qwen2ForCausalLM(cfg).double()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(torch.from_numpy(params[n].astype(np.float64)))
    ids = torch.from_numpy(b["input_ids"].astype(np.int64))
    tg = torch.from_numpy(b["targets"].astype(np.int64))
    logits = model(ids)
    loss, n = masked_mean_ce(logits, tg)
    loss.backward()
    want = {"logits"} | {"grad." + k for k, _ in model.named_parameters()}
    check("CLI output tensor names", set(res) == want and "grad.lm_head.weight" in res,
          str(sorted(set(res) ^ want)))
    check("CLI outputs are F32", all(v["dtype"] == "F32" for v in hdr.values()))
    check("CLI metadata", meta.get("dtype") == "float64" and meta.get("n_targets") == str(n)
          and float(meta["loss"]) == float(loss), str(meta))
    e = rel_err(res["logits"], logits.detach().numpy())
    check("CLI logits", e < 1e-7, f"(rel {e:.2e})")
    worst = max(rel_err(res["grad." + k], p.grad.numpy()) for k, p in model.named_parameters())
    check("CLI grads", worst < 1e-7, f"(worst rel {worst:.2e})")
    r = run_cli(d, batch, out, "--dtype", "float32")
    res32, meta32 = st.load(out) if r.returncode == 0 else ({}, {})
    ok = r.returncode == 0 and abs(float(meta32["loss"]) - float(loss)) < 1e-5
    check("CLI --dtype float32", ok, f"(loss {meta32.get('loss')} vs {float(loss)})")

    # error paths: exit 2
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad, exist_ok=True)
    with open(os.path.join(d, "config.json")) as f:
        cj = f.read()
    with open(os.path.join(bad, "config.json"), "w") as f:
        f.write(cj)
    p2 = dict(params)
    del p2["model.layers.1.mlp.up_proj.weight"]
    st.save(os.path.join(bad, "model.safetensors"), p2)
    r = run_cli(bad, batch, out)
    check("CLI missing tensor -> exit 2", r.returncode == 2 and "up_proj" in r.stderr, r.stderr.strip())
    p2 = dict(params)
    p2["model.layers.0.self_attn.k_proj.bias"] = np.zeros(5, np.float32)
    st.save(os.path.join(bad, "model.safetensors"), p2)
    r = run_cli(bad, batch, out)
    check("CLI mis-shaped tensor -> exit 2", r.returncode == 2 and "k_proj.bias" in r.stderr,
          r.stderr.strip())
    bb = os.path.join(tmp, "badbatch.safetensors")
    st.save(bb, {"input_ids": b["input_ids"] + 100, "targets": b["targets"]})
    r = run_cli(d, bb, out)
    check("CLI out-of-range ids -> exit 2", r.returncode == 2, r.stderr.strip())


def main():
    torch.set_num_threads(1)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for fn in (lambda: check_safetensors(tmp), check_names, check_gradcheck, check_naive,
                   check_causal_and_dtype, lambda: check_cli(tmp)):
            try:
                fn()
            except Exception as e:  # a crash in one group is a failure, not an abort
                import traceback
                traceback.print_exc()
                check(f"exception in {getattr(fn, '__name__', 'check')}", False, repr(e))
    print(f"time {time.time() - t0:.1f}s")
    print(f"selfcheck: {RESULTS['passed']} passed, {RESULTS['failed']} failed")
    if FAILS:
        print("failed: " + "; ".join(FAILS))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
