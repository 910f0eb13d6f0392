#!/usr/bin/python3
"""Independent PyTorch reference of Qwen2ForCausalLM (HF transformers semantics), for tests.

CLI:
  python3 tests/reference/qwen2_ref.py --model DIR --batch FILE --out FILE
          [--dtype float64|float32] [--threads N] [--lora ADAPTER_DIR]

  DIR/config.json        HF Qwen2Config keys (unknown keys ignored)
  DIR/model.safetensors  (or model.safetensors.index.json + shards) F32/F16/BF16 tensors, HF names
  FILE                   safetensors: "input_ids" [B, T] I32, "targets" [B, T] I32 (negative = ignored)
  --out                  safetensors: "logits" [B, T, V] F32, "grad.<param>" F32 for every parameter,
                         __metadata__ {"loss": "%.17g", "dtype": ..., "n_targets": ...}
  --lora                 an HF PEFT LoRA directory (adapter_config.json, adapter_model.safetensors)
                         applied as PEFT's LoraLayer does (y = base(x) + lora_alpha/r * B(A(x)), base
                         frozen); then "grad.<PEFT tensor name>" is written for every adapter tensor
                         instead of the base gradients.
  Exit codes: 0 ok, 2 bad input (missing/mis-shaped tensor, bad config, bad batch).

The model is also importable (Qwen2Config, Qwen2ForCausalLM, masked_mean_ce) and is what
bench/torch_train_throughput.py trains.
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402


class RefError(Exception):
    """Bad input: reported on stderr, exit code 2."""


# ----------------------------------------------------------------------------- config

class Qwen2Config:
    """The subset of HF Qwen2Config the forward pass needs."""

    def __init__(self, vocab_size, hidden_size, intermediate_size, num_hidden_layers,
                 num_attention_heads, num_key_value_heads=None, rope_theta=10000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=True, max_position_embeddings=32768,
                 head_dim=None, hidden_act="silu", initializer_range=0.02):
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.intermediate_size = int(intermediate_size)
        self.num_hidden_layers = int(num_hidden_layers)
        self.num_attention_heads = int(num_attention_heads)
        self.num_key_value_heads = int(num_attention_heads if num_key_value_heads is None
                                       else num_key_value_heads)
        self.rope_theta = float(rope_theta)
        self.rms_norm_eps = float(rms_norm_eps)
        self.tie_word_embeddings = bool(tie_word_embeddings)
        self.max_position_embeddings = int(max_position_embeddings)
        self.head_dim = int(head_dim if head_dim is not None
                            else self.hidden_size // self.num_attention_heads)
        self.hidden_act = hidden_act
        self.initializer_range = float(initializer_range)
        self.validate()

    def validate(self):
        for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                  "num_attention_heads", "num_key_value_heads", "head_dim"):
            if getattr(self, k) <= 0:
                raise RefError(f"config: {k} must be positive, got {getattr(self, k)}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise RefError(f"config: num_attention_heads {self.num_attention_heads} is not a multiple "
                           f"of num_key_value_heads {self.num_key_value_heads}")
        if self.head_dim % 2:
            raise RefError(f"config: head_dim {self.head_dim} must be even for rotary embeddings")
        if self.hidden_act != "silu":
            raise RefError(f"config: hidden_act {self.hidden_act!r} unsupported (only 'silu')")

    _REQUIRED = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                 "num_attention_heads")
    _OPTIONAL = ("num_key_value_heads", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
                 "max_position_embeddings", "head_dim", "hidden_act", "initializer_range")

    @classmethod
    def from_dict(cls, d):
        """Build from a dict of HF keys; unknown keys are ignored."""
        missing = [k for k in cls._REQUIRED if k not in d]
        if missing:
            raise RefError(f"config: missing required key(s) {missing}")
        if d.get("rope_scaling") not in (None, {}):
            raise RefError(f"config: rope_scaling {d['rope_scaling']!r} is not supported")
        kw = {k: d[k] for k in cls._REQUIRED}
        kw.update({k: d[k] for k in cls._OPTIONAL if k in d and d[k] is not None})
        try:
            return cls(**kw)
        except (TypeError, ValueError) as e:
            raise RefError(f"config: {e}")

    @classmethod
    def from_json_file(cls, path):
        try:
            with open(path) as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise RefError(f"cannot read config {path}: {e}")
        return cls.from_dict(d)


# ----------------------------------------------------------------------------- model

def _work_dtype(dtype):
    """HF upcasts norms/softmax to float32; never downcast a float64 reference."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class Qwen2RMSNorm(nn.Module):
    def __init__(self, hidden_size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x):
        in_dtype = x.dtype
        h = x.to(_work_dtype(in_dtype))
        var = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(var + self.variance_epsilon)
        return self.weight * h.to(in_dtype)


class Qwen2RotaryEmbedding(nn.Module):
    """cos/sin tables, built in float32 as HF does (table_dtype=float64 only for self-checks)."""

    def __init__(self, head_dim, theta, table_dtype=torch.float32):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self.table_dtype = table_dtype

    def forward(self, positions, dtype):
        # positions: [T] int64 -> cos, sin [T, D] in `dtype`
        D = self.head_dim
        td = self.table_dtype
        inv_freq = 1.0 / (self.theta ** (torch.arange(0, D, 2, dtype=torch.int64).to(td) / D))  # [D/2]
        freqs = torch.outer(positions.to(td), inv_freq)  # [T, D/2]
        emb = torch.cat((freqs, freqs), dim=-1)  # [T, D]
        return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    # q [B, Hq, T, D], k [B, Hkv, T, D], cos/sin [T, D]
    cos = cos[None, None]
    sin = sin[None, None]
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def repeat_kv(x, n_rep):
    # [B, Hkv, T, D] -> [B, Hkv * n_rep, T, D]; query head h uses kv head h // n_rep
    if n_rep == 1:
        return x
    B, Hkv, T, D = x.shape
    return x[:, :, None, :, :].expand(B, Hkv, n_rep, T, D).reshape(B, Hkv * n_rep, T, D)


class Qwen2Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.Hq = cfg.num_attention_heads
        self.Hkv = cfg.num_key_value_heads
        self.D = cfg.head_dim
        C = cfg.hidden_size
        self.q_proj = nn.Linear(C, self.Hq * self.D, bias=True)
        self.k_proj = nn.Linear(C, self.Hkv * self.D, bias=True)
        self.v_proj = nn.Linear(C, self.Hkv * self.D, bias=True)
        self.o_proj = nn.Linear(self.Hq * self.D, C, bias=False)

    def forward(self, x, cos, sin, mask):
        # x [B, T, C]; mask [T, T] additive (0 / finfo.min)
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.Hq, self.D).transpose(1, 2)  # [B, Hq, T, D]
        k = self.k_proj(x).view(B, T, self.Hkv, self.D).transpose(1, 2)  # [B, Hkv, T, D]
        v = self.v_proj(x).view(B, T, self.Hkv, self.D).transpose(1, 2)  # [B, Hkv, T, D]
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        k = repeat_kv(k, self.Hq // self.Hkv)  # [B, Hq, T, D]
        v = repeat_kv(v, self.Hq // self.Hkv)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.D)  # [B, Hq, T, T]
        scores = scores + mask
        probs = F.softmax(scores, dim=-1, dtype=_work_dtype(q.dtype)).to(q.dtype)
        out = torch.matmul(probs, v)  # [B, Hq, T, D]
        out = out.transpose(1, 2).reshape(B, T, self.Hq * self.D)
        return self.o_proj(out)


class Qwen2MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        C, I = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(C, I, bias=False)
        self.up_proj = nn.Linear(C, I, bias=False)
        self.down_proj = nn.Linear(I, C, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen2DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = Qwen2RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Qwen2Attention(cfg)
        self.post_attention_layernorm = Qwen2RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = Qwen2MLP(cfg)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Qwen2Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([Qwen2DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = Qwen2RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(cfg.head_dim, cfg.rope_theta)

    def forward(self, input_ids):
        # input_ids [B, T] -> final hidden [B, T, C]
        B, T = input_ids.shape
        h = self.embed_tokens(input_ids)
        dtype = h.dtype
        pos = torch.arange(T, device=input_ids.device)
        cos, sin = self.rotary_emb(pos, dtype)
        mask = torch.full((T, T), torch.finfo(dtype).min, dtype=dtype, device=h.device)
        mask = torch.triu(mask, diagonal=1)  # 0 on and below the diagonal
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        return self.norm(h)


class Qwen2ForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.config = cfg
        self.model = Qwen2Model(cfg)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def output_weight(self):
        if self.config.tie_word_embeddings:
            return self.model.embed_tokens.weight
        return self.lm_head.weight

    def forward(self, input_ids):
        # [B, T] -> logits [B, T, V]
        return F.linear(self.model(input_ids), self.output_weight())

    def init_weights(self, generator=None):
        """Qwen-style init: normal(0, initializer_range) for linear/embedding weights, zero biases,
        ones for norms. Deterministic given the generator / torch seed."""
        std = self.config.initializer_range
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("layernorm.weight") or name == "model.norm.weight":
                    p.fill_(1.0)
                elif name.endswith(".bias"):
                    p.zero_()
                else:
                    p.normal_(0.0, std, generator=generator)
        return self

    def param_shapes(self):
        """{HF name: shape} of every parameter (tied lm_head is not a parameter)."""
        return {n: tuple(p.shape) for n, p in self.named_parameters()}


def masked_mean_ce(logits, targets):
    """Mean cross-entropy over positions with targets >= 0 (full vocabulary).
    logits [B, T, V], targets [B, T] int. With no valid target the loss is 0 (gradients 0)."""
    V = logits.shape[-1]
    flat = logits.reshape(-1, V)
    t = targets.reshape(-1).long()
    valid = t >= 0
    n = int(valid.sum())
    if n == 0:
        return flat.sum() * 0.0, 0
    return F.cross_entropy(flat[valid], t[valid], reduction="mean"), n


# ----------------------------------------------------------------------------- loading

def load_state(model_dir):
    """Read DIR/model.safetensors or a sharded index; returns {name: np.ndarray}."""
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    try:
        if os.path.exists(single):
            tensors, _ = safetensors_np.load(single)
            return tensors
        if os.path.exists(index):
            with open(index) as f:
                wm = json.load(f)["weight_map"]
            tensors = {}
            for shard in sorted(set(wm.values())):
                t, _ = safetensors_np.load(os.path.join(model_dir, shard))
                tensors.update(t)
            return tensors
    except (OSError, KeyError, json.JSONDecodeError, safetensors_np.SafetensorsError) as e:
        raise RefError(f"cannot read weights in {model_dir}: {e}")
    raise RefError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json exists")


def load_model(model_dir, dtype=torch.float64):
    cfg = Qwen2Config.from_json_file(os.path.join(model_dir, "config.json"))
    model = Qwen2ForCausalLM(cfg).to(dtype)
    tensors = load_state(model_dir)
    params = dict(model.named_parameters())
    errors = []
    for name, p in params.items():
        if name not in tensors:
            errors.append(f"missing tensor {name} (expected shape {list(p.shape)})")
            continue
        t = tensors[name]
        if tuple(t.shape) != tuple(p.shape):
            errors.append(f"tensor {name} has shape {list(t.shape)}, expected {list(p.shape)}")
            continue
        if t.dtype.kind != "f":
            errors.append(f"tensor {name} has non-float dtype {t.dtype}")
            continue
        with torch.no_grad():
            p.copy_(torch.from_numpy(t.astype("float64")).to(dtype))
    for name in tensors:
        if name not in params:
            if name == "lm_head.weight" and cfg.tie_word_embeddings:
                print("qwen2_ref: note: ignoring lm_head.weight (tie_word_embeddings is true)",
                      file=sys.stderr)
            else:
                print(f"qwen2_ref: warning: unexpected tensor {name} ignored", file=sys.stderr)
    if errors:
        raise RefError(f"{model_dir}: " + "; ".join(errors))
    return model


def load_batch(path, vocab_size):
    try:
        tensors, _ = safetensors_np.load(path)
    except (OSError, safetensors_np.SafetensorsError) as e:
        raise RefError(f"cannot read batch {path}: {e}")
    for k in ("input_ids", "targets"):
        if k not in tensors:
            raise RefError(f"batch {path}: missing tensor {k!r}")
        if tensors[k].ndim != 2 or tensors[k].dtype.kind not in "iu":
            raise RefError(f"batch {path}: {k} must be a 2-D integer tensor, got "
                           f"{tensors[k].dtype} {list(tensors[k].shape)}")
    ids, tg = tensors["input_ids"], tensors["targets"]
    if ids.shape != tg.shape:
        raise RefError(f"batch {path}: input_ids {list(ids.shape)} and targets {list(tg.shape)} differ")
    if ids.size == 0:
        raise RefError(f"batch {path}: empty batch")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise RefError(f"batch {path}: input_ids outside [0, {vocab_size})")
    if tg.max() >= vocab_size:
        raise RefError(f"batch {path}: targets >= vocab_size {vocab_size}")
    return torch.from_numpy(ids.astype("int64")), torch.from_numpy(tg.astype("int64"))


class LoraLinear(nn.Module):
    """PEFT's LoRA Linear (tuners/lora/layer.py) without dropout: base(x) + scale * B(A(x))."""

    def __init__(self, base, A, B, scale):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(A)  # [r, in]
        self.lora_B = nn.Parameter(B)  # [out, r]
        self.scale = scale

    def forward(self, x):
        return self.base(x) + self.scale * F.linear(F.linear(x, self.lora_A), self.lora_B)


def apply_lora(model, adapter_dir, dtype):
    """Wraps the modules named in adapter_model.safetensors; freezes everything else. Returns
    {PEFT tensor name: parameter}."""
    try:
        with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
            ac = json.load(f)
        tensors, _ = safetensors_np.load(os.path.join(adapter_dir, "adapter_model.safetensors"))
    except (OSError, json.JSONDecodeError, safetensors_np.SafetensorsError) as e:
        raise RefError(f"cannot read adapter {adapter_dir}: {e}")
    if ac.get("peft_type") != "LORA":
        raise RefError(f"{adapter_dir}: peft_type {ac.get('peft_type')!r} is not LORA")
    r, alpha = int(ac["r"]), float(ac["lora_alpha"])
    scale = alpha / math.sqrt(r) if ac.get("use_rslora") else alpha / r
    for p in model.parameters():
        p.requires_grad_(False)
    prefix = "base_model.model."
    out = {}
    for name in sorted(tensors):
        if not name.endswith(".lora_A.weight"):
            continue
        module = name[len(prefix):-len(".lora_A.weight")]
        b_name = name.replace(".lora_A.weight", ".lora_B.weight")
        if not name.startswith(prefix) or b_name not in tensors:
            raise RefError(f"{adapter_dir}: unexpected adapter tensor {name}")
        parent_name, child = module.rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        base = getattr(parent, child)
        A = torch.from_numpy(tensors[name].astype("float64")).to(dtype)
        B = torch.from_numpy(tensors[b_name].astype("float64")).to(dtype)
        if A.shape != (r, base.in_features) or B.shape != (base.out_features, r):
            raise RefError(f"{adapter_dir}: {name} {list(A.shape)} / {list(B.shape)} do not fit {module}")
        wrapped = LoraLinear(base, A, B, scale)
        setattr(parent, child, wrapped)
        out[name] = wrapped.lora_A
        out[b_name] = wrapped.lora_B
    if not out:
        raise RefError(f"{adapter_dir}: no lora_A tensors")
    return out


def run_reference(model, input_ids, targets):
    """Forward + mean CE + backward. Returns (logits, loss float, n_targets, {name: grad})."""
    model.zero_grad(set_to_none=True)
    logits = model(input_ids)
    loss, n = masked_mean_ce(logits, targets)
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        grads[name] = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
    return logits.detach(), float(loss.item()), n, grads


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="directory with config.json and model.safetensors")
    ap.add_argument("--batch", required=True, help="safetensors with input_ids/targets [B, T] I32")
    ap.add_argument("--out", required=True, help="output safetensors")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lora", help="HF PEFT LoRA adapter directory applied to the model")
    args = ap.parse_args(argv)

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(0)
    dtype = {"float64": torch.float64, "float32": torch.float32}[args.dtype]
    try:
        model = load_model(args.model, dtype)
        ids, tg = load_batch(args.batch, model.config.vocab_size)
        adapters = apply_lora(model, args.lora, dtype) if args.lora else None
    except RefError as e:
        print(f"qwen2_ref: error: {e}", file=sys.stderr)
        return 2
    logits, loss, n, grads = run_reference(model, ids, tg)
    out = {"logits": logits.to(torch.float32).numpy()}
    if adapters is not None:
        for name, p in adapters.items():
            out["grad." + name] = p.grad.detach().to(torch.float32).numpy()
    else:
        for name, g in grads.items():
            out["grad." + name] = g.to(torch.float32).numpy()
    meta = {"loss": "%.17g" % loss, "dtype": args.dtype, "n_targets": str(n)}
    safetensors_np.save(args.out, out, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
