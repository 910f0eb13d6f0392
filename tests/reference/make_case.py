#!/usr/bin/python3
"""Write a random Qwen2 test case: DIR/config.json, DIR/model.safetensors, DIR/batch.safetensors.

  python3 tests/reference/make_case.py --preset gqa7|odd|tiny --out DIR [--seed S]
          [--weight-dtype F32|F16|BF16] [--untied] [--ignore-frac F]

Presets (the two configs the C++ comparison tests use, plus a tiny one):
  gqa7: hidden 448, 7 q heads, 1 kv head (head_dim 64), 2 layers, vocab 300, inter 512, B 2, T 40
  odd : hidden 30, 3 q heads, 3 kv heads (head_dim 10), 2 layers, vocab 131, inter 37, B 3, T 17
  tiny: hidden 16, 4 q heads, 2 kv heads (head_dim 4), 2 layers, vocab 23, inter 20, B 2, T 6
Weights: normal std 0.02 (linear/embedding), biases normal std 0.02, norm weights 1 + normal 0.1
(so every parameter is exercised). About --ignore-frac of the targets are set to -1 (ignored).
Deterministic given --seed.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_np  # noqa: E402
from qwen2_ref import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

PRESETS = {
    "gqa7": (dict(vocab_size=300, hidden_size=448, intermediate_size=512, num_hidden_layers=2,
                  num_attention_heads=7, num_key_value_heads=1), 2, 40),
    "odd": (dict(vocab_size=131, hidden_size=30, intermediate_size=37, num_hidden_layers=2,
                 num_attention_heads=3, num_key_value_heads=3), 3, 17),
    "tiny": (dict(vocab_size=23, hidden_size=16, intermediate_size=20, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2), 2, 6),
}


def make_params(cfg, seed):
    g = torch.Generator().manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).init_weights(g)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.02 * torch.randn(p.shape, generator=g))
    return {n: p.detach().numpy().astype(np.float32) for n, p in model.named_parameters()}


def write_case(out_dir, hf, B, T, seed=0, weight_dtype="F32", ignore_frac=0.1):
    os.makedirs(out_dir, exist_ok=True)
    config = dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", rope_theta=10000.0,
                  rms_norm_eps=1e-6, max_position_embeddings=4096, tie_word_embeddings=True,
                  hidden_act="silu", torch_dtype="float32")
    config.update(hf)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    cfg = Qwen2Config.from_dict(config)
    params = make_params(cfg, seed)
    safetensors_np.save(os.path.join(out_dir, "model.safetensors"), params,
                        {"format": "pt"}, {n: weight_dtype for n in params})
    rng = np.random.default_rng(seed + 1)
    V = cfg.vocab_size
    ids = rng.integers(0, V, size=(B, T)).astype(np.int32)
    tg = np.concatenate([ids[:, 1:], rng.integers(0, V, size=(B, 1))], axis=1).astype(np.int32)
    tg[rng.random((B, T)) < ignore_frac] = -1
    if (tg >= 0).sum() == 0:
        tg[0, 0] = ids[0, 0]
    safetensors_np.save(os.path.join(out_dir, "batch.safetensors"), {"input_ids": ids, "targets": tg})
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weight-dtype", default="F32", choices=("F32", "F16", "BF16"))
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--ignore-frac", type=float, default=0.1)
    a = ap.parse_args()
    hf, B, T = PRESETS[a.preset]
    hf = dict(hf, tie_word_embeddings=not a.untied)
    write_case(a.out, hf, B, T, a.seed, a.weight_dtype, a.ignore_frac)
    return 0


if __name__ == "__main__":
    sys.exit(main())
