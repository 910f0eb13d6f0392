#!/usr/bin/python3
"""PyTorch (CPU, float32) training throughput of the reference Qwen2 model, as a baseline.

  python3 bench/torch_train_throughput.py --config FILE --batch B --seq T --threads N
          --steps S --warmup W [--seed S] [--optimizer none|adamw] [--lr LR]

FILE: JSON with HF Qwen2Config keys at the top level or under "model" (an engine config with
sections model/tokenizer/data/train/...; only "model" is read; unknown keys are ignored).
The model is tests/reference/qwen2_ref.py's Qwen2ForCausalLM in float32, Qwen-style init (normal
std 0.02 for linear/embedding weights, zero biases, ones for norms), trained on random token ids.
One step = zero_grad + forward (HF-style attention: matmul + additive mask + softmax + matmul)
+ F.cross_entropy on the full [B*T, V] logits + backward (+ AdamW step with --optimizer adamw).
W warmup steps are run untimed, then S timed steps.

Prints one JSON line:
  {"tokens_per_s": B*T / step_s_median, "step_s_median": ..., "step_s_mean": ..., "params": ...,
   "threads": N, "batch": B, "seq": T, "steps": S, "optimizer": ..., "final_loss": ..., "torch": ...}
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from qwen2_ref import Qwen2Config, Qwen2ForCausalLM, RefError  # noqa: E402


def load_hf_keys(path):
    with open(path) as f:
        d = json.load(f)
    if isinstance(d.get("model"), dict):
        d = d["model"]
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--warmup", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--optimizer", default="none", choices=("none", "adamw"))
    ap.add_argument("--lr", type=float, default=1e-4)
    a = ap.parse_args()
    if a.batch <= 0 or a.seq <= 0 or a.threads <= 0 or a.steps <= 0 or a.warmup < 0:
        ap.error("--batch, --seq, --threads, --steps must be positive and --warmup >= 0")

    try:
        cfg = Qwen2Config.from_dict(load_hf_keys(a.config))
    except (OSError, json.JSONDecodeError, RefError) as e:
        print(f"torch_train_throughput: error: {a.config}: {e}", file=sys.stderr)
        return 2

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    model = Qwen2ForCausalLM(cfg).float().init_weights(g)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr) if a.optimizer == "adamw" else None

    V = cfg.vocab_size
    times = []
    loss_val = float("nan")
    for step in range(a.warmup + a.steps):
        ids = torch.randint(0, V, (a.batch, a.seq + 1), generator=g)
        x, y = ids[:, :-1], ids[:, 1:]
        t0 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, V), y.reshape(-1))
        loss.backward()
        if opt is not None:
            opt.step()
        t1 = time.perf_counter()
        loss_val = float(loss.detach())
        if step >= a.warmup:
            times.append(t1 - t0)

    med = statistics.median(times)
    print(json.dumps({
        "tokens_per_s": a.batch * a.seq / med,
        "step_s_median": med,
        "step_s_mean": statistics.fmean(times),
        "params": n_params,
        "threads": a.threads,
        "batch": a.batch,
        "seq": a.seq,
        "steps": a.steps,
        "optimizer": a.optimizer,
        "final_loss": loss_val,
        "torch": torch.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
